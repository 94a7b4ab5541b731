//! On-disk state under the data root. Every file is written atomically.

pub mod atomic;
pub mod containers;
pub mod images;
pub mod layout;
