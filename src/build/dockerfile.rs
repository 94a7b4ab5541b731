//! The Dockerfile parser with the classic builder's semantics: parser
//! directives (`# escape`, `# syntax`), comments, line continuations,
//! instructions with their `--flags`, JSON and shell forms, and the stages
//! (`ARG` before the first `FROM` are the meta args). Pure: variables are
//! substituted when a step is dispatched (`shellwords`), not here.

use std::fmt;

use super::shellwords::{name_vals, raw_words};

/// dockerd's pointer for what only BuildKit does.
pub const BUILDKIT_HINT: &str =
    "Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled";

#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    /// A malformed line: "dockerfile parse error on line N: ...".
    Line(usize, String),
    /// A malformed word during substitution or dispatch.
    Syntax(String),
    /// The Dockerfile has no instruction.
    Empty,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Line(n, m) => write!(f, "dockerfile parse error on line {n}: {m}"),
            ParseError::Syntax(m) => f.write_str(m),
            ParseError::Empty => f.write_str("file with no instructions"),
        }
    }
}

/// A command line: `["exe","arg"]` or a string for the shell.
#[derive(Debug, Clone, PartialEq)]
pub enum CmdLine {
    Json(Vec<String>),
    Shell(String),
}

impl CmdLine {
    /// The argv, the shell form run through `shell` (the `SHELL`).
    pub fn argv(&self, shell: &[String]) -> Vec<String> {
        match self {
            CmdLine::Json(v) => v.clone(),
            CmdLine::Shell(s) => {
                let mut v = shell.to_vec();
                v.push(s.clone());
                v
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// `None` for `HEALTHCHECK NONE`.
    pub test: Option<CmdLine>,
    /// `--interval=..` and friends, as written.
    pub flags: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CopyArgs {
    /// Sources then destination, raw (substituted at dispatch).
    pub srcs: Vec<String>,
    pub dest: String,
    pub chown: Option<String>,
    pub from: Option<String>,
}

/// One instruction, its arguments split as the classic builder splits them.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Run(CmdLine),
    Cmd(CmdLine),
    Entrypoint(CmdLine),
    Shell(Vec<String>),
    /// Raw `key=value` words, each side substituted at dispatch.
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    /// `name` or `name=default`.
    Arg(Vec<(String, Option<String>)>),
    Maintainer(String),
    Expose(Vec<String>),
    User(String),
    Workdir(String),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(Health),
    /// The trigger, as written after `ONBUILD`.
    Onbuild(String),
    Copy(CopyArgs),
    Add(CopyArgs),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// First line of the instruction in the file (1-based).
    pub line: usize,
    /// The instruction as written, continuations joined (the "Step" text).
    pub original: String,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The FROM line.
    pub from: Instruction,
    pub steps: Vec<Instruction>,
}

impl Stage {
    pub fn name(&self) -> Option<&str> {
        match &self.from.command {
            Command::From { name, .. } => name.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    pub escape: char,
    /// `ARG`s before the first `FROM`.
    pub meta_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// The stages up to and including `target` (all without one).
    pub fn up_to_target(&self, target: &str) -> Result<usize, String> {
        if target.is_empty() {
            return Ok(self.stages.len());
        }
        self.stages
            .iter()
            .position(|s| s.name().is_some_and(|n| n.eq_ignore_ascii_case(target)))
            .map(|i| i + 1)
            .ok_or_else(|| format!("failed to reach build target {target} in Dockerfile"))
    }
}

/// Parse a whole Dockerfile.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines: Vec<&str> = src
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut escape = '\\';
    let mut seen_escape = false;
    let mut directives_open = true;
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let lineno = i + 1;
        let raw = lines[i];
        i += 1;
        let trimmed = raw.trim_start();
        if directives_open {
            if let Some((k, v)) = directive(trimmed) {
                if k == "escape" {
                    if seen_escape {
                        return Err(ParseError::Line(
                            lineno,
                            "only one escape parser directive can be used".into(),
                        ));
                    }
                    seen_escape = true;
                    escape = match v.as_str() {
                        "\\" => '\\',
                        "`" => '`',
                        _ => {
                            return Err(ParseError::Line(
                                lineno,
                                format!("invalid escape token '{v}' does not match ` or \\"),
                            ))
                        }
                    };
                }
                continue;
            }
            directives_open = false;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (mut line, mut done) = trim_continuation(trimmed, escape);
        while !done && i < lines.len() {
            let next = lines[i];
            i += 1;
            if next.trim_start().starts_with('#') || next.trim().is_empty() {
                continue;
            }
            let (part, end) = trim_continuation(next, escape);
            line.push_str(&part);
            done = end;
        }
        if line.trim().is_empty() {
            continue;
        }
        out.push((lineno, line));
    }
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for (lineno, line) in out {
        let ins = instruction(lineno, &line, escape)?;
        match (&ins.command, stages.last_mut()) {
            (Command::From { .. }, _) => stages.push(Stage {
                from: ins,
                steps: Vec::new(),
            }),
            (_, Some(stage)) => stage.steps.push(ins),
            (Command::Arg(_), None) => meta_args.push(ins),
            (_, None) => {
                return Err(ParseError::Line(
                    lineno,
                    "no build stage in current context".into(),
                ))
            }
        }
    }
    if stages.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(Dockerfile {
        escape,
        meta_args,
        stages,
    })
}

/// `# name=value` at the top of the file.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.strip_prefix('#')?.trim();
    let (k, v) = body.split_once('=')?;
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((k.to_ascii_lowercase(), v.trim().to_string()))
}

/// Strip a trailing escape (and whitespace after it): (text, line ends).
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(body) => (body.to_string(), false),
        None => (line.to_string(), true),
    }
}

const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "SHELL",
    "ENV",
    "LABEL",
    "ARG",
    "MAINTAINER",
    "EXPOSE",
    "USER",
    "WORKDIR",
    "STOPSIGNAL",
    "VOLUME",
    "HEALTHCHECK",
    "ONBUILD",
    "COPY",
    "ADD",
];

