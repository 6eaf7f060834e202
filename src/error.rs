//! The one error type of the engine; the CLI prints it as `error: <what>` and exits non-zero.
//!
//! Every fallible call returns [`Result`]; match on the variant to tell bad input from a
//! broken device, or print it: the message names the thing at fault.
//!
//! ```
//! use ebm::{Error, Spec};
//!
//! let err = Spec::builtin("resnet").unwrap_err();
//! assert!(matches!(err, Error::Spec(_)));
//! assert!(err.to_string().starts_with("bad model spec: unknown built-in spec 'resnet'"));
//!
//! let err = Error::format("model.safetensors", "no tensor 'layers.0.weight'");
//! assert_eq!(err.to_string(), "model.safetensors: no tensor 'layers.0.weight'");
//! ```

use std::path::PathBuf;

/// Everything that can go wrong, each variant naming the thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable GPU adapter (or the device could not be created).
    #[error("no GPU: {0}")]
    NoGpu(String),
    /// The GPU reported an error (validation, out of memory, lost device).
    #[error("GPU error: {0}")]
    Gpu(String),
    /// A tensor, spec or file has the wrong shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A model spec is malformed.
    #[error("bad model spec: {0}")]
    Spec(String),
    /// A command-line or config option is out of range.
    #[error("bad option: {0}")]
    Option(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder the operation was on.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file exists but its content is not what we expect.
    #[error("{path}: {what}")]
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with its content, in words for the user.
        what: String,
    },
    /// Training diverged (non-finite loss, energies or gradients).
    #[error("training diverged: {0}")]
    NonFinite(String),
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error tagged with the file it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A format error tagged with the file it concerns.
    pub fn format(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            what: what.into(),
        }
    }
}
