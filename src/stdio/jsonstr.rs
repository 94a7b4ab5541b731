//! A log line as a JSON string, byte for byte as dockerd's json-file driver
//! writes it (moby's `jsonlog.ffjsonWriteJSONBytesAsString`): `\"`, `\\`,
//! `\n`, `\r`; every other control byte and `<`, `>`, `&` as `\u00xx`; each
//! byte that does not start a valid UTF-8 sequence as `\ufffd` (one per
//! byte, as Go's `utf8.DecodeRune`); U+2028 and U+2029 as `\u2028`/`\u2029`;
//! the rest as is.
//!
//! This is the hottest loop of a chatty container with the default log (a
//! NUL byte becomes six), so it is table-driven and writes into room made
//! once per string: runs of plain bytes are copied whole, an escape is one
//! fixed-size copy from a table, and nothing allocates or calls per byte.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What a byte needs: copied as is, escaped, or (>= 0x80) UTF-8 decoding.
const PLAIN: u8 = 0;
const ESCAPE: u8 = 1;
const MULTI: u8 = 2;

const CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = if b >= 0x80 {
            MULTI
        } else if b < 0x20 || matches!(b as u8, b'"' | b'\\' | b'<' | b'>' | b'&') {
            ESCAPE
        } else {
            PLAIN
        };
        b += 1;
    }
    t
};

/// Each escaped ASCII byte's text, padded to 6 bytes, and its length.
const ESCAPES: [([u8; 6], u8); 128] = {
    let mut t = [([0u8; 6], 0u8); 128];
    let mut b = 0;
    while b < 128 {
        t[b] = match b as u8 {
            b'"' => ([b'\\', b'"', 0, 0, 0, 0], 2),
            b'\\' => ([b'\\', b'\\', 0, 0, 0, 0], 2),
            b'\n' => ([b'\\', b'n', 0, 0, 0, 0], 2),
            b'\r' => ([b'\\', b'r', 0, 0, 0, 0], 2),
            _ => ([b'\\', b'u', b'0', b'0', HEX[b >> 4], HEX[b & 0xf]], 6),
        };
        b += 1;
    }
    t
};

/// The longest text one input byte can become (`\u0000`; `\ufffd` per
/// invalid byte; `\u2028` for three bytes).
const MAX_EXPANSION: usize = 6;

/// Log records being built: bytes written by index into a buffer whose
/// bytes stay initialised from one use to the next, so making room costs
/// nothing once it has grown. (A `Vec` cleared and resized zeroes its room
/// again on every use: at the release profile's opt-level "z" that zeroing
/// cost 14% of the attach-with-log profile, as much as half the escaping.)
#[derive(Default)]
pub struct RecordBuf {
    bytes: Vec<u8>,
    len: usize,
}

impl RecordBuf {
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The `n` bytes after the end, made writable (grown by doubling).
    fn room(&mut self, n: usize) -> &mut [u8] {
        let need = self.len + n;
        if self.bytes.len() < need {
            self.bytes.resize(need.max(self.bytes.len() * 2), 0);
        }
        &mut self.bytes[self.len..need]
    }

    pub fn push(&mut self, s: &[u8]) {
        self.room(s.len()).copy_from_slice(s);
        self.len += s.len();
    }

    /// Append `s` as a quoted JSON string, as dockerd writes it.
    pub fn push_log_str(&mut self, s: &[u8]) {
        // Room for the worst case: no capacity check or growth per escape.
        let dst = self.room(s.len() * MAX_EXPANSION + 2);
        let n = escape_into(dst, s);
        self.len += n;
    }
}

/// `s` as a quoted JSON string into `dst` (at least `6 * s.len() + 2`
/// bytes); returns the length written.
fn escape_into(dst: &mut [u8], s: &[u8]) -> usize {
    dst[0] = b'"';
    let mut j = 1;
    let mut i = 0;
    let mut start = 0;
    while i < s.len() {
        let b = s[i];
        match CLASS[b as usize] {
            PLAIN => {
                i += 1;
                continue;
            }
            ESCAPE => {
                if start < i {
                    dst[j..j + i - start].copy_from_slice(&s[start..i]);
                    j += i - start;
                }
                let (text, len) = &ESCAPES[b as usize];
                let len = *len as usize;
                dst[j..j + 6].copy_from_slice(text);
                // A run of the same byte (NULs from a binary or `dd`) is
                // filled by doubling copies, not one escape at a time.
                let run = 1 + s[i + 1..].iter().take_while(|&&c| c == b).count();
                let mut filled = len;
                while filled < run * len {
                    let n = filled.min(run * len - filled);
                    dst.copy_within(j..j + n, j + filled);
                    filled += n;
                }
                j += run * len;
                i += run;
                start = i;
            }
            _ => {
                let n = utf8_len(&s[i..]);
                let escape: Option<&[u8; 6]> = match n {
                    0 => Some(b"\\ufffd"),
                    3 if s[i] == 0xe2 && s[i + 1] == 0x80 && s[i + 2] == 0xa8 => Some(b"\\u2028"),
                    3 if s[i] == 0xe2 && s[i + 1] == 0x80 && s[i + 2] == 0xa9 => Some(b"\\u2029"),
                    _ => None,
                };
                let Some(text) = escape else {
                    i += n;
                    continue;
                };
                if start < i {
                    dst[j..j + i - start].copy_from_slice(&s[start..i]);
                    j += i - start;
                }
                dst[j..j + 6].copy_from_slice(text);
                j += 6;
                i += n.max(1);
                start = i;
            }
        }
    }
    if start < s.len() {
        dst[j..j + s.len() - start].copy_from_slice(&s[start..]);
        j += s.len() - start;
    }
    dst[j] = b'"';
    j + 1
}

