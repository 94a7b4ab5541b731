//! coracle: a single-threaded container daemon speaking the Docker Engine API.
//!
//! The module tree lives in this library so the fuzz targets (fuzz/) and the
//! corpus replay test (tests/fuzz_replay.rs) reach the parsers; `src/main.rs`
//! is a thin `fn main` that calls [`run`].
#![recursion_limit = "256"]
#![warn(clippy::undocumented_unsafe_blocks)]
// The library is the binary's module tree, not a published API: the lints about the
// shape of a public API (which fired only once the tree became `pub mod`) do not apply.
#![allow(clippy::len_without_is_empty, clippy::new_without_default)]

pub mod access;
pub mod api;
pub mod atomic;
pub mod base64;
pub mod build;
pub mod check_config;
pub mod config;
pub mod container;
pub mod daemon;
pub mod distribution;
pub mod engine;
pub mod events;
pub mod failpoint;
pub mod fdlimit;
pub mod goerr;
pub mod host;
pub mod http;
pub mod image;
pub mod json;
pub mod label;
pub mod logger;
pub mod net;
pub mod network;
pub mod procps;
pub mod reactor;
pub mod reply;
pub mod runtime;
pub mod sha256;
pub mod slab;
pub mod sort;
pub mod stdio;
pub mod store;
pub mod streams;
pub mod timefmt;
pub mod timers;
pub mod tls_listener;
pub mod trace;
pub mod worker;

use config::Command;

/// The `coracle` command line: `args` without the program name. Never returns.
pub fn run(args: &[String]) -> ! {
    if args.first().map(String::as_str) == Some(runtime::init::INIT_FLAG) {
        // A container's `--init`, exec()ed from a sealed copy of this binary.
        runtime::init::main(args);
    }
    let code = match config::parse_args(args) {
        Ok(Command::Help) => {
            print!("{}", config::USAGE);
            0
        }
        Ok(Command::Version) => {
            println!("coracle version {}", api::SERVER_VERSION);
            0
        }
        Ok(Command::CheckConfig) => check_config::run(&mut std::io::stdout()),
        Ok(Command::CheckStore(opts)) => {
            logger::init(log::LevelFilter::Info);
            store::check::run(&opts, &mut std::io::stdout())
        }
        Ok(Command::TokenNew { file, name, role }) => {
            match access::tokens::new_token(&file, &name, role, &mut std::io::stdout()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("coracle: {e}");
                    1
                }
            }
        }
        Ok(Command::Run(cfg)) => {
            logger::init(cfg.log_level);
            trace::enable(cfg.trace_timings);
            if cfg.trace_timings && cfg.log_level < log::LevelFilter::Info {
                log::set_max_level(log::LevelFilter::Info);
            }
            #[cfg(any(feature = "failpoints", debug_assertions))]
            failpoint::init();
            match daemon::run(*cfg) {
                Ok(()) => 0,
                Err(e) => {
                    log::error!("{e}");
                    1
                }
            }
        }
        Err(e) => {
            eprintln!("coracle: {e}");
            125
        }
    };
    std::process::exit(code);
}
