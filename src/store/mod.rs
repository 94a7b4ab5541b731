//! On-disk state under the data root. Every file is written atomically.

pub mod atomic;
