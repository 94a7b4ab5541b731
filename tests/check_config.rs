//! `coracle check-config` on this host: the real binary, the real /proc and /sys.

use std::process::Command;

#[test]
fn check_config_reports_every_feature_and_a_consistent_exit_code() {
    let o = Command::new(env!("CARGO_BIN_EXE_coracle"))
        .arg("check-config")
        .output()
        .expect("run coracle check-config");
    let out = String::from_utf8(o.stdout).expect("utf-8 report");
    for line in [
        "namespaces: mount ",
        "namespaces: pid ",
        "namespaces: uts ",
        "namespaces: ipc ",
        "namespaces: network ",
        "namespaces: user ",
        "cgroups: hierarchy ",
        "cgroups: memory ",
        "cgroups: pids ",
        "filesystems: overlay ",
        "filesystems: devpts ",
        "filesystems: tmpfs ",
        "security: pivot_root ",
        "security: seccomp ",
        "network: veth ",
        "network: bridge ",
        "network: ip forwarding ",
    ] {
        assert!(out.contains(line), "no `{line}` line in:\n{out}");
    }
    // Every feature line ends in one of the three verdicts.
    for l in out.lines().filter(|l| l.contains(" ..")) {
        let verdict = l
            .rsplit(" ..")
            .next()
            .unwrap()
            .trim_start_matches('.')
            .trim_start();
        assert!(
            ["present", "missing (", "unknown ("]
                .iter()
                .any(|v| verdict.starts_with(v)),
            "bad verdict in `{l}`"
        );
    }
    let required_missing = out.contains("missing (required:");
    assert_eq!(
        o.status.code(),
        Some(if required_missing { 1 } else { 0 }),
        "exit code must be 1 exactly when a required feature is missing:\n{out}"
    );
    assert!(
        out.contains(if required_missing {
            "\nresult: "
        } else {
            "\nresult: ok,"
        }),
        "{out}"
    );
    // These machines run the test suite as root with namespaces and cgroups; a required
    // feature missing here means the host cannot run the daemon's other tests either.
    assert!(
        !required_missing,
        "this host lacks a required feature:\n{out}"
    );
}
