//! Training data: deterministic toy 2D distributions (and, later, image datasets).

pub mod toy2d;
