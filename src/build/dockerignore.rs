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

/// Whether `toks` match all of `s`. Each (token, position) pair is decided once
/// (memoised), so a pattern of many `*` or `**` costs tokens x length x length at
/// worst, not the exponential backtracking a plain recursion takes on
/// `*a*a*a*a...b` (a .dockerignore is the client's input).
fn matches(toks: &[Tok], s: &[char]) -> bool {
    let mut memo = vec![None; (toks.len() + 1) * (s.len() + 1)];
    match_at(toks, s, 0, 0, &mut memo)
}

fn match_at(toks: &[Tok], s: &[char], ti: usize, si: usize, memo: &mut [Option<bool>]) -> bool {
    let key = ti * (s.len() + 1) + si;
    if let Some(done) = memo[key] {
        return done;
    }
    let here = &s[si..];
    let r = match toks.get(ti) {
        None => here.is_empty(),
        Some(Tok::Lit(c)) => here.first() == Some(c) && match_at(toks, s, ti + 1, si + 1, memo),
        Some(Tok::One) => {
            here.first().is_some_and(|c| *c != '/') && match_at(toks, s, ti + 1, si + 1, memo)
        }
        Some(Tok::Class(ranges, neg)) => {
            here.first()
                .is_some_and(|c| *c != '/' && ranges.iter().any(|(a, b)| a <= c && c <= b) != *neg)
                && match_at(toks, s, ti + 1, si + 1, memo)
        }
        Some(Tok::Star) => {
            let mut found = false;
            for n in si..=s.len() {
                if match_at(toks, s, ti + 1, n, memo) {
                    found = true;
                    break;
                }
                if s.get(n) == Some(&'/') {
                    break;
                }
            }
            found
        }
        Some(Tok::Deep) => (si..=s.len()).any(|n| match_at(toks, s, ti + 1, n, memo)),
        Some(Tok::DeepDir) => {
            match_at(toks, s, ti + 1, si, memo)
                || (si..s.len()).any(|i| s[i] == '/' && match_at(toks, s, ti + 1, i + 1, memo))
        }
    };
    memo[key] = Some(r);
    r
}
