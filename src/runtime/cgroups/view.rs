//! What a container sees under its own `/sys/fs/cgroup`: its cgroup's
//! directories, one per hierarchy (v1) or the one directory (v2).

use super::{Cgroup, Inner, Layout};
use crate::runtime::spec::CgroupDir;

impl Cgroup {
    /// The directories to bind under the container's `/sys/fs/cgroup`. v1:
    /// one per hierarchy, named like its host mount point ("cpu,cpuacct"),
    /// with the other controller names as aliases; v2: the cgroup itself.
    pub fn view(&self) -> Vec<CgroupDir> {
        match &self.inner {
            Inner::V2(g) => vec![CgroupDir {
                name: String::new(),
                dir: g.dir().to_path_buf(),
                aliases: Vec::new(),
            }],
            Inner::V1(g) => {
                let Ok(Layout::V1 { mounts }) = Layout::host() else {
                    return Vec::new();
                };
                let mut out: Vec<CgroupDir> = Vec::new();
                for (ctrl, mount) in mounts {
                    let Some(dir) = g.dir(ctrl) else { continue };
                    let Some(name) = mount.file_name().and_then(|n| n.to_str()) else {
                        continue;
                    };
                    match out.iter_mut().find(|d| d.dir == dir) {
                        Some(d) => {
                            if ctrl != &d.name && !d.aliases.contains(ctrl) {
                                d.aliases.push(ctrl.clone());
                            }
                        }
                        None => out.push(CgroupDir {
                            name: name.to_string(),
                            dir: dir.to_path_buf(),
                            aliases: if ctrl == name {
                                Vec::new()
                            } else {
                                vec![ctrl.clone()]
                            },
                        }),
                    }
                }
                out
            }
        }
    }
}
