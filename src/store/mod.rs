//! On-disk state under the data root. Every file is written atomically
//! (`crate::atomic`); the image store's directory layout is `image::layout`.

pub mod check;
pub mod containers;
mod image_open;
pub mod images;
pub mod networks;
pub mod volumes;
