//! `docker build` with the classic builder: the Dockerfile parser, word
//! substitution, `.dockerignore` rules.

pub mod dockerfile;
pub mod dockerignore;
pub mod shellwords;

#[cfg(test)]
mod tests;
