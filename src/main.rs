//! coracle: a single-threaded container daemon speaking the Docker Engine API.
#![recursion_limit = "256"]
#![warn(clippy::undocumented_unsafe_blocks)]

mod access;
mod api;
mod atomic;
mod base64;
mod build;
mod check_config;
mod config;
mod container;
mod daemon;
mod distribution;
mod engine;
mod events;
mod fdlimit;
mod goerr;
mod host;
mod http;
mod image;
mod label;
mod logger;
mod net;
mod network;
mod procps;
mod reactor;
mod reply;
mod runtime;
mod slab;
mod stdio;
mod store;
mod streams;
mod timefmt;
mod timers;
mod tls_listener;
mod worker;

use config::Command;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(runtime::init::INIT_FLAG) {
        // A container's `--init`, exec()ed from a sealed copy of this binary.
        runtime::init::main(&args);
    }
    let code = match config::parse_args(&args) {
        Ok(Command::Help) => {
            print!("{}", config::USAGE);
            0
        }
        Ok(Command::Version) => {
            println!("coracle version {}", api::SERVER_VERSION);
            0
        }
        Ok(Command::CheckConfig) => check_config::run(&mut std::io::stdout()),
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
