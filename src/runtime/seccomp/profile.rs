//! Seccomp profiles: the rules the compiler turns into BPF, and dockerd's
//! JSON profile format (`--security-opt seccomp=PROFILE.json`, whose content
//! the docker CLI sends in `SecurityOpt`).

use serde::Deserialize;

use super::Arch;

/// What a matching rule (or the default) does to the syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    KillProcess,
    KillThread,
    Trap,
    Errno(u16),
    Trace(u16),
    Log,
    Allow,
}

impl Action {
    /// The value a seccomp BPF program returns for it.
    pub fn ret(self) -> u32 {
        match self {
            Action::KillProcess => 0x8000_0000,
            Action::KillThread => 0,
            Action::Trap => 0x0003_0000,
            Action::Errno(e) => 0x0005_0000 | u32::from(e),
            Action::Trace(e) => 0x7ff0_0000 | u32::from(e),
            Action::Log => 0x7ffc_0000,
            Action::Allow => 0x7fff_0000,
        }
    }
}

/// libseccomp's argument comparisons (on the full 64-bit argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & value) == value_two`.
    MaskedEq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    pub index: u8,
    pub value: u64,
    pub value_two: u64,
    pub op: Op,
}

/// A rule's `includes` / `excludes`: capabilities, host architectures
/// (Go's names: amd64, arm64, arm), a minimum kernel.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub caps: Vec<String>,
    pub arches: Vec<String>,
    pub min_kernel: Option<(u32, u32)>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: Action,
    /// All must hold (but see `compile`: several on one argument are alternatives).
    pub args: Vec<Cond>,
    pub includes: Filter,
    pub excludes: Filter,
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub default: Action,
    /// `archMap`: (architecture, sub-architectures), libseccomp's names.
    pub arch_map: Vec<(String, Vec<String>)>,
    /// The older `architectures` list.
    pub architectures: Vec<String>,
    pub rules: Vec<Rule>,
}

impl Profile {
    /// The architectures the filter covers on a `native` host: its own and
    /// the sub-architectures the profile names for it.
    pub fn arches_for(&self, native: Arch) -> Vec<Arch> {
        let mut out = vec![native];
        let names: Vec<&String> = if !self.architectures.is_empty() {
            self.architectures.iter().collect()
        } else {
            self.arch_map
                .iter()
                .filter(|(a, _)| Arch::from_scmp(a) == Some(native))
                .flat_map(|(_, subs)| subs.iter())
                .collect()
        };
        for a in names.into_iter().filter_map(|n| Arch::from_scmp(n)) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonProfile {
    #[serde(default)]
    default_action: String,
    default_errno_ret: Option<u16>,
    architectures: Option<Vec<String>>,
    arch_map: Option<Vec<JsonArchMap>>,
    syscalls: Option<Vec<JsonSyscall>>,
    listener_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonArchMap {
    #[serde(default)]
    architecture: String,
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSyscall {
    #[serde(default)]
    name: String,
    names: Option<Vec<String>>,
    #[serde(default)]
    action: String,
    errno_ret: Option<u16>,
    args: Option<Vec<JsonArg>>,
    includes: Option<JsonFilter>,
    excludes: Option<JsonFilter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonArg {
    #[serde(default)]
    index: u8,
    #[serde(default)]
    value: u64,
    #[serde(default)]
    value_two: u64,
    #[serde(default)]
    op: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonFilter {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

const EPERM: u16 = 1;

fn action(name: &str, errno: Option<u16>) -> Result<Action, String> {
    Ok(match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_ERRNO" => Action::Errno(errno.unwrap_or(EPERM)),
        "SCMP_ACT_TRACE" => Action::Trace(errno.unwrap_or(EPERM)),
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_NOTIFY" => {
            return Err("the SCMP_ACT_NOTIFY action is not supported by coracle".into())
        }
        other => return Err(format!("unknown seccomp action {other:?}")),
    })
}

fn op(name: &str) -> Result<Op, String> {
    Ok(match name {
        "SCMP_CMP_NE" => Op::Ne,
        "SCMP_CMP_LT" => Op::Lt,
        "SCMP_CMP_LE" => Op::Le,
        "SCMP_CMP_EQ" => Op::Eq,
        "SCMP_CMP_GE" => Op::Ge,
        "SCMP_CMP_GT" => Op::Gt,
        "SCMP_CMP_MASKED_EQ" => Op::MaskedEq,
        other => return Err(format!("unknown seccomp operator {other:?}")),
    })
}

/// "4.8" (or "5.10.0") as (major, minor).
pub fn kernel_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(['.', '-']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next().unwrap_or("0").parse().ok()?;
    Some((major, minor))
}

fn filter(f: Option<JsonFilter>) -> Result<Filter, String> {
    let Some(f) = f else {
        return Ok(Filter::default());
    };
    let min_kernel = match f.min_kernel.as_deref() {
        None | Some("") => None,
        Some(k) => Some(kernel_version(k).ok_or_else(|| format!("invalid minKernel {k:?}"))?),
    };
    Ok(Filter {
        caps: f.caps.unwrap_or_default(),
        arches: f.arches.unwrap_or_default(),
        min_kernel,
    })
}

/// dockerd's profile JSON. Errors are worded after dockerd's
/// "decoding seccomp profile failed: ...".
pub fn parse(json: &str) -> Result<Profile, String> {
    let p: JsonProfile = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if p.listener_path.as_deref().is_some_and(|l| !l.is_empty()) {
        return Err("seccomp listenerPath is not supported by coracle".into());
    }
    let architectures = p.architectures.unwrap_or_default();
    let arch_map: Vec<(String, Vec<String>)> = p
        .arch_map
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.architecture, a.sub_architectures.unwrap_or_default()))
        .collect();
    if !architectures.is_empty() && !arch_map.is_empty() {
        return Err("'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'".into());
    }
    let default = action(&p.default_action, p.default_errno_ret)?;
    let mut rules = Vec::new();
    for s in p.syscalls.unwrap_or_default() {
        let mut names = s.names.unwrap_or_default();
        if !s.name.is_empty() {
            if !names.is_empty() {
                return Err("'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'".into());
            }
            names.push(s.name);
        }
        let args = s
            .args
            .unwrap_or_default()
            .into_iter()
            .map(|a| {
                if a.index > 5 {
                    return Err(format!("seccomp argument index {} out of range", a.index));
                }
                Ok(Cond {
                    index: a.index,
                    value: a.value,
                    value_two: a.value_two,
                    op: op(&a.op)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        rules.push(Rule {
            names,
            action: action(&s.action, s.errno_ret)?,
            args,
            includes: filter(s.includes)?,
            excludes: filter(s.excludes)?,
        });
    }
    Ok(Profile {
        default,
        arch_map,
        architectures,
        rules,
    })
}
