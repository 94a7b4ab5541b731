//! The event loop: accepts connections, routes readiness, signals, wake-ups
//! and deadlines to their owners. It holds no business logic.

use std::path::Path;
use std::time::Instant;

use mio::Interest;

use crate::access::cidr::{self, Cidr};
use crate::access::Access;
use crate::config::Config;
use crate::engine::Engine;
use crate::events::Event;
use crate::http::conn::Conn;
use crate::http::limits::Limits;
use crate::net::{self, Listener};
use crate::reactor::{Reactor, Signal, Source};
use crate::slab::Slab;

pub struct Daemon {
    engine: Engine,
    reactor: Reactor,
    listeners: Vec<Listener>,
    conns: Slab<Conn<Engine>>,
    limits: Limits,
    shutting_down: bool,
    /// SIGTERM seen; waiting for containers to stop.
    stopping_containers: bool,
    stop_deadline: Option<std::time::Instant>,
    /// The read buffer every connection reads into.
    scratch: Vec<u8>,
    /// Connections that yielded their turn with work left.
    again: Vec<usize>,
    /// `allow-from`: TCP peers outside these ranges are closed at accept.
    allow_from: Vec<Cidr>,
    /// Connections closed for allow-from, and when that was last logged.
    refused: u64,
    refused_logged: Option<Instant>,
    /// `--insecure-tcp` with an exposed listener: the next warning.
    insecure_warning: Option<Instant>,
    /// An exposed listener relies on the tokens (no TLS, no
    /// `--insecure-tcp`): a reload may not empty them.
    tokens_required: bool,
}

/// How often an open exposed listener, or allow-from refusals, are logged.
const SECURITY_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The longest a graceful shutdown waits for containers.
const SHUTDOWN_LIMIT_SECS: u64 = 60;

/// Start listening and serve until SIGTERM/SIGINT.
pub fn run(config: Config) -> Result<(), String> {
    let pidfile = config.pidfile.clone();
    // The lock lives as long as this file stays open: the daemon's life.
    let _pid_lock = match &pidfile {
        Some(p) => Some(claim_pidfile(p)?),
        None => None,
    };
    let result = Daemon::start(config).and_then(|mut d| d.serve());
    if let Some(p) = &pidfile {
        let _ = std::fs::remove_file(p);
    }
    result
}

