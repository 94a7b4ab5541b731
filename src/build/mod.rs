//! `docker build` with the classic builder: the Dockerfile parser, word
//! substitution, `.dockerignore` rules.

// The parser is unit-tested and used by the unit tests; `POST /build`
// (api/build.rs) does not run steps yet, so most of it has no caller in
// the binary. Remove this once the builder dispatches instructions.

pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod dockerignore;
pub mod shellwords;
pub mod steps;

#[cfg(test)]
mod tests;
