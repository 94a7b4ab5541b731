//! `.dockerignore` as moby's patternmatcher reads it: one pattern a line,
//! `#` comments, paths cleaned and made relative, `!` exceptions, `*`,
//! `?`, `[...]`, `**` across directories; the last matching pattern wins
//! and a pattern that matches a directory matches everything under it.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `*`: anything but `/`.
    Star,
    /// `?`: one character but `/`.
    One,
    /// `**`: anything, `/` included.
    Deep,
    /// `**/`: zero or more whole directories.
    DeepDir,
    /// `[...]`: ranges, negated with `^` or `!`.
    Class(Vec<(char, char)>, bool),
}

#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    toks: Vec<Tok>,
}

#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

impl Matcher {
    /// Parse a `.dockerignore` file's text.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let mut patterns = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err("illegal exclusion pattern: \"!\"".into());
                }
            }
            let mut cleaned = clean(p);
            if cleaned.len() > 1 {
                cleaned = cleaned.trim_start_matches('/').to_string();
            }
            patterns.push(Pattern {
                exclusion,
                toks: compile(&cleaned)?,
            });
        }
        Ok(Matcher { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative, `/`-separated) is excluded from the context.
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let path = path.trim_start_matches('/');
        let parents: Vec<&str> = path
            .match_indices('/')
            .map(|(i, _)| &path[..i])
            .chain(std::iter::once(path))
            .collect();
        let mut excluded = false;
        for p in &self.patterns {
            // Only a pattern that can change the answer is tried.
            if p.exclusion != excluded {
                continue;
            }
            if parents
                .iter()
                .any(|q| matches(&p.toks, &q.chars().collect::<Vec<_>>()))
            {
                excluded = !p.exclusion;
            }
        }
        excluded
    }
}

/// Go's `filepath.Clean` for slash paths.
pub fn clean(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !abs {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let body = out.join("/");
    match (abs, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// Go's `filepath.Match` (COPY/ADD wildcards): `*` and `?` never cross
/// `/`, so a `**` is two stars; a bad pattern matches nothing.
pub fn path_match(pattern: &str, name: &str) -> bool {
    let Ok(toks) = compile(pattern) else {
        return false;
    };
    let toks: Vec<Tok> = toks
        .into_iter()
        .flat_map(|t| match t {
            Tok::Deep => vec![Tok::Star, Tok::Star],
            Tok::DeepDir => vec![Tok::Star, Tok::Star, Tok::Lit('/')],
            t => vec![t],
        })
        .collect();
    matches(&toks, &name.chars().collect::<Vec<_>>())
}

/// Whether a COPY/ADD source names a pattern (`*`, `?`, `[` not escaped).
pub fn has_wildcards(name: &str) -> bool {
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

fn compile(p: &str) -> Result<Vec<Tok>, String> {
    let bad = || format!("syntax error in pattern: {p}");
    let chars: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                    toks.push(Tok::DeepDir);
                } else {
                    toks.push(Tok::Deep);
                }
            }
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::One),
            '\\' => toks.push(Tok::Lit(*chars.get(i).ok_or_else(bad)?)),
            '[' => {
                let neg = matches!(chars.get(i), Some('^') | Some('!'));
                if neg {
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    let mut a = *chars.get(i).ok_or_else(bad)?;
                    i += 1;
                    if a == ']' && !ranges.is_empty() {
                        break;
                    }
                    if a == '\\' {
                        a = *chars.get(i).ok_or_else(bad)?;
                        i += 1;
                    }
                    let mut b = a;
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
                        b = chars[i + 1];
                        i += 2;
                    }
                    ranges.push((a, b));
                }
                toks.push(Tok::Class(ranges, neg));
            }
            c => toks.push(Tok::Lit(c)),
        }
        if c == '\\' {
            i += 1;
        }
    }
    Ok(toks)
}

