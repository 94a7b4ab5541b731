//! Docker's multiplexed stream framing: an 8-byte header (stream, 0, 0, 0,
//! big-endian length) before each piece, used when a container has no TTY.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Stdout = 1,
    Stderr = 2,
}

impl StreamKind {
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        }
    }
}

/// Append `data` to `out`, framed when `multiplexed`.
pub fn frame(out: &mut Vec<u8>, kind: StreamKind, data: &[u8], multiplexed: bool) {
    if data.is_empty() {
        return;
    }
    if multiplexed {
        // Frames carry at most u32::MAX bytes; our pieces are far smaller.
        for piece in data.chunks(u32::MAX as usize) {
            out.push(kind as u8);
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(&(piece.len() as u32).to_be_bytes());
            out.extend_from_slice(piece);
        }
    } else {
        out.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let mut out = Vec::new();
        frame(&mut out, StreamKind::Stderr, b"hi", true);
        assert_eq!(out, [2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
        let mut raw = Vec::new();
        frame(&mut raw, StreamKind::Stdout, b"hi", false);
        assert_eq!(raw, b"hi");
    }
}
