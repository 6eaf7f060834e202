//! STUB: toy 2D datasets (being written).
