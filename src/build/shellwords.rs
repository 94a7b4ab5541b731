//! The classic builder's word processing (moby's `shell.Lex`): quotes
//! removed, the escape token honoured, `$VAR` / `${VAR}` and the
//! `${VAR:-x}` family expanded from the build's environment. Used on the
//! arguments of ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER,
//! VOLUME, WORKDIR and ARG; RUN, CMD and ENTRYPOINT are left to the shell.
//! Also the parse-time splits that keep quotes for later: `raw_words`,
//! `name_vals`.

use super::dockerfile::ParseError;

/// Look a variable up in the build's environment (ENV, then ARG).
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        Env::get(self.as_slice(), name)
    }
}

/// One word: quotes removed, variables expanded, no splitting.
pub fn process_word(word: &str, env: &dyn Env, escape: char) -> Result<String, ParseError> {
    let mut lex = Lexer::new(word, env, escape);
    let words = lex.run(false)?;
    Ok(words.into_iter().next().unwrap_or_default())
}

/// Several words: split on unquoted whitespace, then processed.
pub fn process_words(text: &str, env: &dyn Env, escape: char) -> Result<Vec<String>, ParseError> {
    let mut lex = Lexer::new(text, env, escape);
    lex.run(true)
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    escape: char,
}

impl<'a> Lexer<'a> {
    fn new(text: &str, env: &'a dyn Env, escape: char) -> Self {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
            env,
            escape,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn run(&mut self, split: bool) -> Result<Vec<String>, ParseError> {
        let mut words = Vec::new();
        let mut cur = String::new();
        // A word made only of quotes ("") still counts as a word.
        let mut in_word = false;
        while let Some(c) = self.peek() {
            if split && c.is_whitespace() {
                self.pos += 1;
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                continue;
            }
            in_word = true;
            if c == self.escape {
                self.pos += 1;
                match self.next() {
                    Some(n) => cur.push(n),
                    // A lone escape at the end stays.
                    None => cur.push(c),
                }
            } else if c == '\'' {
                self.pos += 1;
                self.single_quoted(&mut cur)?;
            } else if c == '"' {
                self.pos += 1;
                self.double_quoted(&mut cur)?;
            } else if c == '$' {
                self.pos += 1;
                // An unquoted expansion is not re-split: it joins the word.
                let v = self.dollar()?;
                cur.push_str(&v);
            } else {
                self.pos += 1;
                cur.push(c);
            }
        }
        if in_word || !split {
            words.push(cur);
        }
        Ok(words)
    }

    fn single_quoted(&mut self, out: &mut String) -> Result<(), ParseError> {
        loop {
            match self.next() {
                None => {
                    return Err(ParseError::Syntax(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    ))
                }
                Some('\'') => return Ok(()),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quoted(&mut self, out: &mut String) -> Result<(), ParseError> {
        loop {
            match self.next() {
                None => {
                    return Err(ParseError::Syntax(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    ))
                }
                Some('"') => return Ok(()),
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                }
                Some(c) if c == self.escape => match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.pos += 1;
                        out.push(n);
                    }
                    _ => out.push(c),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// After a `$`: a name, `{...}`, or a literal `$`.
    fn dollar(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced()
            }
            Some(c) if c == '_' || c.is_ascii_alphanumeric() => {
                let name = self.name();
                Ok(self.env.get(&name).unwrap_or_default())
            }
            _ => Ok("$".into()),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c == '_' || c.is_ascii_alphanumeric() {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// `${NAME}` and its modifiers, after the `{`.
    fn braced(&mut self) -> Result<String, ParseError> {
        let name = self.name();
        if name.is_empty() {
            return Err(ParseError::Syntax("bad substitution".into()));
        }
        let value = self.env.get(&name);
        let Some(c) = self.next() else {
            return Err(ParseError::Syntax(format!(
                "missing '}}' in '{}'",
                self.chars.iter().collect::<String>()
            )));
        };
        if c == '}' {
            return Ok(value.unwrap_or_default());
        }
        let colon = c == ':';
        let op = if colon { self.next().unwrap_or('}') } else { c };
        if !matches!(op, '-' | '+' | '?') {
            return Err(ParseError::Syntax(format!(
                "unsupported modifier ({}) in substitution",
                if colon {
                    format!(":{op}")
                } else {
                    op.to_string()
                }
            )));
        }
        let word = self.word_until_brace()?;
        // With ':' an empty value counts as unset.
        let set = match &value {
            None => false,
            Some(v) => !(colon && v.is_empty()),
        };
        Ok(match op {
            '-' => {
                if set {
                    value.unwrap_or_default()
                } else {
                    word
                }
            }
            '+' => {
                if set {
                    word
                } else {
                    String::new()
                }
            }
            _ => {
                if set {
                    value.unwrap_or_default()
                } else {
                    let msg = if word.is_empty() {
                        "is not allowed to be unset".to_string()
                    } else {
                        word
                    };
                    return Err(ParseError::Syntax(format!("{name}: {msg}")));
                }
            }
        })
    }

    /// The word of a modifier, expanded, up to the closing brace.
    fn word_until_brace(&mut self) -> Result<String, ParseError> {
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(ParseError::Syntax(format!(
                        "missing '}}' in '{}'",
                        self.chars.iter().collect::<String>()
                    )))
                }
                Some('}') => return Ok(out),
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                }
                Some('\'') => self.single_quoted(&mut out)?,
                Some('"') => self.double_quoted(&mut out)?,
                Some(c) if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }
}

/// Split on unquoted whitespace, quotes and escapes kept for substitution.
pub fn raw_words(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == escape && quote != Some('\'') {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                continue;
            }
            None => {}
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// ENV / LABEL: `k=v k2="v 2"`, or the legacy `k value...`.
pub fn name_vals(kw: &str, rest: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = raw_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(format!("{kw} requires at least one argument"));
    };
    if !first.contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .map(|(k, v)| (k, v.trim()))
            .unwrap_or((rest, ""));
        if v.is_empty() {
            return Err(format!("{kw} must have two arguments"));
        }
        return Ok(vec![(k.to_string(), v.to_string())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("{kw} names can not be blank")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            )),
        })
        .collect()
}
