//! WebSocket (RFC 6455) for hijacked streams: the opening handshake's
//! checks and accept key, and `WebSocket`, which wraps any `Hijacked`
//! stream so that its output leaves in frames and the client's (masked)
//! frames reach it as plain bytes. As dockerd (golang.org/x/net/websocket),
//! output goes out as text frames; pings are answered, a close is echoed and
//! ends the stream, and the end of the inner stream sends a close.

use crate::reply::{ConnId, Hijacked, Pull};

use super::request::Request;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// The opening handshake's checks (x/net/websocket's, with its wording);
/// the client's key when the request is a websocket handshake.
pub fn handshake_key(req: &Request) -> Result<&str, &'static str> {
    let upgrade = req
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let connection = req
        .header("connection")
        .is_some_and(|c| c.to_ascii_lowercase().contains("upgrade"));
    if !upgrade || !connection {
        return Err("not websocket protocol");
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err("bad websocket version");
    }
    match req.header("sec-websocket-key") {
        Some(k) if !k.trim().is_empty() => Ok(k.trim()),
        _ => Err("mismatch challenge/response"),
    }
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    crate::base64::encode(&sha1(format!("{key}{GUID}").as_bytes()))
}

/// A server frame (never masked), FIN set.
fn frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(n as u8);
    } else if n <= 0xFFFF {
        out.push(126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// The frame being received.
struct Rx {
    opcode: u8,
    left: u64,
    mask: [u8; 4],
    /// Payload bytes already taken (for the mask's phase).
    pos: u64,
    /// A control frame's payload (at most 125 bytes).
    control: Vec<u8>,
}

/// The frame header in `head` once it is complete; `Err` for a protocol
/// violation (an unmasked client frame, a long or fragmented control frame).
fn parse_head(head: &[u8]) -> Result<Option<Rx>, ()> {
    if head.len() < 2 {
        return Ok(None);
    }
    let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0F);
    if head[1] & 0x80 == 0 || head[0] & 0x70 != 0 {
        return Err(());
    }
    let (len_bytes, short) = match head[1] & 0x7F {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(n as u64)),
    };
    let need = 2 + len_bytes + 4;
    if head.len() < need {
        return Ok(None);
    }
    let left = short.unwrap_or_else(|| {
        head[2..2 + len_bytes]
            .iter()
            .fold(0u64, |a, b| (a << 8) | u64::from(*b))
    });
    if opcode & 0x8 != 0 && (left > 125 || !fin) {
        return Err(());
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&head[need - 4..need]);
    Ok(Some(Rx {
        opcode,
        left,
        mask,
        pos: 0,
        control: Vec::new(),
    }))
}

/// A hijacked stream spoken over WebSocket frames.
pub struct WebSocket<C> {
    inner: Box<dyn Hijacked<C>>,
    head: Vec<u8>,
    rx: Option<Rx>,
    /// Control frames to send (pongs, the closing frame).
    control: Vec<u8>,
    /// A close was sent: nothing more is read, and the stream ends.
    closed: bool,
}

impl<C> WebSocket<C> {
    pub fn new(inner: Box<dyn Hijacked<C>>) -> WebSocket<C> {
        WebSocket {
            inner,
            head: Vec::with_capacity(14),
            rx: None,
            control: Vec::new(),
            closed: false,
        }
    }

    fn close(&mut self, cx: &mut C, me: ConnId, code: u16) {
        if !self.closed {
            frame(&mut self.control, OP_CLOSE, &code.to_be_bytes());
            self.closed = true;
            self.inner.input_closed(cx, me);
        }
    }

    /// A complete control frame.
    fn control_frame(&mut self, cx: &mut C, me: ConnId, rx: Rx) {
        match rx.opcode {
            OP_CLOSE => {
                let code = match rx.control.as_slice() {
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    _ => 1000,
                };
                self.close(cx, me, code);
            }
            OP_PING => frame(&mut self.control, OP_PONG, &rx.control),
            _ => {} // pong, or a reserved opcode: ignored
        }
    }
}

impl<C> Hijacked<C> for WebSocket<C> {
    fn opened(&mut self, cx: &mut C, me: ConnId) {
        self.inner.opened(cx, me);
    }

    fn pull(&mut self, cx: &mut C, me: ConnId, out: &mut Vec<u8>) -> Pull {
        out.append(&mut self.control);
        if self.closed {
            return Pull::End;
        }
        let mut piece = Vec::new();
        let r = self.inner.pull(cx, me, &mut piece);
        if !piece.is_empty() {
            frame(out, OP_TEXT, &piece);
        }
        match r {
            Pull::End | Pull::Abort => {
                frame(out, OP_CLOSE, &1000u16.to_be_bytes());
                self.closed = true;
                Pull::End
            }
            Pull::Wait(_) | Pull::Data if !out.is_empty() => Pull::Data,
            other => other,
        }
    }

