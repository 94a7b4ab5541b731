//! Go's wording of system errors, as dockerd prints them: glibc's text with
//! its first letter lowercased ("no space left on device"), never Rust's
//! "No space left on device (os error 28)".

use std::io;

/// Go's `syscall.Errno` text for an errno.
pub fn errno_text(e: nix::errno::Errno) -> String {
    let s = e.desc();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// An I/O error as Go would print it: the errno's text when it has one.
pub fn io_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno_text(nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_wording() {
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(io_text(&e), "no space left on device");
        assert_eq!(errno_text(nix::errno::Errno::EACCES), "permission denied");
        assert_eq!(io_text(&io::Error::other("boom")), "boom");
    }
}