impl Daemon {
    fn start(config: Config) -> Result<Daemon, String> {
        crate::fdlimit::fit(config.max_connections);
        let reactor = Reactor::new().map_err(|e| format!("event loop: {e}"))?;
        let limits = Limits {
            max_connections: config.max_connections,
            head_timeout: config.head_timeout,
            ..Limits::default()
        };
        let mut listeners = Vec::new();
        for addr in &config.hosts {
            match net::bind(addr) {
                Ok(mut ls) => listeners.append(&mut ls),
                Err(e) => {
                    listeners.iter().for_each(Listener::remove_socket_file);
                    return Err(e);
                }
            }
        }
        let access = match Access::open(&config) {
            Ok(a) => a,
            Err(e) => {
                listeners.iter().for_each(Listener::remove_socket_file);
                return Err(e);
            }
        };
        let tls = match crate::tls_listener::server(&config.tls) {
            Ok(t) => t.map(std::rc::Rc::new),
            Err(e) => {
                listeners.iter().for_each(Listener::remove_socket_file);
                return Err(e);
            }
        };
        if let Some(server) = &tls {
            listeners = listeners.into_iter().map(|l| l.with_tls(server)).collect();
        }
        let exposed: Vec<_> = listeners.iter().filter_map(Listener::exposed_tcp).collect();
        let open_tcp = access.tokens.is_empty() && !config.tls.enabled();
        if let (Some(addr), true, false) = (exposed.first(), open_tcp, config.insecure_tcp) {
            listeners.iter().for_each(Listener::remove_socket_file);
            return Err(format!(
                "refusing to listen on tcp://{addr} with neither API tokens nor TLS: anyone who can reach \
                 it would control this host. Create a token (coracle token new NAME; see --api-tokens), \
                 or use --tlsverify, or pass --insecure-tcp to accept the risk"
            ));
        }
        // Warned now (before the first request is served), then each minute.
        let insecure_warning =
            (open_tcp && !exposed.is_empty()).then(|| Instant::now() + SECURITY_LOG_EVERY);
        let tokens_required = !exposed.is_empty() && !config.tls.enabled() && !config.insecure_tcp;
        for addr in exposed.iter().filter(|_| open_tcp) {
            log::warn!("{}", insecure_warning_text(addr));
        }
        for (i, l) in listeners.iter_mut().enumerate() {
            reactor
                .registry()
                .register(l, Source::Listener(i).token(), Interest::READABLE)
                .map_err(|e| format!("register listener: {e}"))?;
        }
        let registry = reactor
            .registry()
            .try_clone()
            .map_err(|e| format!("event loop: {e}"))?;
        let allow_from = config.allow_from.clone();
        let mut engine = match Engine::open(config, registry) {
            Ok(e) => e,
            Err(e) => {
                listeners.iter().for_each(Listener::remove_socket_file);
                return Err(e);
            }
        };
        engine.access = access;
        for l in &listeners {
            log::info!("API listen on {}", l.describe());
        }
        if !engine.access.tokens.is_empty() {
            log::info!(
                "API tokens: {} (required on TCP listeners)",
                engine.access.tokens.len()
            );
        }
        if !allow_from.is_empty() {
            let list: Vec<String> = allow_from.iter().map(Cidr::to_string).collect();
            log::info!("TCP connections accepted only from {}", list.join(", "));
        }
        log::info!(
            "coracle {} started (pid {}, data root {})",
            crate::api::SERVER_VERSION,
            std::process::id(),
            engine.config.data_root.display()
        );
        #[cfg(any(feature = "failpoints", debug_assertions))]
        crate::failpoint::started();
        Ok(Daemon {
            engine,
            reactor,
            listeners,
            conns: Slab::default(),
            limits,
            shutting_down: false,
            stopping_containers: false,
            stop_deadline: None,
            scratch: vec![0; crate::http::limits::READ_CHUNK],
            again: Vec::new(),
            allow_from,
            refused: 0,
            refused_logged: None,
            insecure_warning,
            tokens_required,
        })
    }

    fn serve(&mut self) -> Result<(), String> {
        while !self.shutting_down {
            let deadline = self
                .conns
                .iter()
                .filter_map(|(_, c)| c.deadline())
                .chain(self.engine.timers.next())
                .chain(self.engine.proxy_deadline())
                .chain(self.stop_deadline)
                .chain(self.insecure_warning)
                .min();
            // Unfinished output pumping, or connections that yielded: poll
            // without sleeping.
            // Wakes left over by `run_wakes`' bound: likewise.
            let deadline = if self.engine.outputs.has_unfinished()
                || !self.again.is_empty()
                || self.engine.has_wakes()
            {
                Some(std::time::Instant::now())
            } else {
                deadline
            };
            let ready = self
                .reactor
                .wait(deadline)
                .map_err(|e| format!("poll: {e}"))?;
            for (source, readable, writable) in ready {
                match source {
                    Source::Signals => self.on_signals(),
                    Source::Listener(i) => self.accept(i),
                    Source::WorkerInput(id) | Source::WorkerOutput(id) => {
                        self.engine.on_worker_ready(id)
                    }
                    Source::Output(slot) => self.engine.on_output_ready(slot),
                    Source::Stdin(slot) => self.engine.on_stdin_ready(slot),
                    Source::Dns(i) => self.engine.on_dns_ready(i),
                    Source::Proxy(i) => self.engine.on_proxy_ready(i),
                    Source::Launch(i) => self.engine.on_launch_ready(i),
                    Source::Conn(id) => {
                        if let Some(c) = self.conns.get_mut(id) {
                            if readable {
                                c.set_readable();
                            }
                            if writable {
                                c.set_writable();
                            }
                        }
                        self.drive(id);
                    }
                }
            }
            for id in std::mem::take(&mut self.again) {
                self.drive(id);
            }
            self.engine.pump_unfinished_output();
            self.engine.run_timers(std::time::Instant::now());
            self.run_wakes();
            self.run_deadlines();
            self.warn_if_insecure();
            if self.stopping_containers
                && !self.engine.any_container_alive()
                && !self.engine.tasks_pending()
            {
                self.shutting_down = true;
            }
            if self
                .stop_deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
            {
                log::warn!("containers did not stop in time; exiting anyway");
                self.shutting_down = true;
            }
        }
        self.stop();
        Ok(())
    }

