//! A fresh directory under the system temp dir for one test, removed when dropped: unique per
//! process, clock and call, so parallel tests and reruns never share one.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The directory; `.0` is its path.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `ebm-<tag>-<pid>-<nanos>-<n>` under the temp dir, created.
    pub fn new(tag: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "ebm-{tag}-{}-{nanos}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// A path in the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A path in the directory, as a string for the command line.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().expect("UTF-8 temp path").into()
    }

    /// Write `bytes` to `name` in the directory; returns its path.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}