/// Parse one joined line into an instruction.
pub fn instruction(lineno: usize, line: &str, escape: char) -> Result<Instruction, ParseError> {
    let err = |m: String| ParseError::Line(lineno, m);
    let line = line.trim();
    let (kw, rest) = line
        .split_once(char::is_whitespace)
        .map(|(k, r)| (k, r.trim_start()))
        .unwrap_or((line, ""));
    let upper = kw.to_ascii_uppercase();
    if !KEYWORDS.contains(&upper.as_str()) {
        return Err(err(format!("unknown instruction: {upper}")));
    }
    let (flags, rest) = split_flags(rest);
    let rest = rest.trim();
    let allowed: &[&str] = match upper.as_str() {
        "FROM" => &["platform"],
        "COPY" => &["from", "chown", "chmod", "link", "parents", "exclude"],
        "ADD" => &["chown", "chmod", "link", "checksum", "keep-git-dir"],
        "RUN" => &["mount", "network", "security"],
        "HEALTHCHECK" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        _ => &[],
    };
    for (name, _) in &flags {
        if !allowed.contains(&name.as_str()) {
            return Err(err(format!("unknown flag: {name}")));
        }
    }
    let flag = |n: &str| {
        flags
            .iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    // What only BuildKit does.
    for f in [
        "chmod",
        "link",
        "parents",
        "exclude",
        "checksum",
        "keep-git-dir",
        "mount",
        "network",
        "security",
    ] {
        if flags.iter().any(|(k, _)| k == f) {
            return Err(err(format!(
                "the --{f} option requires BuildKit. {BUILDKIT_HINT}"
            )));
        }
    }
    if matches!(upper.as_str(), "RUN" | "COPY" | "ADD") && has_heredoc(rest) {
        return Err(err(format!("heredocs require BuildKit. {BUILDKIT_HINT}")));
    }
    let need = |ok: bool, m: &str| if ok { Ok(()) } else { Err(err(m.to_string())) };
    let command = match upper.as_str() {
        "FROM" => {
            let w: Vec<&str> = rest.split_whitespace().collect();
            let name = match w.len() {
                1 => None,
                3 if w[1].eq_ignore_ascii_case("as") => {
                    let n = w[2].to_ascii_lowercase();
                    if !valid_stage_name(&n) {
                        return Err(err(format!(
                            "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                            w[2]
                        )));
                    }
                    Some(n)
                }
                _ => return Err(err("FROM requires either one or three arguments".into())),
            };
            Command::From {
                image: w[0].to_string(),
                name,
                platform: flag("platform"),
            }
        }
        "RUN" | "CMD" | "ENTRYPOINT" => {
            if upper == "RUN" {
                need(!rest.is_empty(), "RUN requires at least one argument")?;
            }
            let c = cmd_line(rest);
            match upper.as_str() {
                "RUN" => Command::Run(c),
                "CMD" => Command::Cmd(c),
                _ => Command::Entrypoint(c),
            }
        }
        "SHELL" => match cmd_line(rest) {
            CmdLine::Json(v) if !v.is_empty() => Command::Shell(v),
            CmdLine::Json(_) => return Err(err("SHELL requires at least one argument".into())),
            CmdLine::Shell(_) => {
                return Err(err("SHELL requires the arguments to be in JSON form".into()))
            }
        },
        "ENV" | "LABEL" => {
            let pairs = name_vals(&upper, rest, escape).map_err(err)?;
            if upper == "ENV" {
                Command::Env(pairs)
            } else {
                Command::Label(pairs)
            }
        }
        "ARG" => {
            let w = raw_words(rest, escape);
            need(!w.is_empty(), "ARG requires at least one argument")?;
            Command::Arg(
                w.into_iter()
                    .map(|x| match x.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (x, None),
                    })
                    .collect(),
            )
        }
        "MAINTAINER" => {
            need(!rest.is_empty(), "MAINTAINER requires exactly one argument")?;
            Command::Maintainer(rest.to_string())
        }
        "EXPOSE" => {
            let w = raw_words(rest, escape);
            need(!w.is_empty(), "EXPOSE requires at least one argument")?;
            Command::Expose(w)
        }
        "USER" | "WORKDIR" | "STOPSIGNAL" => {
            need(
                raw_words(rest, escape).len() == 1 || (upper == "WORKDIR" && !rest.is_empty()),
                &format!("{upper} requires exactly one argument"),
            )?;
            let s = rest.to_string();
            match upper.as_str() {
                "USER" => Command::User(s),
                "WORKDIR" => Command::Workdir(s),
                _ => Command::StopSignal(s),
            }
        }
        "VOLUME" => {
            let list = match cmd_line(rest) {
                CmdLine::Json(v) => v,
                CmdLine::Shell(s) => s.split_whitespace().map(String::from).collect(),
            };
            need(!list.is_empty(), "VOLUME requires at least one argument")?;
            need(
                list.iter().all(|v| !v.trim().is_empty()),
                "VOLUME specified can not be an empty string",
            )?;
            Command::Volume(list)
        }
        "HEALTHCHECK" => {
            let (kind, tail) = rest
                .split_once(char::is_whitespace)
                .map(|(k, t)| (k, t.trim()))
                .unwrap_or((rest, ""));
            let test = match kind.to_ascii_uppercase().as_str() {
                "NONE" => {
                    need(
                        tail.is_empty() && flags.is_empty(),
                        "HEALTHCHECK NONE takes no arguments",
                    )?;
                    None
                }
                "CMD" => {
                    need(!tail.is_empty(), "Missing command after HEALTHCHECK CMD")?;
                    Some(cmd_line(tail))
                }
                _ => {
                    return Err(err(format!(
                        "Unknown type \"{}\" in HEALTHCHECK (try CMD)",
                        kind.to_ascii_uppercase()
                    )))
                }
            };
            Command::Healthcheck(Health {
                test,
                flags: flags.clone(),
            })
        }
        "ONBUILD" => {
            need(!rest.is_empty(), "ONBUILD requires at least one argument")?;
            let inner = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match inner.as_str() {
                "ONBUILD" => {
                    return Err(err(
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()
                    ))
                }
                "FROM" | "MAINTAINER" => {
                    return Err(err(format!("{inner} isn't allowed as an ONBUILD trigger")))
                }
                _ => {}
            }
            // The trigger must itself parse.
            instruction(lineno, rest, escape)?;
            Command::Onbuild(rest.to_string())
        }
        "COPY" | "ADD" => {
            let list = match cmd_line(rest) {
                CmdLine::Json(v) => v,
                CmdLine::Shell(s) => s.split_whitespace().map(String::from).collect(),
            };
            match list.len() {
                0 => return Err(err(format!("{upper} requires at least two arguments"))),
                1 => {
                    return Err(err(format!(
                        "{upper} requires at least two arguments, but only one was provided. Destination could not be determined."
                    )))
                }
                _ => {}
            }
            let (dest, srcs) = list
                .split_last()
                .map(|(d, s)| (d.clone(), s.to_vec()))
                .unwrap_or_default();
            let args = CopyArgs {
                srcs,
                dest,
                chown: flag("chown"),
                from: flag("from"),
            };
            if upper == "COPY" {
                Command::Copy(args)
            } else {
                Command::Add(args)
            }
        }
        _ => return Err(err(format!("unknown instruction: {upper}"))),
    };
    Ok(Instruction {
        line: lineno,
        original: line.to_string(),
        command,
    })
}

fn valid_stage_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// Leading `--name=value` / `--name` words; `--` alone ends them.
fn split_flags(rest: &str) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    let mut rest = rest.trim_start();
    while let Some(body) = rest.strip_prefix("--") {
        let end = body.find(char::is_whitespace).unwrap_or(body.len());
        let word = &body[..end];
        rest = body[end..].trim_start();
        if word.is_empty() {
            break;
        }
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        flags.push((k.to_ascii_lowercase(), unquote(v)));
    }
    (flags, rest)
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// `["a","b"]` when the text is a JSON array of strings, else shell form.
fn cmd_line(rest: &str) -> CmdLine {
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_slice::<Vec<String>>(rest.as_bytes()) {
            return CmdLine::Json(v);
        }
    }
    CmdLine::Shell(rest.to_string())
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` starting a word (BuildKit's heredocs).
fn has_heredoc(rest: &str) -> bool {
    rest.split_whitespace().any(|w| {
        let w = w.trim_start_matches(|c: char| c.is_ascii_digit());
        let Some(t) = w.strip_prefix("<<") else {
            return false;
        };
        let t = t.strip_prefix('-').unwrap_or(t);
        let t = t.trim_start_matches(['"', '\'']);
        t.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
    })
}
