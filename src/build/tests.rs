use super::dockerfile::{parse, CmdLine, Command, ParseError};
use super::dockerignore::Matcher;
use super::shellwords::{process_word, process_words};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn cmds(src: &str) -> Vec<Command> {
    let df = parse(src).unwrap();
    let mut out = Vec::new();
    for s in df.stages {
        out.push(s.from.command);
        out.extend(s.steps.into_iter().map(|i| i.command));
    }
    out
}

fn err(src: &str) -> String {
    parse(src).unwrap_err().to_string()
}

#[test]
fn instructions_and_forms() {
    let c = cmds(
        "FROM busybox AS Base\n\
         RUN echo hi\n\
         RUN [\"echo\", \"json\"]\n\
         CMD [\"sh\"]\n\
         ENTRYPOINT top -b\n\
         SHELL [\"/bin/ash\", \"-c\"]\n\
         ENV A=1 B=\"two words\"\n\
         ENV LEGACY value with spaces\n\
         LABEL a.b=c\n\
         ARG X Y=2\n\
         EXPOSE 80 53/udp\n\
         USER 1000:1000\n\
         WORKDIR /app\n\
         VOLUME [\"/data\"]\n\
         VOLUME /a /b\n\
         STOPSIGNAL SIGINT\n\
         MAINTAINER me\n\
         COPY --chown=1:2 --from=base a b /dst/\n\
         ADD [\"x y\", \"/z\"]\n\
         ONBUILD RUN echo trig\n",
    );
    assert_eq!(
        c[0],
        Command::From {
            image: "busybox".into(),
            name: Some("base".into()),
            platform: None
        }
    );
    assert_eq!(c[1], Command::Run(CmdLine::Shell("echo hi".into())));
    assert_eq!(
        c[2],
        Command::Run(CmdLine::Json(vec!["echo".into(), "json".into()]))
    );
    assert_eq!(c[3], Command::Cmd(CmdLine::Json(vec!["sh".into()])));
    assert_eq!(c[4], Command::Entrypoint(CmdLine::Shell("top -b".into())));
    assert_eq!(c[5], Command::Shell(vec!["/bin/ash".into(), "-c".into()]));
    assert_eq!(
        c[6],
        Command::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "\"two words\"".into())
        ])
    );
    assert_eq!(
        c[7],
        Command::Env(vec![("LEGACY".into(), "value with spaces".into())])
    );
    assert_eq!(
        c[9],
        Command::Arg(vec![("X".into(), None), ("Y".into(), Some("2".into()))])
    );
    assert_eq!(c[10], Command::Expose(vec!["80".into(), "53/udp".into()]));
    assert_eq!(c[13], Command::Volume(vec!["/data".into()]));
    assert_eq!(c[14], Command::Volume(vec!["/a".into(), "/b".into()]));
    match &c[17] {
        Command::Copy(a) => {
            assert_eq!(a.srcs, vec!["a", "b"]);
            assert_eq!(a.dest, "/dst/");
            assert_eq!(a.chown.as_deref(), Some("1:2"));
            assert_eq!(a.from.as_deref(), Some("base"));
        }
        o => panic!("{o:?}"),
    }
    match &c[18] {
        Command::Add(a) => assert_eq!(
            (a.srcs.clone(), a.dest.as_str()),
            (vec!["x y".into()], "/z")
        ),
        o => panic!("{o:?}"),
    }
    assert_eq!(c[19], Command::Onbuild("RUN echo trig".into()));
}

#[test]
fn comments_continuations_and_escape_directive() {
    let df = parse(
        "# syntax=docker/dockerfile:1\n# escape=`\n\nFROM busybox\nRUN echo a `\n  # a comment inside\n\n  b\n",
    )
    .unwrap();
    assert_eq!(df.escape, '`');
    let run = &df.stages[0].steps[0];
    assert_eq!(
        run.command,
        Command::Run(CmdLine::Shell("echo a   b".into()))
    );
    assert_eq!(run.original, "RUN echo a   b");
    assert_eq!(run.line, 5);
    // A directive after a blank line is a comment; backslash continues.
    let df = parse("\n# escape=`\nFROM x\nRUN a \\\n b\n").unwrap();
    assert_eq!(df.escape, '\\');
    assert_eq!(
        df.stages[0].steps[0].command,
        Command::Run(CmdLine::Shell("a  b".into()))
    );
    // CRLF line ends and lower-case keywords.
    let df = parse("from x\r\nrun true\r\n").unwrap();
    assert_eq!(df.stages[0].steps[0].original, "run true");
    assert!(err("# escape=x\nFROM a\n").contains("invalid escape token 'x'"));
}

