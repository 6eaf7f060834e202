//! Buffers the direct convolution keeps between calls, per thread: zero-padded copies (one
//! per geometry; a model has a few) and packed operands. Sampling calls the same layers
//! hundreds of times, and fresh buffers of this size come from the kernel as new pages:
//! zeroing and page faults took 15 % of a forward pass.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// (n, c, h, w, zeros before, zeros after) of a padded copy: what fixes its layout.
pub type Geometry = ((usize, usize, usize, usize), (usize, usize), (usize, usize));

/// At most this many buffers wait per thread; the oldest goes first.
const KEPT: usize = 24;

thread_local! {
    static FREE: RefCell<Vec<(Option<Geometry>, Vec<f32>)>> = const { RefCell::new(Vec::new()) };
}

/// A buffer that goes back to its thread's free list when dropped.
pub struct Scratch {
    data: Vec<f32>,
    geometry: Option<Geometry>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        let geometry = self.geometry;
        // A thread being torn down has no list left; the buffer is then just freed.
        let _ = FREE.try_with(|free| {
            let mut free = free.borrow_mut();
            if free.len() == KEPT {
                free.remove(0);
            }
            free.push((geometry, data));
        });
    }
}

impl Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.data
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
}

fn take(wanted: impl Fn(&(Option<Geometry>, Vec<f32>)) -> bool) -> Option<Vec<f32>> {
    FREE.with_borrow_mut(|free| {
        let i = free.iter().position(wanted)?;
        Some(free.remove(i).1)
    })
}

/// `len` floats for a padded copy of `geometry`: zeros when new, and when kept, whatever
/// the last copy of that geometry left. Its users write only the interior, so the border is
/// always zero.
pub fn padded(geometry: Geometry, len: usize) -> Scratch {
    let data =
        take(|(g, d)| *g == Some(geometry) && d.len() == len).unwrap_or_else(|| vec![0.0; len]);
    Scratch {
        data,
        geometry: Some(geometry),
    }
}

/// `len` zeros.
pub fn zeroed(len: usize) -> Scratch {
    let data = match take(|(g, d)| g.is_none() && d.capacity() >= len) {
        Some(mut data) => {
            data.clear();
            data.resize(len, 0.0);
            data
        }
        None => vec![0.0; len],
    };
    Scratch {
        data,
        geometry: None,
    }
}