    fn on_signals(&mut self) {
        for sig in self.reactor.take_signals() {
            match sig {
                Signal::Shutdown if self.stopping_containers => {
                    log::info!("second shutdown signal: exiting without waiting for containers");
                    self.shutting_down = true;
                }
                Signal::Shutdown => {
                    log::info!("shutdown requested: stopping containers");
                    // Containers get their stop timeouts; the daemon exits
                    // when the last one is gone (or after a hard limit).
                    let containers = self.engine.begin_container_shutdown();
                    if containers || self.engine.tasks_pending() {
                        self.stopping_containers = true;
                        let limit = std::time::Duration::from_secs(SHUTDOWN_LIMIT_SECS);
                        self.stop_deadline = Some(std::time::Instant::now() + limit);
                    } else {
                        self.shutting_down = true;
                    }
                }
                Signal::Reload => {
                    log::info!("SIGHUP received: reloading API tokens");
                    self.engine.access.reload(self.tokens_required);
                    let id = self.engine.id.clone();
                    self.engine.publish(Event::new("daemon", "reload", &id));
                }
                Signal::Child => self.engine.on_children_exited(),
            }
        }
    }

    fn accept(&mut self, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            let stream = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: try again on the next readiness.
                    log::warn!("accept on {}: {e}", listener.describe());
                    return;
                }
            };
            let now = Instant::now();
            if !self.admitted(&stream, now) {
                // Closed without a byte of answer.
                continue;
            }
            let open = self.conns.len();
            let conn = if open < self.limits.max_connections || self.shed_stalest() {
                Conn::new(stream, self.limits.clone(), now)
            } else if open < self.limits.max_connections + 16 {
                log::warn!(
                    "connection limit ({}) reached; refusing",
                    self.limits.max_connections
                );
                Conn::refuse(stream, self.limits.clone(), now)
            } else {
                // Far over the limit: not even an error body.
                continue;
            };
            let id = self.conns.insert(conn);
            let registered = match self.conns.get_mut(id) {
                Some(c) => self
                    .reactor
                    .registry()
                    .register(
                        &mut c.stream,
                        Source::Conn(id).token(),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .is_ok(),
                None => false,
            };
            if registered {
                self.drive(id);
            } else {
                self.conns.remove(id);
            }
        }
    }

    /// `allow-from`, and addresses locked out for failed authentications:
    /// whether a new connection may stay. allow-from refusals are counted,
    /// logged at most once a minute, and audited.
    fn admitted(&mut self, stream: &net::Stream, now: Instant) -> bool {
        let peer = match stream.peer() {
            net::Peer::Tcp(a) | net::Peer::TlsVerified(a) => a,
            net::Peer::Local => return true,
        };
        if self.engine.access.locked_out(peer.ip(), now) {
            log::debug!("closed a connection from {peer}: too many failed authentications");
            return false;
        }
        if cidr::allowed(&self.allow_from, peer.ip()) {
            return true;
        }
        self.refused += 1;
        if self
            .refused_logged
            .is_none_or(|t| now.duration_since(t) >= SECURITY_LOG_EVERY)
        {
            self.refused_logged = Some(now);
            log::warn!(
                "closed a connection from {peer}: not in allow-from ({} refused so far)",
                self.refused
            );
        }
        if let Some(audit) = &mut self.engine.access.audit {
            audit.record_refused_connection(&peer.to_string());
        }
        false
    }

    /// An exposed TCP listener with neither tokens nor TLS (allowed by
    /// `--insecure-tcp`) is reported once a minute.
    fn warn_if_insecure(&mut self) {
        let now = Instant::now();
        let Some(due) = self.insecure_warning.filter(|d| *d <= now) else {
            return;
        };
        self.insecure_warning = Some(due.max(now) + SECURITY_LOG_EVERY);
        for addr in self.listeners.iter().filter_map(Listener::exposed_tcp) {
            log::warn!("{}", insecure_warning_text(&addr));
        }
    }

    /// At the connection limit: close the connection that has waited
    /// longest on its client (idle, or a head or body that stopped
    /// arriving), so stalled clients cannot lock new ones out. False when
    /// every connection is busy.
    fn shed_stalest(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .filter_map(|(id, c)| c.stalled_since().map(|t| (t, id)))
            .min();
        let Some((since, id)) = victim else {
            return false;
        };
        let Some(mut conn) = self.conns.remove(id) else {
            return false;
        };
        log::debug!(
            "connection limit ({}) reached; closing connection {id}, stalled for {:?}",
            self.limits.max_connections,
            since.elapsed()
        );
        let _ = self.reactor.registry().deregister(&mut conn.stream);
        conn.abort(&mut self.engine, id);
        true
    }

    fn drive(&mut self, id: usize) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if !conn.drive(&mut self.engine, id, Instant::now(), &mut self.scratch) {
            let _ = self.reactor.registry().deregister(&mut conn.stream);
            self.conns.remove(id);
        } else if conn.take_more() {
            self.again.push(id);
        }
    }

    /// Drive every connection whose stream has news; driving may publish
    /// more news, so repeat (bounded) until quiet.
    fn run_wakes(&mut self) {
        for _ in 0..16 {
            let wakes = self.engine.take_wakes();
            if wakes.is_empty() {
                return;
            }
            for id in wakes {
                self.drive(id);
            }
        }
    }

    fn run_deadlines(&mut self) {
        let now = Instant::now();
        let due: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline().is_some_and(|d| d <= now))
            .map(|(i, _)| i)
            .collect();
        for id in due {
            self.drive(id);
        }
        self.run_wakes();
    }

    fn stop(&mut self) {
        for l in &self.listeners {
            l.remove_socket_file();
        }
        for id in self.conns.keys() {
            if let Some(mut c) = self.conns.remove(id) {
                c.abort(&mut self.engine, id);
            }
        }
        self.engine.firewall_remove();
        self.engine.networks_shutdown();
        log::info!("coracle stopped");
    }
}

