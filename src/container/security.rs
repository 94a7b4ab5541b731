//! `HostConfig.SecurityOpt` read as dockerd's parseSecurityOpt does:
//! seccomp (builtin, unconfined or a profile's JSON, which the docker CLI
//! reads from the file it is given), no-new-privileges; AppArmor, SELinux
//! labels and writable cgroups are refused, as coracle applies none of them.

use super::error::ContainerError;
use crate::runtime::seccomp::{profile, Seccomp};

/// What a container's process is confined with, beyond capabilities.
#[derive(Debug, Clone)]
pub struct Security {
    pub seccomp: Seccomp,
    pub no_new_privs: bool,
}

fn invalid<T>(m: String) -> Result<T, ContainerError> {
    Err(ContainerError::Invalid(m))
}

/// Go's strconv.ParseBool.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The options of a container with `privileged` set, on a daemon whose
/// `no-new-privileges` default is `daemon_nnp`.
pub fn parse(
    opts: &[String],
    privileged: bool,
    daemon_nnp: bool,
) -> Result<Security, ContainerError> {
    let mut seccomp = Seccomp::Builtin;
    let mut no_new_privs = daemon_nnp;
    for opt in opts {
        if opt == "no-new-privileges" {
            no_new_privs = true;
            continue;
        }
        if opt == "disable" {
            continue;
        }
        let Some((key, value)) = opt.split_once('=').or_else(|| opt.split_once(':')) else {
            return invalid(format!("invalid --security-opt 1: {opt:?}"));
        };
        match key {
            "seccomp" => {
                seccomp = match value {
                    "unconfined" => Seccomp::Unconfined,
                    "builtin" => Seccomp::Builtin,
                    json => match profile::parse(json) {
                        Ok(p) => Seccomp::Custom(Box::new(p)),
                        Err(e) => return invalid(format!("decoding seccomp profile failed: {e}")),
                    },
                }
            }
            "no-new-privileges" => match parse_bool(value) {
                Some(b) => no_new_privs = b,
                None => return invalid(format!("invalid --security-opt 2: {opt:?}")),
            },
            "apparmor" if value == "unconfined" => {}
            "apparmor" => {
                return invalid(format!(
                    "AppArmor is not supported by coracle: cannot apply --security-opt {opt:?} (only apparmor=unconfined is accepted)"
                ))
            }
            "label" if value == "disable" => {}
            "label" => {
                return invalid(format!(
                    "SELinux labels are not supported by coracle: cannot apply --security-opt {opt:?} (only label=disable is accepted)"
                ))
            }
            "writable-cgroups" => match parse_bool(value) {
                Some(false) => {}
                Some(true) => {
                    return invalid(
                        "writable-cgroups is not supported by coracle: containers have no cgroup namespace of their own".into(),
                    )
                }
                None => return invalid(format!("invalid --security-opt 2: {opt:?}")),
            },
            _ => return invalid(format!("invalid --security-opt 2: {opt:?}")),
        }
    }
    if privileged {
        seccomp = Seccomp::Unconfined;
    }
    Ok(Security {
        seccomp,
        no_new_privs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> Result<Security, ContainerError> {
        let v: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        parse(&v, false, false)
    }

    fn msg(r: Result<Security, ContainerError>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(s) => panic!("accepted: {s:?}"),
        }
    }

    #[test]
    fn options() {
        assert!(matches!(p(&[]).unwrap().seccomp, Seccomp::Builtin));
        assert!(matches!(
            p(&["seccomp=unconfined"]).unwrap().seccomp,
            Seccomp::Unconfined
        ));
        assert!(matches!(
            p(&["seccomp:unconfined"]).unwrap().seccomp,
            Seccomp::Unconfined
        ));
        let custom = p(&[r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#]).unwrap();
        assert!(matches!(custom.seccomp, Seccomp::Custom(_)));
        assert!(p(&["no-new-privileges"]).unwrap().no_new_privs);
        assert!(p(&["no-new-privileges=true"]).unwrap().no_new_privs);
        assert!(p(&["no-new-privileges:1"]).unwrap().no_new_privs);
        assert!(!p(&["no-new-privileges=false"]).unwrap().no_new_privs);
        let v = vec!["no-new-privileges=false".to_string()];
        assert!(!parse(&v, false, true).unwrap().no_new_privs);
        assert!(parse(&[], false, true).unwrap().no_new_privs);
        let v = vec!["seccomp=builtin".to_string()];
        assert!(matches!(
            parse(&v, true, false).unwrap().seccomp,
            Seccomp::Unconfined
        ));
        assert!(p(&["apparmor=unconfined", "label=disable", "disable"]).is_ok());
    }

    #[test]
    fn refusals() {
        assert_eq!(msg(p(&["bogus"])), "invalid --security-opt 1: \"bogus\"");
        assert_eq!(
            msg(p(&["foo=bar"])),
            "invalid --security-opt 2: \"foo=bar\""
        );
        assert_eq!(
            msg(p(&["no-new-privileges=maybe"])),
            "invalid --security-opt 2: \"no-new-privileges=maybe\""
        );
        assert!(
            msg(p(&["seccomp=/etc/profile.json"])).starts_with("decoding seccomp profile failed: ")
        );
        assert!(msg(p(&["apparmor=docker-default"])).contains("AppArmor is not supported"));
        assert!(msg(p(&["label=type:svirt_t"])).contains("SELinux labels are not supported"));
        assert!(msg(p(&["writable-cgroups=true"])).contains("writable-cgroups"));
    }
}
