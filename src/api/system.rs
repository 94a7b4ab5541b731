//! `/_ping`, `/version` and `/info`.

use std::time::SystemTime;

use crate::json;

use super::error::ApiError;
use super::router::{MAX_VERSION, MIN_VERSION};
use super::{Call, SERVER_VERSION};
use crate::container::model::Status;
use crate::engine::Response;
use crate::host;
use crate::http::request::Method;

const GIT_COMMIT: &str = env!("CORACLE_GIT_COMMIT");
const BUILD_TIME: &str = env!("CORACLE_BUILD_TIME");
const RUSTC_VERSION: &str = env!("CORACLE_RUSTC_VERSION");

pub fn ping(call: &mut Call) -> Result<Response, ApiError> {
    let r = if call.req.method == Method::Head {
        Response::new(200)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Content-Length", "0")
    } else {
        Response::text(200, "OK")
    };
    // Api-Version, OSType, Server, Docker-Experimental come with every response.
    Ok(r.header("Builder-Version", "1")
        .header("Cache-Control", "no-cache, no-store, must-revalidate")
        .header("Pragma", "no-cache"))
}

/// `GET /plugins` (`docker plugin ls`): coracle has no plugin system, so the
/// list is empty, as dockerd's is with none installed.
pub fn plugins(_call: &mut Call) -> Result<Response, ApiError> {
    Ok(Response::json(200, &crate::json!([])))
}

pub fn version(_call: &mut Call) -> Result<Response, ApiError> {
    let kernel = host::uname().kernel;
    let details = json!({
        "ApiVersion": MAX_VERSION.to_string(),
        "MinAPIVersion": MIN_VERSION.to_string(),
        "GitCommit": GIT_COMMIT,
        "GoVersion": RUSTC_VERSION,
        "Os": "linux",
        "Arch": host::go_arch(),
        "KernelVersion": kernel,
        "BuildTime": BUILD_TIME,
        "Experimental": "false",
    });
    // The top level repeats the engine's details (Experimental as a bool).
    let mut v = details.clone();
    v["Experimental"] = false.into();
    v["Version"] = SERVER_VERSION.into();
    v["Platform"] = json!({ "Name": "coracle" });
    v["Components"] = json!([{ "Name": "Engine", "Version": SERVER_VERSION, "Details": details }]);
    Ok(Response::json(200, &v))
}

/// dockerd's list: the seccomp profile in use, then no-new-privileges
/// when it is the daemon's default.
fn security_options(cfg: &crate::config::Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    if crate::runtime::seccomp::Arch::native().is_some() && crate::runtime::seccomp::supported() {
        v.push("name=seccomp,profile=builtin");
    }
    if cfg.no_new_privileges {
        v.push("name=no-new-privileges");
    }
    if cfg.userns_remap.is_some() {
        v.push("name=userns");
    }
    v
}

pub fn info(call: &mut Call) -> Result<Response, ApiError> {
    let engine = &*call.engine;
    let cfg = &engine.config;
    let uname = host::uname();
    let (os_name, os_version) = host::os_release();
    let cg = host::cgroups();
    let count = |s: Status| {
        engine
            .containers
            .iter()
            .filter(|e| e.c.state.status == s)
            .count()
    };
    let driver = if host::has_filesystem("overlay") {
        "overlay2"
    } else {
        "vfs"
    };
    let mut warnings = Vec::new();
    if !cg.memory {
        warnings.push("WARNING: No memory limit support");
    }
    if cg.memory && !cg.swap {
        warnings.push("WARNING: No swap limit support");
    }
    if !cg.pids {
        warnings.push("WARNING: No pids limit support");
    }
    let v = json!({
        "ID": engine.id,
        "Containers": engine.containers.len(),
        "ContainersRunning": count(Status::Running),
        "ContainersPaused": count(Status::Paused),
        "ContainersStopped": engine.containers.len() - count(Status::Running) - count(Status::Paused),
        "Images": engine.images.images().count(),
        "Driver": driver,
        "DriverStatus": [
            ["Backing Filesystem", host::backing_filesystem(&cfg.data_root)],
            ["Supports d_type", "true"],
        ],
        "DockerRootDir": cfg.data_root.display().to_string(),
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": null,
            "Log": ["json-file", "none"],
        },
        "MemoryLimit": cg.memory,
        "SwapLimit": cg.swap,
        "KernelMemoryTCP": cg.kernel_memory_tcp,
        "CpuCfsPeriod": cg.cpu_cfs_period,
        "CpuCfsQuota": cg.cpu_cfs_quota,
        "CPUShares": cg.cpu_shares,
        "CPUSet": cg.cpuset,
        "PidsLimit": cg.pids,
        "OomKillDisable": false,
        "IPv4Forwarding": host::ipv4_forwarding(),
        "BridgeNfIptables": host::bridge_nf_iptables(),
        "BridgeNfIp6tables": host::bridge_nf_ip6tables(),
        "Debug": cfg.log_level >= log::LevelFilter::Debug,
        "NFd": host::open_fds(),
        // One thread, by design.
        "NGoroutines": 1,
        "SystemTime": crate::timefmt::rfc3339_nano(SystemTime::now()),
        "LoggingDriver": cfg.log_driver,
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cg.version,
        "NEventsListener": engine.events.listener_count(),
        "KernelVersion": uname.kernel,
        "OperatingSystem": os_name,
        "OSVersion": os_version,
        "OSType": "linux",
        "Architecture": uname.machine,
        "NCPU": host::ncpu(),
        "MemTotal": host::mem_total_bytes(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": super::distribution::registry_config(engine),
        "GenericResources": null,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": uname.hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": SERVER_VERSION,
        "Runtimes": { "coracle": { "path": "coracle" } },
        "DefaultRuntime": "coracle",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": false,
            "Error": "",
            "RemoteManagers": null,
        },
        "LiveRestoreEnabled": false,
        "Isolation": "",
        "InitBinary": "coracle",
        "ContainerdCommit": { "ID": "" },
        "RuncCommit": { "ID": "" },
        "InitCommit": { "ID": "" },
        "SecurityOptions": security_options(cfg),
        "DefaultAddressPools": [],
        "CDISpecDirs": [],
        "Warnings": warnings,
    });
    Ok(Response::json(
        200,
        &super::versions::INFO.render(call.version, v),
    ))
}