    fn input(&mut self, cx: &mut C, me: ConnId, data: &[u8]) -> usize {
        let mut used = 0;
        while used < data.len() {
            if self.closed {
                return data.len();
            }
            let Some(mut rx) = self.rx.take() else {
                self.head.push(data[used]);
                used += 1;
                match parse_head(&self.head) {
                    Ok(None) => {}
                    Ok(Some(rx)) => {
                        self.head.clear();
                        if rx.left == 0 && rx.opcode & 0x8 != 0 {
                            self.control_frame(cx, me, rx);
                        } else if rx.left > 0 {
                            self.rx = Some(rx);
                        }
                    }
                    Err(()) => self.close(cx, me, 1002),
                }
                continue;
            };
            let n = (data.len() - used).min(usize::try_from(rx.left).unwrap_or(usize::MAX));
            let plain: Vec<u8> = data[used..used + n]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ rx.mask[((rx.pos + i as u64) % 4) as usize])
                .collect();
            let taken = if rx.opcode & 0x8 != 0 {
                rx.control.extend_from_slice(&plain);
                n
            } else if matches!(rx.opcode, OP_TEXT | OP_BINARY | OP_CONT) {
                self.inner.input(cx, me, &plain).min(n)
            } else {
                n
            };
            used += taken;
            rx.pos += taken as u64;
            rx.left -= taken as u64;
            if rx.left == 0 {
                if rx.opcode & 0x8 != 0 {
                    self.control_frame(cx, me, rx);
                }
            } else {
                self.rx = Some(rx);
            }
            if taken < n {
                break; // the stream is full: the rest waits for a wake
            }
        }
        used
    }

    fn input_closed(&mut self, cx: &mut C, me: ConnId) {
        if !self.closed {
            self.inner.input_closed(cx, me);
        }
    }

    fn cancel(&mut self, cx: &mut C, me: ConnId) {
        self.inner.cancel(cx, me);
    }
}

/// SHA-1 (FIPS 180-4), for the handshake's accept key only.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_rfc_6455() {
        // RFC 6455 section 1.3's example.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let hex: String = sha1(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(crate::base64::encode(b"hi"), "aGk=");
        assert_eq!(crate::base64::encode(b"hi!!"), "aGkhIQ==");
    }

    struct Echo(Vec<u8>, bool);
    impl Hijacked<()> for Echo {
        fn pull(&mut self, _: &mut (), _: ConnId, out: &mut Vec<u8>) -> Pull {
            out.append(&mut self.0);
            Pull::Wait(None)
        }
        fn input(&mut self, _: &mut (), _: ConnId, data: &[u8]) -> usize {
            let n = data.len().min(3);
            self.0.extend_from_slice(&data[..n]);
            n
        }
        fn input_closed(&mut self, _: &mut (), _: ConnId) {
            self.1 = true;
        }
        fn cancel(&mut self, _: &mut (), _: ConnId) {}
    }

    fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    #[test]
    fn frames_both_ways_with_backpressure() {
        let mut ws = WebSocket::new(Box::new(Echo(Vec::new(), false)));
        let mut data = client_frame(OP_TEXT, b"echo hi\n");
        data.extend(client_frame(OP_PING, b"p"));
        let mut used = 0;
        let mut out = Vec::new();
        while used < data.len() {
            // The inner stream takes 3 bytes a call: the rest is offered again.
            used += ws.input(&mut (), 0, &data[used..]);
            assert_eq!(ws.pull(&mut (), 0, &mut out), Pull::Data);
        }
        let text: Vec<u8> = [
            frame_of(OP_TEXT, b"ech"),
            frame_of(OP_TEXT, b"o h"),
            // Control frames go out first, before the stream's next piece.
            frame_of(OP_PONG, b"p"),
            frame_of(OP_TEXT, b"i\n"),
        ]
        .concat();
        assert_eq!(out, text);
        let mut out = Vec::new();
        ws.input(&mut (), 0, &client_frame(OP_CLOSE, &1000u16.to_be_bytes()));
        assert_eq!(ws.pull(&mut (), 0, &mut out), Pull::End);
        assert_eq!(out, frame_of(OP_CLOSE, &1000u16.to_be_bytes()));
    }

    fn frame_of(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        frame(&mut v, opcode, payload);
        v
    }

    #[test]
    fn unmasked_client_frames_are_refused() {
        let mut ws = WebSocket::new(Box::new(Echo(Vec::new(), false)));
        ws.input(&mut (), 0, &[0x81, 0x02, b'h', b'i']);
        let mut out = Vec::new();
        assert_eq!(ws.pull(&mut (), 0, &mut out), Pull::End);
        assert_eq!(out, frame_of(OP_CLOSE, &1002u16.to_be_bytes()));
    }
}
