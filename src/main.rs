//! coracle: a single-threaded container daemon speaking the Docker Engine API.
//! The module tree is the library (src/lib.rs); this is its command line.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    coracle::run(&args);
}