/// Whether `toks` match all of `s`, decided bottom-up: after the tokens from
/// the end down to `ti` are taken, `next[si]` says whether they match
/// `s[si..]`. Each token costs one pass over `s`, so a pattern costs tokens x
/// length whatever its stars (a .dockerignore is the client's input: the
/// memoised recursion this replaces took tokens x length x length, 12 s for a
/// fuzzer's line of 660 stars against a 1,300-character path, and recursed as
/// deep as the pattern and path together).
fn matches(toks: &[Tok], s: &[char]) -> bool {
    let n = s.len();
    let mut next = vec![false; n + 1];
    next[n] = true;
    let mut cur = vec![false; n + 1];
    for tok in toks.iter().rev() {
        cur[n] = matches!(tok, Tok::Star | Tok::Deep | Tok::DeepDir) && next[n];
        match tok {
            // `*` takes no `/`; `**` takes anything.
            Tok::Star | Tok::Deep => {
                let deep = matches!(tok, Tok::Deep);
                for si in (0..n).rev() {
                    cur[si] = next[si] || ((deep || s[si] != '/') && cur[si + 1]);
                }
            }
            // `**/`: nothing, or everything up to and including some `/`.
            Tok::DeepDir => {
                let mut later = false;
                for si in (0..n).rev() {
                    later = later || (s[si] == '/' && next[si + 1]);
                    cur[si] = next[si] || later;
                }
            }
            one => {
                for si in 0..n {
                    cur[si] = takes(one, s[si]) && next[si + 1];
                }
            }
        }
        std::mem::swap(&mut cur, &mut next);
    }
    next[0]
}

/// Whether a one-character token takes `c`.
fn takes(tok: &Tok, c: char) -> bool {
    match tok {
        Tok::Lit(l) => *l == c,
        Tok::One => c != '/',
        Tok::Class(ranges, neg) => {
            c != '/' && ranges.iter().any(|(a, b)| *a <= c && c <= *b) != *neg
        }
        Tok::Star | Tok::Deep | Tok::DeepDir => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain recursive matcher the DP replaced, as the reference.
    fn reference(toks: &[Tok], s: &[char]) -> bool {
        match toks.first() {
            None => s.is_empty(),
            Some(Tok::Star) => {
                for n in 0..=s.len() {
                    if reference(&toks[1..], &s[n..]) {
                        return true;
                    }
                    if s.get(n) == Some(&'/') {
                        return false;
                    }
                }
                false
            }
            Some(Tok::Deep) => (0..=s.len()).any(|n| reference(&toks[1..], &s[n..])),
            Some(Tok::DeepDir) => {
                reference(&toks[1..], s)
                    || (0..s.len()).any(|i| s[i] == '/' && reference(&toks[1..], &s[i + 1..]))
            }
            Some(t) => s.first().is_some_and(|c| takes(t, *c)) && reference(&toks[1..], &s[1..]),
        }
    }

    #[test]
    fn the_dp_matcher_agrees_with_plain_recursion() {
        let pieces = ["a", "b", "/", "*", "?", "**", "**/", "[ab]", "[^a]"];
        let chars = ['a', 'b', 'c', '/'];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) as usize) % n
        };
        let mut matched = 0;
        for _ in 0..20_000 {
            let pattern: String = (0..rnd(6)).map(|_| pieces[rnd(pieces.len())]).collect();
            let path: Vec<char> = (0..rnd(8)).map(|_| chars[rnd(chars.len())]).collect();
            let toks = compile(&pattern).unwrap();
            let want = reference(&toks, &path);
            matched += usize::from(want);
            let got = matches(&toks, &path);
            assert_eq!(
                got,
                want,
                "{pattern:?} against {:?}",
                path.iter().collect::<String>()
            );
        }
        assert!(
            matched > 1_000,
            "too few matches to mean anything: {matched}"
        );
    }

    #[test]
    fn a_line_of_stars_costs_one_pass_per_token() {
        // The fuzzer's timeout: 660 stars against 1,300 characters.
        let m = Matcher::parse(&"*".repeat(660)).unwrap();
        assert!(m.excluded(&"x".repeat(1300)));
        // `**` crosses `/`, and the parent directory matches first anyway.
        assert!(m.excluded(&format!("{}/y", "x".repeat(1300))));
        let p = format!("{}b", "*a".repeat(300));
        let m = Matcher::parse(&p).unwrap();
        assert!(!m.excluded(&"a".repeat(2000)));
    }
}
