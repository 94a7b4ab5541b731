//! Seccomp profiles: the rules the compiler turns into BPF, and dockerd's
//! JSON profile format (`--security-opt seccomp=PROFILE.json`, whose content
//! the docker CLI sends in `SecurityOpt`).

use serde_json::{Map, Value};

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

/// A profile field by name: absent and null are the same (Go's zero value).
fn field<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn string(o: &Map<String, Value>, key: &str) -> Result<String, String> {
    match field(o, key) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

fn strings(o: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match field(o, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("{key} must be a list of strings")),
        Some(_) => Err(format!("{key} must be a list of strings")),
    }
}

fn number(o: &Map<String, Value>, key: &str, max: u64) -> Result<Option<u64>, String> {
    match field(o, key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n <= max => Ok(Some(n)),
            _ => Err(format!("{key} must be a number from 0 to {max}")),
        },
    }
}

fn errno(o: &Map<String, Value>, key: &str) -> Result<Option<u16>, String> {
    Ok(number(o, key, u64::from(u16::MAX))?.map(|n| n as u16))
}

fn objects<'a>(
    o: &'a Map<String, Value>,
    key: &str,
) -> Result<Vec<&'a Map<String, Value>>, String> {
    match field(o, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(Value::as_object)
            .collect::<Option<_>>()
            .ok_or_else(|| format!("{key} must be a list of objects")),
        Some(_) => Err(format!("{key} must be a list of objects")),
    }
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

fn filter(o: &Map<String, Value>, key: &str) -> Result<Filter, String> {
    let Some(f) = field(o, key) else {
        return Ok(Filter::default());
    };
    let f = f
        .as_object()
        .ok_or_else(|| format!("{key} must be an object"))?;
    let k = string(f, "minKernel")?;
    let min_kernel = match k.as_str() {
        "" => None,
        k => Some(kernel_version(k).ok_or_else(|| format!("invalid minKernel {k:?}"))?),
    };
    Ok(Filter {
        caps: strings(f, "caps")?,
        arches: strings(f, "arches")?,
        min_kernel,
    })
}

/// dockerd's profile JSON. Errors are worded after dockerd's
/// "decoding seccomp profile failed: ...".
pub fn parse(json: &str) -> Result<Profile, String> {
    let v: Value = serde_json::from_slice(json.as_bytes()).map_err(|e| e.to_string())?;
    let p = v
        .as_object()
        .ok_or("a seccomp profile must be a JSON object")?;
    if !string(p, "listenerPath")?.is_empty() {
        return Err("seccomp listenerPath is not supported by coracle".into());
    }
    let architectures = strings(p, "architectures")?;
    let arch_map = objects(p, "archMap")?
        .into_iter()
        .map(|a| Ok((string(a, "architecture")?, strings(a, "subArchitectures")?)))
        .collect::<Result<Vec<_>, String>>()?;
    if !architectures.is_empty() && !arch_map.is_empty() {
        return Err("'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'".into());
    }
    let default = action(&string(p, "defaultAction")?, errno(p, "defaultErrnoRet")?)?;
    let mut rules = Vec::new();
    for s in objects(p, "syscalls")? {
        let mut names = strings(s, "names")?;
        let name = string(s, "name")?;
        if !name.is_empty() {
            if !names.is_empty() {
                return Err("'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'".into());
            }
            names.push(name);
        }
        let args = objects(s, "args")?
            .into_iter()
            .map(|a| {
                let index = number(a, "index", 5)
                    .map_err(|_| "seccomp argument index out of range".to_string())?
                    .unwrap_or(0) as u8;
                Ok(Cond {
                    index,
                    value: number(a, "value", u64::MAX)?.unwrap_or(0),
                    value_two: number(a, "valueTwo", u64::MAX)?.unwrap_or(0),
                    op: op(&string(a, "op")?)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        rules.push(Rule {
            names,
            action: action(&string(s, "action")?, errno(s, "errnoRet")?)?,
            args,
            includes: filter(s, "includes")?,
            excludes: filter(s, "excludes")?,
        });
    }
    Ok(Profile {
        default,
        arch_map,
        architectures,
        rules,
    })
}
