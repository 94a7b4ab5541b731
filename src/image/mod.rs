//! Image formats: layer tars (extraction with whiteouts, byte-exact
//! regeneration), docker-save / OCI archives, `docker import`, references.
//! Everything here streams (`impl Read` / `impl Write`) so it can run in a
//! forked worker fed by a pipe; the daemon-side index is `store::images`.

pub mod archive_load;
mod archive_oci;
pub mod archive_save;
pub mod commit;
pub mod digest;
pub mod error;
pub mod gotar;
pub mod import;
pub mod insert;
pub mod layer_diff;
pub mod layer_export;
pub mod layer_extract;
pub mod layout;
pub mod reference;
pub mod tarstream;

#[cfg(test)]
mod tests;
