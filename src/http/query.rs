//! Query strings and percent-decoding, with dockerd's notion of booleans.

/// Decode `%XX` escapes (and `+` as space when `plus_is_space`). Invalid
/// escapes are kept literally, as Go's lenient clients expect.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parsed `?a=b&c=d` parameters, in order, repeated keys kept.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: &str) -> Query {
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k, true), percent_decode(v, true))
            })
            .collect();
        Query { pairs }
    }

    /// First value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key` (for `?names=a&names=b`).
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// dockerd's `BoolValue`: absent, "", "0", "no", "false", "none" are false.
    pub fn bool(&self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_reads_bools() {
        let q = Query::parse("all=1&filters=%7B%22a%22%3A1%7D&x=a+b&n=no&names=a&names=b&bad=%zz");
        assert!(q.bool("all"));
        assert!(!q.bool("n"));
        assert!(!q.bool("missing"));
        assert_eq!(q.get("filters"), Some("{\"a\":1}"));
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.get_all("names").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(percent_decode("a%2", false), "a%2");
        assert_eq!(percent_decode("%41", false), "A");
    }
}