/// Length of the valid UTF-8 sequence `s` starts with (2 to 4), or 0 when
/// its first byte starts none (Go's `utf8.DecodeRune` answering
/// `RuneError, 1`): the same ranges as Go's and Rust's decoders, so no
/// overlong forms, surrogates or code points past U+10FFFF.
fn utf8_len(s: &[u8]) -> usize {
    let (n, lo, hi) = match s[0] {
        0xc2..=0xdf => (2, 0x80, 0xbf),
        0xe0 => (3, 0xa0, 0xbf),
        0xe1..=0xec | 0xee..=0xef => (3, 0x80, 0xbf),
        0xed => (3, 0x80, 0x9f),
        0xf0 => (4, 0x90, 0xbf),
        0xf1..=0xf3 => (4, 0x80, 0xbf),
        0xf4 => (4, 0x80, 0x8f),
        _ => return 0,
    };
    if s.len() < n || !(lo..=hi).contains(&s[1]) {
        return 0;
    }
    if s[2..n].iter().any(|&c| !(0x80..=0xbf).contains(&c)) {
        return 0;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &[u8]) -> String {
        let mut out = RecordBuf::default();
        out.push(b"x");
        out.push_log_str(s);
        out.clear();
        // A used buffer: its old bytes must not leak into the next string.
        out.push_log_str(b"abcdefgh\x00");
        out.clear();
        out.push_log_str(s);
        String::from_utf8(out.as_slice().to_vec()).expect("the escaped form is UTF-8")
    }

    /// Written the way moby's loop is (rune by rune, one branch per case),
    /// independently of the table-driven one above.
    fn reference(s: &[u8]) -> String {
        let mut out = String::from("\"");
        let mut i = 0;
        while i < s.len() {
            let b = s[i];
            if b < 0x80 {
                match b {
                    b'\\' | b'"' => {
                        out.push('\\');
                        out.push(b as char);
                    }
                    b'\n' => out.push_str("\\n"),
                    b'\r' => out.push_str("\\r"),
                    0..=0x1f | b'<' | b'>' | b'&' => out.push_str(&format!("\\u{b:04x}")),
                    _ => out.push(b as char),
                }
                i += 1;
                continue;
            }
            let end = (i + 4).min(s.len());
            let c = (i + 2..=end)
                .find_map(|e| std::str::from_utf8(&s[i..e]).ok())
                .and_then(|t| t.chars().next());
            match c {
                None => {
                    out.push_str("\\ufffd");
                    i += 1;
                }
                Some(c) => {
                    if c == '\u{2028}' || c == '\u{2029}' {
                        out.push_str(&format!("\\u{:04x}", c as u32));
                    } else {
                        out.push(c);
                    }
                    i += c.len_utf8();
                }
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn dockerd_escapes() {
        assert_eq!(esc(b""), r#""""#);
        assert_eq!(esc(b"a\tb\n"), r#""a\u0009b\n""#);
        assert_eq!(
            esc(b"\0\x08\x0c\r\x1f\x7f"),
            "\"\\u0000\\u0008\\u000c\\r\\u001f\x7f\""
        );
        assert_eq!(
            esc(b"<a href=\"x\">&</a>\\"),
            r#""\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e\\""#
        );
        // Invalid bytes one by one; a truncated sequence is one per byte.
        assert_eq!(
            esc(b"\xff\xfeA\xe2\x82B\xc0\xaf"),
            r#""\ufffd\ufffdA\ufffd\ufffdB\ufffd\ufffd""#
        );
        // Surrogates and past U+10FFFF are invalid; a real U+FFFD is kept.
        assert_eq!(
            esc(b"\xed\xa0\x80\xf4\x90\x80\x80"),
            format!("\"{}\"", "\\ufffd".repeat(7))
        );
        assert_eq!(esc("é€😀\u{fffd}".as_bytes()), "\"é€😀\u{fffd}\"");
        assert_eq!(esc("a\u{2028}b\u{2029}".as_bytes()), r#""a\u2028b\u2029""#);
        assert_eq!(esc(&[0u8; 3]), r#""\u0000\u0000\u0000""#);
    }

    #[test]
    fn matches_the_reference_on_noise() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut noisy = Vec::new();
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Bias towards UTF-8 lead and continuation bytes.
            let b = x as u8;
            noisy.push(if x & 0x300 == 0 { 0x80 | (b & 0x3f) } else { b });
        }
        let mut all: Vec<u8> = (0..=255u8).collect();
        all.extend_from_slice("é€😀 \u{2028}\u{fffd}".as_bytes());
        for input in [&noisy[..], &all[..], &noisy[..7], &noisy[1..]] {
            assert_eq!(esc(input), reference(input));
        }
    }
}
