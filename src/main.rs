//! coracle: a single-threaded container daemon speaking the Docker Engine API.

#[allow(dead_code)]
mod image;
#[allow(dead_code)]
mod store;

fn main() {
    println!("coracle");
}
