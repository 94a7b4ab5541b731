//! coracle: a single-threaded container daemon speaking the Docker Engine API.

mod check_config;
#[allow(dead_code)] // base-commit helpers, unused until the daemon foundation lands
mod store;

fn main() {
    // Temporary hook until the real flag parser lands; it will own `check-config` then.
    if std::env::args().nth(1).as_deref() == Some("check-config") {
        std::process::exit(check_config::run(&mut std::io::stdout()))
    }
    println!("coracle");
}