#[test]
fn meta_args_stages_and_target() {
    let df = parse(
        "ARG BASE=busybox\nFROM ${BASE} AS build\nRUN x\nFROM build AS final\nCOPY --from=build /a /b\n",
    )
    .unwrap();
    assert_eq!(df.meta_args.len(), 1);
    assert_eq!(df.stages.len(), 2);
    assert_eq!(df.up_to_target("BUILD"), Ok(1));
    assert_eq!(df.up_to_target(""), Ok(2));
    assert_eq!(
        df.up_to_target("nope").unwrap_err(),
        "failed to reach build target nope in Dockerfile"
    );
}

#[test]
fn errors_like_dockerd() {
    assert_eq!(
        err("FROM a\nRUNN x\n"),
        "dockerfile parse error on line 2: unknown instruction: RUNN"
    );
    assert_eq!(parse("# only a comment\n\n"), Err(ParseError::Empty));
    assert!(err("RUN x\n").contains("no build stage in current context"));
    assert!(err("FROM a b\n").contains("FROM requires either one or three arguments"));
    assert!(err("FROM a\nCOPY x\n").contains("Destination could not be determined"));
    assert_eq!(
        err("FROM a\nCOPY --chmod=755 x /y\n"),
        "dockerfile parse error on line 2: the --chmod option requires BuildKit. \
         Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"
    );
    assert!(err("FROM a\nRUN --mount=type=cache,target=/c true\n")
        .contains("the --mount option requires BuildKit"));
    assert!(err("FROM a\nRUN <<EOF\necho\nEOF\n").contains("heredocs require BuildKit"));
    assert!(err("FROM a\nCOPY <<-\"EOF\" /x\n").contains("heredocs require BuildKit"));
    // `<<` that is not a heredoc word is left to the shell.
    assert!(parse("FROM a\nRUN echo 1 << 2\n").is_ok());
    assert!(err("FROM a\nCOPY --bogus=1 a b\n").contains("unknown flag: bogus"));
    assert!(err("FROM a\nSHELL /bin/sh -c\n")
        .contains("SHELL requires the arguments to be in JSON form"));
    assert!(err("FROM a\nENV\n").contains("ENV requires at least one argument"));
    assert!(err("FROM a\nENV A\n").contains("ENV must have two arguments"));
    assert!(err("FROM a\nENV A=1 B\n").contains("can't find = in \"B\""));
    assert!(err("FROM a\nWORKDIR\n").contains("WORKDIR requires exactly one argument"));
    assert!(err("FROM a\nHEALTHCHECK FOO x\n")
        .contains("Unknown type \"FOO\" in HEALTHCHECK (try CMD)"));
    assert!(err("FROM a\nHEALTHCHECK NONE x\n").contains("HEALTHCHECK NONE takes no arguments"));
    assert!(err("FROM a\nONBUILD ONBUILD RUN x\n").contains("isn't allowed"));
    assert!(err("FROM a\nONBUILD FROM x\n").contains("FROM isn't allowed as an ONBUILD trigger"));
    assert!(err("FROM a AS 1x\n").contains("invalid name for build stage"));
}

#[test]
fn healthcheck_flags() {
    let c =
        cmds("FROM a\nHEALTHCHECK --interval=5s --retries=3 CMD [\"true\"]\nHEALTHCHECK NONE\n");
    match &c[1] {
        Command::Healthcheck(h) => {
            assert_eq!(h.test, Some(CmdLine::Json(vec!["true".into()])));
            assert_eq!(
                h.flags,
                vec![
                    ("interval".into(), "5s".into()),
                    ("retries".into(), "3".into())
                ]
            );
        }
        o => panic!("{o:?}"),
    }
    assert!(matches!(&c[2], Command::Healthcheck(h) if h.test.is_none()));
}

#[test]
fn substitution() {
    let e = env(&[("A", "x"), ("EMPTY", ""), ("P", "/usr")]);
    let w = |s: &str| process_word(s, &e, '\\').unwrap();
    assert_eq!(w("$A"), "x");
    assert_eq!(w("${A}y"), "xy");
    assert_eq!(w("${NO:-def}"), "def");
    assert_eq!(w("${EMPTY:-def}"), "def");
    assert_eq!(w("${EMPTY-def}"), "");
    assert_eq!(w("${A:-def}"), "x");
    assert_eq!(w("${A:+alt}"), "alt");
    assert_eq!(w("${NO:+alt}"), "");
    assert_eq!(w("${EMPTY:+alt}"), "");
    assert_eq!(w("${EMPTY+alt}"), "alt");
    assert_eq!(w("${NO:-$P/bin}"), "/usr/bin");
    assert_eq!(w("'$A'"), "$A");
    assert_eq!(w("\"$A b\""), "x b");
    assert_eq!(w("\\$A"), "$A");
    assert_eq!(w("a\\ b"), "a b");
    assert_eq!(w("$"), "$");
    assert_eq!(w("$NO"), "");
    assert_eq!(process_word("`$A", &e, '`').unwrap(), "$A");
    assert!(process_word("${A", &e, '\\')
        .unwrap_err()
        .to_string()
        .contains("missing '}'"));
    assert!(process_word("${A%x}", &e, '\\')
        .unwrap_err()
        .to_string()
        .contains("unsupported modifier (%)"));
    assert_eq!(
        process_word("${NO:?must be set}", &e, '\\')
            .unwrap_err()
            .to_string(),
        "NO: must be set"
    );
    assert_eq!(
        process_words("a \"b c\" ${A}d ''", &e, '\\').unwrap(),
        vec!["a", "b c", "xd", ""]
    );
}