fn insecure_warning_text(addr: &std::net::SocketAddr) -> String {
    format!("--insecure-tcp: API listening on tcp://{addr} with neither tokens nor TLS: anyone who can reach this port controls the host")
}

/// Lock the pid file and write our PID into it. The lock, not the number in
/// the file, says whether a daemon runs: the kernel drops it when we exit,
/// however we exit, so a restart right after `kill -9` (or a power cut, when
/// the old PID may name another process) never trips over a stale file.
///
/// A POSIX record lock (`fcntl(F_SETLK)`) rather than `flock(2)`: it belongs
/// to this process and is not inherited by forked workers, so a worker that
/// outlives a killed daemon cannot keep the next one from starting.
fn claim_pidfile(path: &Path) -> Result<std::fs::File, String> {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let fail = |e: &dyn std::fmt::Display| format!("pid file {}: {e}", path.display());
    // Twice at most: a daemon exiting just now may unlink the file we locked.
    for _ in 0..2 {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| fail(&e))?;
        let lock = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        match nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETLK(&lock)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => {
                let holder = std::fs::read_to_string(path).unwrap_or_default();
                return Err(format!(
                    "pid file found, ensure coracle is not running or delete {} (locked by PID {})",
                    path.display(),
                    holder.trim()
                ));
            }
            Err(e) => return Err(fail(&e)),
        }
        let locked = file.metadata().map_err(|e| fail(&e))?;
        match std::fs::metadata(path) {
            Ok(m) if m.dev() == locked.dev() && m.ino() == locked.ino() => {}
            _ => continue,
        }
        file.set_len(0).map_err(|e| fail(&e))?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(|e| fail(&e))?;
        return Ok(file);
    }
    Err(fail(&"replaced while being locked"))
}
