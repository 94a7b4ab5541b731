//! The system endpoints through the real docker CLI, over unix and TCP.

mod common;

use common::Daemon;

fn stdout(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "docker failed: {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn docker_version_and_info_over_unix_and_tcp() {
    let d = Daemon::start_with(&[], true);
    let tcp = format!("tcp://127.0.0.1:{}", d.tcp_port.unwrap());
    for host in [format!("unix://{}", d.sock.display()), tcp] {
        let out = stdout(&d.docker_at(
            &host,
            &[
                "version",
                "--format",
                "{{.Server.Version}} {{.Server.APIVersion}}",
            ],
        ));
        assert_eq!(
            out.trim(),
            format!("{} 1.45", env!("CARGO_PKG_VERSION")),
            "via {host}"
        );

        let o = d.docker_at(&host, &["info"]);
        let text = stdout(&o);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.to_lowercase().contains("error"),
            "docker info stderr via {host}: {err}"
        );
        assert!(text.contains("Server Version: 0.1.0"), "{text}");
        assert!(
            text.contains(&format!("Docker Root Dir: {}", d.data_root.display())),
            "{text}"
        );
        assert!(text.contains("Cgroup Driver: cgroupfs"), "{text}");
        assert!(text.contains("Storage Driver: overlay2"), "{text}");
    }
}

#[test]
fn info_reports_real_host_data_and_a_persistent_id() {
    let mut d = Daemon::start();
    let info = d.request("GET", "/v1.45/info", None).json();
    let ncpu = std::thread::available_parallelism().unwrap().get() as u64;
    assert_eq!(info["NCPU"].as_u64(), Some(ncpu));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = meminfo
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(info["MemTotal"].as_u64(), Some(kb * 1024));
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(info["KernelVersion"], release.trim());
    assert_eq!(info["OSType"], "linux");
    assert_eq!(info["Containers"], 0);
    assert_eq!(info["Images"], 0);
    assert!(matches!(
        info["CgroupVersion"].as_str(),
        Some("1") | Some("2")
    ));
    let id = info["ID"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36);

    d.terminate();
    d.restart();
    let again = d.request("GET", "/info", None).json();
    assert_eq!(again["ID"], id.as_str(), "daemon ID must survive a restart");
}

#[test]
fn docker_events_since_until_returns_history() {
    let d = Daemon::start_with(&[], true);
    // SIGHUP publishes a daemon "reload" event.
    common::signal(d.pid(), common::libc_sig::HUP);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let tcp = format!("tcp://127.0.0.1:{}", d.tcp_port.unwrap());
    for host in [format!("unix://{}", d.sock.display()), tcp] {
        let out = stdout(&d.docker_at(
            &host,
            &[
                "events",
                "--since",
                "0",
                "--until",
                &until.to_string(),
                "--format",
                "{{.Type}} {{.Action}}",
            ],
        ));
        assert_eq!(out.trim(), "daemon reload", "via {host}");
        let filtered = stdout(&d.docker_at(
            &host,
            &[
                "events",
                "--since",
                "0",
                "--until",
                &until.to_string(),
                "--filter",
                "type=container",
            ],
        ));
        assert_eq!(
            filtered.trim(),
            "",
            "type=container must filter the daemon event out"
        );
    }
}

#[test]
fn systemd_socket_activation_with_fd_host() {
    // Hand the daemon a listening socket on fd 3 with LISTEN_FDS/LISTEN_PID,
    // as systemd does; python3 does the hand-over (it execs in place, so the
    // PID stays the same).
    let dir = common::temp_dir("fd");
    let sock = dir.join("activated.sock");
    let config = dir.join("daemon.json");
    std::fs::write(&config, "{}").unwrap();
    let script = format!(
        "import socket,os\n\
         s=socket.socket(socket.AF_UNIX); s.bind({sock:?}); s.listen()\n\
         os.dup2(s.fileno(),3); os.set_inheritable(3,True)\n\
         os.environ['LISTEN_FDS']='1'; os.environ['LISTEN_PID']=str(os.getpid())\n\
         b={bin:?}\n\
         os.execv(b,[b,'-H','fd://','--data-root',{root:?},'--config-file',{cfg:?}])\n",
        sock = sock.display().to_string(),
        bin = common::binary(),
        root = dir.join("root").display().to_string(),
        cfg = config.display().to_string(),
    );
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 runs the hand-over");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let answer = loop {
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&sock) {
            use std::io::Write;
            s.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
                .unwrap();
            break common::read_all(&mut s);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "activated socket never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    common::signal(child.id() as i32, common::libc_sig::TERM);
    let status = common::wait_timeout(&mut child, std::time::Duration::from_secs(10));
    let socket_kept = sock.exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        socket_kept,
        "an activated socket belongs to systemd: not removed on exit"
    );
    assert!(answer.ends_with("OK"), "{answer}");
    assert!(
        status.is_some_and(|s| s.success()),
        "daemon exits cleanly on SIGTERM"
    );
}