#[test]
fn dockerignore_rules() {
    let m = Matcher::parse(
        "# comment\n*.log\n!keep.log\nbuild/\n**/*.tmp\n/abs/x\nsub/**/deep\n  \ndocs/[a-c]*.md\n",
    )
    .unwrap();
    assert!(m.excluded("a.log"));
    assert!(!m.excluded("keep.log"));
    assert!(!m.excluded("dir/a.log"), "* does not cross /");
    assert!(m.excluded("build"));
    assert!(
        m.excluded("build/out/bin"),
        "a matched dir excludes its contents"
    );
    assert!(m.excluded("x.tmp"));
    assert!(m.excluded("a/b/c.tmp"));
    assert!(m.excluded("abs/x"));
    assert!(m.excluded("sub/deep"));
    assert!(m.excluded("sub/a/b/deep"));
    assert!(!m.excluded("sub/a/b/deeper"));
    assert!(m.excluded("docs/b1.md"));
    assert!(!m.excluded("docs/d1.md"));
    assert!(!m.excluded("src/main.rs"));
    // An exception inside an excluded directory, and order deciding.
    let m = Matcher::parse("data\n!data/keep\n").unwrap();
    assert!(m.excluded("data/drop"));
    assert!(!m.excluded("data/keep"));
    let m = Matcher::parse("!a\na\n").unwrap();
    assert!(m.excluded("a"));
    let m = Matcher::parse("**\n!Dockerfile\n").unwrap();
    assert!(m.excluded("anything/at/all"));
    assert!(!m.excluded("Dockerfile"));
    assert!(Matcher::parse("!\n").is_err());
    assert!(Matcher::parse("a[\n").is_err());
}

#[test]
fn copy_wildcards_follow_go_filepath_match() {
    use super::dockerignore::{has_wildcards, path_match};
    assert!(path_match("a*.txt", "a1.txt"));
    assert!(!path_match("a*.txt", "dir/a1.txt"));
    assert!(path_match("*/x.txt", "dir/x.txt"));
    assert!(!path_match("*", "dir/x.txt"));
    // `**` is two stars: it does not cross `/` either.
    assert!(!path_match("**/x.txt", "a/b/x.txt"));
    assert!(path_match("[ab]?.txt", "b1.txt"));
    assert!(!path_match("[^ab]?.txt", "b1.txt"));
    assert!(path_match("a\\*", "a*"));
    assert!(!path_match("a[", "a["));
    assert!(has_wildcards("a*"));
    assert!(has_wildcards("x/[ab]"));
    assert!(!has_wildcards("a\\*b"));
    assert!(!has_wildcards("plain/name.txt"));
}

#[test]
fn last_modified_dates_parse() {
    use crate::timefmt::{http_date, parse_http_date};
    assert_eq!(
        parse_http_date("Fri, 14 Jul 2017 02:40:00 GMT"),
        Some(1_500_000_000)
    );
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890);
    assert_eq!(parse_http_date(&http_date(t)), Some(1_234_567_890));
    assert_eq!(parse_http_date("yesterday"), None);
    assert_eq!(parse_http_date("Fri, 14 Foo 2017 02:40:00 GMT"), None);
}

#[test]
fn chown_names_come_from_the_image() {
    use super::sources::owner;
    let root = std::env::temp_dir().join(format!("coracle-chown-{}", std::process::id()));
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0::/:/bin/sh\nbob:x:1000:1000::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
    let layers = vec![root.clone()];
    assert_eq!(owner("bob:staff", &layers).unwrap(), (1000, 50));
    assert_eq!(owner("7:8", &layers).unwrap(), (7, 8));
    assert_eq!(owner("bob:9", &layers).unwrap(), (1000, 9));
    let e = owner("bob", &layers).unwrap_err().to_string();
    assert!(
        e.ends_with("can't find gid for group bob: no such group: bob"),
        "{e}"
    );
    let e = owner("ann:0", &[]).unwrap_err().to_string();
    assert!(
        e.ends_with("open /etc/passwd: no such file or directory"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
