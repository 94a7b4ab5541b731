//! `docker build` with the classic builder: the Dockerfile parser, word
//! substitution, `.dockerignore` rules.

pub mod cache;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod dockerignore;
pub mod from;
pub mod run;
pub mod shellwords;
pub mod sources;
pub mod steps;

#[cfg(test)]
mod tests;
