//! STUB: pictures (being written).
