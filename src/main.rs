//! coracle: a single-threaded container daemon speaking the Docker Engine API.

mod store;

fn main() {
    println!("coracle");
}
