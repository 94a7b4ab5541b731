//! Incremental request-body decoding (Content-Length and chunked), so a body
//! of any size passes through in bounded pieces.

use super::request::BodyFraming;

/// Longest chunk-size or trailer line we tolerate.
const MAX_LINE: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    BadChunk,
}

#[derive(Debug)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers,
    Done,
}

#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
}

impl BodyDecoder {
    pub fn new(framing: BodyFraming) -> BodyDecoder {
        let state = match framing {
            BodyFraming::None | BodyFraming::Length(0) => State::Done,
            BodyFraming::Length(n) => State::Length(n),
            BodyFraming::Chunked => State::ChunkSize,
        };
        BodyDecoder { state }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Decode from `input`, appending at most `room` payload bytes to `out`.
    /// Returns how many input bytes were consumed; fewer than all means more
    /// input is needed, the body is done, or `room` ran out.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        mut room: usize,
    ) -> Result<usize, BodyError> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::Done => return Ok(pos),
                State::Length(left) | State::ChunkData(left) => {
                    let n = (left.min(rest.len() as u64) as usize).min(room);
                    if n == 0 {
                        return Ok(pos);
                    }
                    out.extend_from_slice(&rest[..n]);
                    pos += n;
                    room -= n;
                    let left = left - n as u64;
                    self.state = match self.state {
                        State::Length(_) if left == 0 => State::Done,
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::ChunkDataEnd,
                        _ => State::ChunkData(left),
                    };
                }
                State::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, 0))) => {
                        pos += n;
                        self.state = State::Trailers;
                    }
                    Ok(httparse::Status::Complete((n, size))) => {
                        pos += n;
                        self.state = State::ChunkData(size);
                    }
                    Ok(httparse::Status::Partial) if rest.len() > MAX_LINE => {
                        return Err(BodyError::BadChunk)
                    }
                    Ok(httparse::Status::Partial) => return Ok(pos),
                    Err(_) => return Err(BodyError::BadChunk),
                },
                State::ChunkDataEnd => {
                    if rest.len() < 2 {
                        return Ok(pos);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(BodyError::BadChunk);
                    }
                    pos += 2;
                    self.state = State::ChunkSize;
                }
                State::Trailers => match rest.windows(2).position(|w| w == b"\r\n") {
                    // An empty line ends the trailer section; other lines are ignored.
                    Some(0) => {
                        pos += 2;
                        self.state = State::Done;
                    }
                    Some(i) => pos += i + 2,
                    None if rest.len() > MAX_LINE => return Err(BodyError::BadChunk),
                    None => return Ok(pos),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(framing: BodyFraming, input: &[u8], step: usize) -> Result<Vec<u8>, BodyError> {
        let mut d = BodyDecoder::new(framing);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            let n = d.decode(&buf, &mut out, usize::MAX)?;
            buf.drain(..n);
        }
        assert!(d.is_done(), "decoder not done");
        Ok(out)
    }

    #[test]
    fn chunked_in_any_split() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n";
        for step in 1..wire.len() {
            assert_eq!(
                decode_all(BodyFraming::Chunked, wire, step).unwrap(),
                b"hello world"
            );
        }
    }

    #[test]
    fn length_and_room() {
        let mut d = BodyDecoder::new(BodyFraming::Length(10));
        let mut out = Vec::new();
        assert_eq!(d.decode(b"0123456789extra", &mut out, 4).unwrap(), 4);
        assert_eq!(d.decode(b"456789extra", &mut out, 100).unwrap(), 6);
        assert!(d.is_done());
        assert_eq!(out, b"0123456789");
    }

    #[test]
    fn bad_chunks() {
        assert!(decode_all(BodyFraming::Chunked, b"zz\r\n", 4).is_err());
        let mut d = BodyDecoder::new(BodyFraming::Chunked);
        assert_eq!(
            d.decode(b"2\r\nabXX", &mut Vec::new(), 100),
            Err(BodyError::BadChunk)
        );
    }
}
