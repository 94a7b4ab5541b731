//! The userland proxy driven by its own mio loop on a thread, with real
//! sockets on 127.0.0.1: TCP echo of megabytes with half-close, bounded
//! buffers against a slow reader, a refused target, UDP flows, removal.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use mio::{Events, Poll, Token};

use super::portmap::Proto;
use super::proxy::{Proxy, ProxyId, BUF};

enum Cmd {
    Add(
        Proto,
        SocketAddr,
        mpsc::Sender<std::io::Result<(ProxyId, SocketAddr)>>,
    ),
    Remove(ProxyId),
}

struct Loop {
    stop: Arc<AtomicBool>,
    cmds: mpsc::Sender<Cmd>,
    handle: Option<thread::JoinHandle<(usize, usize)>>,
}

impl Loop {
    /// A proxy on its own poll loop; join returns (max bytes buffered,
    /// connections left).
    fn start() -> Loop {
        let stop = Arc::new(AtomicBool::new(false));
        let (cmds, rx) = mpsc::channel::<Cmd>();
        let s = stop.clone();
        let handle = thread::spawn(move || {
            let mut poll = Poll::new().expect("poll");
            let mut proxy = Proxy::new(Token);
            let mut events = Events::with_capacity(256);
            let mut max = 0;
            while !s.load(Ordering::SeqCst) {
                while let Ok(cmd) = rx.try_recv() {
                    match cmd {
                        Cmd::Add(proto, target, back) => {
                            let any = "127.0.0.1:0".parse().expect("address");
                            let r = proxy.add(poll.registry(), proto, any, target);
                            back.send(r).expect("reply");
                        }
                        Cmd::Remove(id) => proxy.remove(poll.registry(), id),
                    }
                }
                poll.poll(&mut events, Some(Duration::from_millis(5)))
                    .expect("poll");
                for ev in events.iter() {
                    proxy.ready(poll.registry(), ev.token().0);
                }
                max = max.max(proxy.buffered());
            }
            (max, proxy.connections())
        });
        Loop {
            stop,
            cmds,
            handle: Some(handle),
        }
    }

    fn try_add(&self, proto: Proto, target: SocketAddr) -> std::io::Result<(ProxyId, SocketAddr)> {
        let (tx, rx) = mpsc::channel();
        self.cmds.send(Cmd::Add(proto, target, tx)).expect("send");
        rx.recv_timeout(Duration::from_secs(5)).expect("answered")
    }

    fn add(&self, proto: Proto, target: SocketAddr) -> (ProxyId, SocketAddr) {
        self.try_add(proto, target).expect("added")
    }

    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .map(|h| h.join().expect("loop"))
            .unwrap_or((0, 0))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn tcp_echo_megabytes_with_half_close_and_bounded_buffers() {
    let server = TcpListener::bind("127.0.0.1:0").expect("server");
    let target = server.local_addr().unwrap();
    thread::spawn(move || {
        for s in server.incoming().take(2) {
            let mut s = s.expect("accept");
            thread::spawn(move || {
                let mut r = s.try_clone().expect("clone");
                std::io::copy(&mut r, &mut s).expect("echo");
                let _ = s.shutdown(Shutdown::Write);
            });
        }
    });
    let lp = Loop::start();
    let (_, addr) = lp.add(Proto::Tcp, target);
    let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut c = TcpStream::connect(addr).expect("connect to proxy");
    let mut w = c.try_clone().expect("clone");
    let sent = data.clone();
    let writer = thread::spawn(move || {
        w.write_all(&sent).expect("write");
        w.shutdown(Shutdown::Write).expect("half-close");
    });
    // A slow reader first: the proxy must stop reading, not buffer it all.
    thread::sleep(Duration::from_millis(300));
    let mut got = Vec::new();
    c.set_read_timeout(Some(Duration::from_secs(20))).ok();
    c.read_to_end(&mut got).expect("read back");
    writer.join().expect("writer");
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes differ");
    // A second connection still works.
    let mut c2 = TcpStream::connect(addr).expect("second");
    c2.write_all(b"again").expect("write");
    c2.shutdown(Shutdown::Write).ok();
    let mut s = String::new();
    c2.read_to_string(&mut s).expect("read");
    assert_eq!(s, "again");
    thread::sleep(Duration::from_millis(50));
    let (max, left) = lp.finish();
    assert!(max <= 2 * BUF, "buffered {max} bytes");
    assert_eq!(left, 0, "connections not closed");
}

#[test]
fn refused_target_closes_the_client_and_remove_stops_the_port() {
    let closed = TcpListener::bind("127.0.0.1:0").expect("port");
    let target = closed.local_addr().unwrap();
    drop(closed);
    let lp = Loop::start();
    let (id, addr) = lp.add(Proto::Tcp, target);
    let mut c = TcpStream::connect(addr).expect("the proxy accepts");
    c.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut buf = [0u8; 8];
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed when the target refuses");
    lp.cmds.send(Cmd::Remove(id)).expect("remove");
    thread::sleep(Duration::from_millis(100));
    assert!(TcpStream::connect(addr).is_err(), "listener still open");
    let e = lp.try_add(Proto::Sctp, target).expect_err("no sctp proxy");
    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
}

#[test]
fn udp_flows_get_their_own_replies() {
    let echo = UdpSocket::bind("127.0.0.1:0").expect("echo");
    let target = echo.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let mut reply = b"re:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = echo.send_to(&reply, from);
        }
    });
    let lp = Loop::start();
    let (_, addr) = lp.add(Proto::Udp, target);
    let a = UdpSocket::bind("127.0.0.1:0").expect("a");
    let b = UdpSocket::bind("127.0.0.1:0").expect("b");
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_secs(3))).ok();
    }
    let mut buf = [0u8; 64];
    for round in 0..3 {
        a.send_to(format!("a{round}").as_bytes(), addr)
            .expect("send a");
        b.send_to(format!("b{round}").as_bytes(), addr)
            .expect("send b");
        let n = a.recv(&mut buf).expect("reply a");
        assert_eq!(&buf[..n], format!("re:a{round}").as_bytes());
        let n = b.recv(&mut buf).expect("reply b");
        assert_eq!(&buf[..n], format!("re:b{round}").as_bytes());
    }
    let (_, flows) = lp.finish();
    assert_eq!(flows, 2, "one flow per client");
}
