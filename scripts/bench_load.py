#!/usr/bin/env python3
"""Measuring half of scripts/bench.sh: a raw-socket HTTP/1.1 client for Docker-API daemons.

Standard library only (python3 >= 3.9). Every subcommand prints one line: a number, or
`skip: REASON`, or a small JSON object, so bench.sh can record it. Subcommands:

  probe ADDR FEATURE                 supported|unsupported (images, containers, attach, logs,
                                     load, save), by asking for the route: 404 "page not found"
                                     means the daemon has no such route.
  waitping ADDR TIMEOUT              wait until GET /_ping answers 200
  coldstart ADDR RUNS [--json] -- CMD...
                                     median ms from spawning CMD to the first 200 on /_ping
                                     (CMD is run RUNS times, each stopped with SIGTERM;
                                     `{run}` in CMD is replaced by the run number); with
                                     --json {"median_ms":..,"runs_ms":[..]}, each run's time
  rps ADDR PATH CONNS SECS [PID]     requests/s over CONNS keep-alive connections for SECS
                                     ({"rps","client_cpu","procs","client_us"}: the client's CPU
                                     per request; with PID also "server_us", the daemon's)
  floor CONNS SECS BYTES             the same client against a static Python server answering
                                     every request with a BYTES body: the client's ceiling
  daemonpid ADDR                     pid of the process listening on a unix socket
  mem PID                            engine memory: {"rss_kib","pss_kib","rss_anon_kib",
                                     "rss_file_kib","procs":[...]} (RssAnon/RssFile from
                                     /proc/PID/status, summed like rss_kib)
  binsizes PID                       {"bytes":N,"files":[...]} for the daemon's executables
  apicycle ADDR IMAGE N              median ms of create+start+wait+remove (Cmd true)
  startn ADDR IMAGE N                create and start N `sleep` containers (label coracle.bench)
  cleanup ADDR                       force-remove every container labelled coracle.bench
  server ADDR                        "name version" of the daemon, for the table header
  report TSV JSON META               print the table from bench.sh's results, write JSON
  statscpu ADDR PID SECS             daemon CPU (% of the whole machine: all CPUs) while one
                                     streaming GET /containers/{id}/stats per running
                                     bench container is read for SECS seconds
                                     ({"pct":..,"streams":N,"objects":N})
  attach ADDR IMAGE MIB [LOGDRIVER]  MiB/s of a container's stdout to an attached reader;
                                     prints {"mib_s":..,"id":..} and leaves the container
                                     (exited, MIB MiB of log) for `docker logs`; with
                                     LOGDRIVER (none) the container logs with that driver
"""

import json
import os
import select
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

LABEL = "coracle.bench"


# ---------------------------------------------------------------- connections

def connect(addr, timeout=30.0):
    if addr.startswith("unix://"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr[len("unix://"):])
    elif addr.startswith("tcp://"):
        hostport = addr[len("tcp://"):].rstrip("/")
        host, _, port = hostport.rpartition(":")
        s = socket.create_connection((host, int(port)), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    else:
        raise SystemExit("bad address %r (want unix:///path or tcp://host:port)" % addr)
    return s


class Conn:
    """One keep-alive connection; request() returns (status, headers, body)."""

    def __init__(self, addr, timeout=120.0):
        self.addr = addr
        self.sock = connect(addr, timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _fill(self):
        d = self.sock.recv(262144)
        if not d:
            raise ConnectionError("connection closed by daemon")
        self.buf += d

    def send(self, method, path, body=None, headers=None):
        h = {"Host": "docker", "User-Agent": "coracle-bench"}
        if body is not None:
            if not isinstance(body, (bytes, bytearray)):
                body = json.dumps(body).encode()
                h["Content-Type"] = "application/json"
            h["Content-Length"] = str(len(body))
        h.update(headers or {})
        head = "%s %s HTTP/1.1\r\n%s\r\n" % (method, path, "".join("%s: %s\r\n" % kv for kv in h.items()))
        self.sock.sendall(head.encode() + (body or b""))

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs

    def read_body(self, status, hdrs, sink=None):
        """Reads the body; with sink, passes chunks to it instead of keeping them."""
        out = []
        put = sink or out.append
        if status in (101, 204, 304):
            return b""
        if "chunked" in hdrs.get("transfer-encoding", "").lower():
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                line, self.buf = self.buf.split(b"\r\n", 1)
                n = int(line.split(b";")[0], 16)
                while len(self.buf) < n + 2:
                    self._fill()
                if n == 0:
                    self.buf = self.buf[2:]
                    break
                put(self.buf[:n])
                self.buf = self.buf[n + 2:]
        elif "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(self.buf) < n:
                if sink and self.buf:
                    put(self.buf)
                    n -= len(self.buf)
                    self.buf = b""
                self._fill()
            put(self.buf[:n])
            self.buf = self.buf[n:]
        else:
            put(self.buf)
            self.buf = b""
            while True:
                d = self.sock.recv(262144)
                if not d:
                    break
                put(d)
        return b"".join(out)

    def request(self, method, path, body=None, headers=None):
        self.send(method, path, body, headers)
        status, hdrs = self.read_head()
        return status, hdrs, self.read_body(status, hdrs)


def call(addr, method, path, body=None, headers=None, timeout=120.0):
    c = Conn(addr, timeout)
    try:
        return c.request(method, path, body, headers)
    finally:
        c.close()


def jcall(addr, method, path, body=None, ok=(200, 201, 204)):
    status, _, data = call(addr, method, path, body)
    if status not in ok:
        raise RuntimeError("%s %s -> %d %s" % (method, path, status, data[:300].decode("utf-8", "replace")))
    return json.loads(data) if data.strip() else None


# ---------------------------------------------------------------- probes

def route_missing(status, body):
    if status in (404, 405, 501):
        try:
            msg = json.loads(body).get("message", "")
        except ValueError:
            msg = body.decode("utf-8", "replace")
        return "page not found" in msg.lower() or status != 404
    return False


PROBES = {
    "images": ("GET", "/images/json"),
    "containers": ("GET", "/containers/json"),
    "attach": ("POST", "/containers/coracle-bench-no-such-container/attach?stream=1&stdout=1"),
    "logs": ("GET", "/containers/coracle-bench-no-such-container/logs?stdout=1"),
    "save": ("GET", "/images/coracle-bench-no-such-image:latest/get"),
    "load": ("POST", "/images/load?quiet=1"),
}


def cmd_probe(addr, feature):
    method, path = PROBES[feature]
    body = b"" if method == "POST" else None
    status, _, data = call(addr, method, path, body, {"Content-Type": "application/x-tar"} if feature == "load" else None)
    print("unsupported" if route_missing(status, data) else "supported")


# ---------------------------------------------------------------- start-up

def ping_once(addr):
    try:
        s, _, _ = call(addr, "GET", "/_ping", timeout=2.0)
        return s == 200
    except OSError:
        return False


def cmd_waitping(addr, timeout):
    end = time.monotonic() + float(timeout)
    while time.monotonic() < end:
        if ping_once(addr):
            print("ok")
            return
        time.sleep(0.01)
    print("skip: no answer on %s/_ping after %ss" % (addr, timeout))
    sys.exit(1)


def stop_group(p, timeout=30.0):
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    # the group may hold children (a managed containerd) that outlive the leader briefly
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def cmd_coldstart(addr, runs, cmd, as_json=False):
    times = []
    for i in range(int(runs)):
        argv = [a.replace("{run}", str(i)) for a in cmd]
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            while True:
                if p.poll() is not None:
                    print("skip: daemon exited with %s before answering /_ping" % p.returncode)
                    return
                if ping_once(addr):
                    times.append((time.monotonic() - t0) * 1000)
                    break
                if time.monotonic() - t0 > 60:
                    print("skip: no /_ping answer within 60 s")
                    return
                time.sleep(0.0005)
        finally:
            stop_group(p)
    if as_json:
        print(json.dumps({"median_ms": round(statistics.median(times), 1),
                          "runs_ms": ["%.1f" % t for t in times]}))
    else:
        print("%.1f" % statistics.median(times))


# ---------------------------------------------------------------- load generator

class _Resp:
    """Counts the responses on one keep-alive connection without keeping them: bodies are
    skipped in place in the worker's receive buffer (Content-Length or chunked), and only a
    head, a chunk-size line or their pieces split across two reads are copied."""

    HEAD, LEN, SIZE, DATA, LAST = range(5)

    def __init__(self, sock):
        self.sock = sock
        self.state = self.HEAD
        self.left = 0
        self.carry = b""

    def _line(self, buf, p, n, sep):
        """(line, new p) when `sep` ends a line in carry + buf[p:n], else (None, n)."""
        if not self.carry:
            i = buf.find(sep, p, n)
            if i >= 0:
                return bytes(buf[p:i]), i + len(sep)
            self.carry = bytes(buf[p:n])
            return None, n
        joined = self.carry + bytes(buf[p:n])
        i = joined.find(sep)
        if i < 0:
            self.carry = joined
            return None, n
        used = i + len(sep) - len(self.carry)
        self.carry = b""
        return joined[:i], p + used

    def feed(self, buf, n):
        """Consume buf[:n]; returns (responses completed, responses that were not 200)."""
        p = done = bad = 0
        while p < n:
            st = self.state
            if st == self.HEAD:
                head, p = self._line(buf, p, n, b"\r\n\r\n")
                if head is None:
                    break
                if head[9:12] != b"200":
                    bad += 1
                h = head.lower()
                j = h.find(b"\r\ncontent-length:")
                if j >= 0:
                    e = h.find(b"\r\n", j + 2)
                    self.left = int(h[j + 17:e if e > 0 else len(h)])
                    self.state = self.LEN
                elif b"chunked" in h:
                    self.state = self.SIZE
                else:
                    self.left = 0
                    self.state = self.LEN
                if self.state == self.LEN and self.left == 0:
                    self.state = self.HEAD
                    done += 1
            elif st == self.LEN or st == self.DATA or st == self.LAST:
                k = min(self.left, n - p)
                self.left -= k
                p += k
                if self.left == 0:
                    if st == self.DATA:
                        self.state = self.SIZE
                    else:
                        self.state = self.HEAD
                        done += 1
            else:  # SIZE
                line, p = self._line(buf, p, n, b"\r\n")
                if line is None:
                    break
                size = int(line.split(b";")[0], 16)
                # the last chunk: its CRLF (no trailers) ends the response
                self.left, self.state = (size + 2, self.DATA) if size else (2, self.LAST)
        return done, bad


def _worker(addr, path, nconns, secs, wfd):
    """One client process: nconns keep-alive connections, one request in flight on each;
    the request's bytes are built once and every response is parsed without copying its
    body (`_Resp`), so a large body costs the client a recv, not a Python-level copy."""
    req = ("GET %s HTTP/1.1\r\nHost: docker\r\nUser-Agent: coracle-bench\r\n\r\n" % path).encode()
    ep = select.epoll()
    conns = {}
    for _ in range(nconns):
        s = connect(addr)
        s.setblocking(False)
        conns[s.fileno()] = _Resp(s)
        ep.register(s.fileno(), select.EPOLLIN)
    buf = bytearray(1 << 20)
    done = errors = 0
    start = time.monotonic()
    stop = start + secs
    for r in conns.values():
        r.sock.send(req)
    while conns:
        now = time.monotonic()
        if now >= stop:
            break
        for fd, _ in ep.poll(stop - now):
            r = conns.get(fd)
            if r is None:
                continue
            try:
                n = r.sock.recv_into(buf)
            except BlockingIOError:
                continue
            if not n:
                errors += 1
                ep.unregister(fd)
                del conns[fd]
                continue
            d, b = r.feed(buf, n)
            if d:
                done += d
                errors += b
                r.sock.send(req)
    elapsed = time.monotonic() - start
    cpu = sum(os.times()[:2])
    os.write(wfd, json.dumps({"done": done, "errors": errors, "elapsed": elapsed, "cpu": cpu}).encode())
    for r in conns.values():
        r.sock.close()


def _cpu_secs(pid):
    """utime + stime of a process and its reaped children, in seconds."""
    with open("/proc/%d/stat" % int(pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cmd_rps(addr, path, conns, secs, server_pid=None):
    conns, secs = int(conns), float(secs)
    server0 = _cpu_secs(server_pid) if server_pid else None
    # one client process per connection up to the CPU count: a single Python process tops
    # out well below what a fast daemon answers, and it is the client we must not measure
    procs = max(1, min(conns, os.cpu_count() or 1))
    share = [conns // procs + (1 if i < conns % procs else 0) for i in range(procs)]
    kids = []
    for n in share:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0
            try:
                _worker(addr, path, n, secs, w)
            except Exception as e:  # report, never hang the parent
                os.write(w, json.dumps({"error": str(e)}).encode())
                code = 1
            os._exit(code)
        os.close(w)
        kids.append((pid, r))
    res = []
    for pid, r in kids:
        data = b""
        while True:
            d = os.read(r, 65536)
            if not d:
                break
            data += d
        os.close(r)
        os.waitpid(pid, 0)
        res.append(json.loads(data or b'{"error":"worker died"}'))
    errs = [x["error"] for x in res if "error" in x]
    if errs:
        print("skip: load generator failed: %s" % errs[0])
        return
    done = sum(x["done"] for x in res)
    bad = sum(x["errors"] for x in res)
    elapsed = max(x["elapsed"] for x in res)
    cpu = sum(x["cpu"] for x in res)
    if bad:
        print("skip: %d of %d responses were not 200" % (bad, done))
        return
    out = {"rps": round(done / elapsed, 1), "client_cpu": round(cpu / elapsed, 2), "procs": procs,
           "client_us": round(cpu / max(done, 1) * 1e6, 1)}
    if server_pid:
        # the daemon's CPU per request, over the same interval (plus the workers' start-up)
        out["server_us"] = round((_cpu_secs(server_pid) - server0) / max(done, 1) * 1e6, 1)
    print(json.dumps(out))


def _static_server(path, body_bytes, ready_w):
    """The floor's server: every request head gets the same prebuilt response (a body of
    body_bytes), as cheaply as Python can; it stands in for a daemon that costs nothing."""
    body = b"[" + b"x" * max(0, body_bytes - 3) + b"]\n" if body_bytes >= 3 else b"x" * body_bytes
    resp = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(body)) + body
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(64)
    ls.setblocking(False)
    ep = select.epoll()
    ep.register(ls.fileno(), select.EPOLLIN)
    os.write(ready_w, b"1")
    socks, pend = {}, {}
    buf = bytearray(65536)
    while True:
        for fd, ev in ep.poll():
            if fd == ls.fileno():
                c, _ = ls.accept()
                c.setblocking(False)
                socks[c.fileno()] = c
                pend[c.fileno()] = [b"", b""]
                ep.register(c.fileno(), select.EPOLLIN)
                continue
            c, st = socks.get(fd), pend.get(fd)
            if c is None:
                continue
            try:
                if ev & select.EPOLLIN:
                    try:
                        n = c.recv_into(buf)
                    except BlockingIOError:
                        n = -1
                    if n == 0:
                        raise ConnectionError("closed")
                    if n > 0:
                        data = st[0] + bytes(buf[:n])
                        k = data.count(b"\r\n\r\n")
                        st[0] = data[data.rfind(b"\r\n\r\n") + 4:] if k else data
                        st[1] += resp * k
                if st[1]:
                    try:
                        sent = c.send(st[1])
                    except BlockingIOError:
                        sent = 0
                    st[1] = st[1][sent:]
                    ep.modify(fd, select.EPOLLIN | (select.EPOLLOUT if st[1] else 0))
            except OSError:  # the client went away (a reset, or its end of the run)
                ep.unregister(fd)
                c.close()
                del socks[fd], pend[fd]


def cmd_floor(conns, secs, body_bytes):
    """req/s of this load generator against _static_server (a body of body_bytes): what the
    client reaches when the server costs (almost) nothing; with the same CONNS and SECS as an
    `rps` run, the ceiling that run could show."""
    d = tempfile.mkdtemp(prefix="coracle-floor-")
    path = os.path.join(d, "s.sock")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            _static_server(path, int(body_bytes), w)
        finally:
            os._exit(0)
    os.close(w)
    os.read(r, 1)
    os.close(r)
    try:
        cmd_rps("unix://" + path, "/", conns, secs, pid)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.unlink(path)
        os.rmdir(d)


# ---------------------------------------------------------------- processes and memory

def socket_inode(path):
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == path and parts[5] == "01":  # LISTEN
                return parts[6]
    return None


def cmd_daemonpid(addr):
    if not addr.startswith("unix://"):
        print("skip: only unix sockets can be traced to a process")
        return
    ino = socket_inode(addr[len("unix://"):])
    if ino is None:
        print("skip: nobody listens on %s" % addr)
        return
    want = "socket:[%s]" % ino
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == want:
                    print(pid)
                    return
        except OSError:
            continue
    print("skip: no process holds %s" % addr)


def proc_table():
    t = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as f:
                s = f.read()
            comm = s[s.index("(") + 1:s.rindex(")")]
            rest = s[s.rindex(")") + 2:].split()
            if rest[0] in ("Z", "X"):  # exiting: no memory left to count
                continue
            ppid = int(rest[1])
            pidns = os.readlink("/proc/%s/ns/pid" % pid)
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmdline = f.read().split(b"\0")
            t[int(pid)] = {"comm": comm, "ppid": ppid, "pidns": pidns,
                           "cmd": [c.decode("utf-8", "replace") for c in cmdline if c]}
        except (OSError, ValueError):
            continue
    return t


ENGINE_HELPERS = ("containerd", "containerd-shim", "containerd-shim-runc-v2", "conmon", "docker-proxy",
                  "catatonit", "aardvark-dns", "slirp4netns", "rootlessport")


def engine_pids(root):
    """The daemon and its helper processes (containerd, shims, conmon), never container
    processes: the walk down from the daemon (and from every shim) stops at a process in
    another pid namespace than the daemon's, which is a container's init."""
    t = proc_table()
    if root not in t:
        return [], t
    ns = t[root]["pidns"]
    kids = {}
    for pid, p in t.items():
        kids.setdefault(p["ppid"], []).append(pid)
    def walk(seeds):
        out, todo = set(), list(seeds)
        while todo:
            pid = todo.pop()
            if pid in out or pid not in t or t[pid]["pidns"] != ns:
                continue
            out.add(pid)
            todo.extend(kids.get(pid, []))
        return out

    tree = walk([root])
    # containerd shims are re-parented to init: take those whose -address is a socket that
    # a process of the daemon's tree (its containerd) listens on; conmon likewise by name
    owned = listening_paths(tree)
    shims = []
    for pid, p in t.items():
        if p["comm"].startswith("containerd-shim"):
            cmd = p["cmd"]
            addr = cmd[cmd.index("-address") + 1] if "-address" in cmd[:-1] else None
            if addr is None or addr in owned:
                shims.append(pid)
        elif p["comm"] == "conmon" and pid not in tree:
            shims.append(pid)
    return sorted(tree | walk(shims)), t


def listening_paths(pids):
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                l = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                if l.startswith("socket:["):
                    inodes.add(l[8:-1])
        except OSError:
            continue
    paths = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[6] in inodes:
                paths.add(parts[7])
    return paths


def smaps(pid):
    """Rss and Pss (smaps_rollup, else VmRSS), and /proc/PID/status' split of
    the RSS: RssAnon (heap, stacks: what the process allocated) and RssFile
    (mapped file pages: for a daemon, its executable and libraries)."""
    r = {"Rss": 0, "Pss": None, "RssAnon": None, "RssFile": None}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Rss", "Pss"):
                    r[k] = int(v.split()[0])
    except OSError:
        r["Rss"] = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == "VmRSS" and r["Rss"] is None:
                r["Rss"] = int(v.split()[0])
            elif k in ("RssAnon", "RssFile"):
                r[k] = int(v.split()[0])
    r["Rss"] = r["Rss"] or 0
    return r


def cmd_mem(pid):
    pids, t = engine_pids(int(pid))
    if not pids:
        print(json.dumps({"error": "no such process %s" % pid}))
        return
    rss = pss = anon = file_ = 0
    have_pss = have_split = True
    procs = []
    for p in pids:
        try:
            m = smaps(p)
        except OSError:
            continue
        if m["Pss"] is None and m["Rss"] == 0:  # exited meanwhile
            continue
        rss += m["Rss"]
        if m["Pss"] is None:
            have_pss = False
        else:
            pss += m["Pss"]
        if m["RssAnon"] is None or m["RssFile"] is None:
            have_split = False
        else:
            anon += m["RssAnon"]
            file_ += m["RssFile"]
        procs.append(t[p]["comm"])
    names = {}
    for c in procs:
        names[c] = names.get(c, 0) + 1
    print(json.dumps({"rss_kib": rss, "pss_kib": pss if have_pss else None,
                      "rss_anon_kib": anon if have_split else None,
                      "rss_file_kib": file_ if have_split else None,
                      "procs": ["%s x%d" % kv if kv[1] > 1 else kv[0] for kv in sorted(names.items())]}))


def which(name, extra_dirs=()):
    for d in list(extra_dirs) + os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/libexec/podman"]:
        p = os.path.join(d, name)
        if d and os.path.isfile(p) and os.access(p, os.X_OK):
            return os.path.realpath(p)
    return None


HELPERS_BY_DAEMON = {
    "dockerd": ["containerd", "containerd-shim-runc-v2", "runc", "docker-init", "docker-proxy"],
    "balena-engine-daemon": [],
    "balena-engine": [],
    "podman": ["conmon", "crun", "runc", "netavark", "aardvark-dns", "catatonit"],
}


def cmd_binsizes(pid):
    pid = int(pid)
    exe = os.path.realpath("/proc/%d/exe" % pid)
    files = [exe]
    pids, _ = engine_pids(pid)
    for p in pids:
        try:
            files.append(os.path.realpath("/proc/%d/exe" % p))
        except OSError:
            pass
    for h in HELPERS_BY_DAEMON.get(os.path.basename(exe), []):
        w = which(h, [os.path.dirname(exe)])
        if w:
            files.append(w)
    uniq = []
    for f in files:
        if f not in uniq and os.path.isfile(f):
            uniq.append(f)
    print(json.dumps({"bytes": sum(os.path.getsize(f) for f in uniq),
                      "files": ["%s (%d KiB)" % (os.path.basename(f), os.path.getsize(f) // 1024) for f in uniq]}))


# ---------------------------------------------------------------- containers

def create(addr, image, cmd, name=None, extra=None):
    body = {"Image": image, "Cmd": cmd, "Labels": {LABEL: "1"}, "HostConfig": {"NetworkMode": "none"}}
    body.update(extra or {})
    q = "?name=" + urllib.parse.quote(name) if name else ""
    return jcall(addr, "POST", "/containers/create" + q, body)["Id"]


def cmd_apicycle(addr, image, n):
    times = []
    for _ in range(int(n)):
        t0 = time.monotonic()
        cid = create(addr, image, ["true"])
        jcall(addr, "POST", "/containers/%s/start" % cid, b"")
        r = jcall(addr, "POST", "/containers/%s/wait" % cid, b"")
        jcall(addr, "DELETE", "/containers/%s" % cid)
        times.append((time.monotonic() - t0) * 1000)
        if r and r.get("StatusCode") != 0:
            print("skip: `true` exited with %s" % r.get("StatusCode"))
            return
    print("%.1f" % statistics.median(times))


def cmd_startn(addr, image, n):
    for _ in range(int(n)):
        cid = create(addr, image, ["sleep", "3600"])
        jcall(addr, "POST", "/containers/%s/start" % cid, b"")
    print("ok")


def cmd_cleanup(addr):
    try:
        f = urllib.parse.quote(json.dumps({"label": [LABEL]}))
        rows = jcall(addr, "GET", "/containers/json?all=1&filters=" + f)
    except (OSError, RuntimeError, ValueError) as e:
        print("skip: %s" % e)
        return
    for row in rows or []:
        try:
            jcall(addr, "DELETE", "/containers/%s?force=1&v=1" % row["Id"], ok=(200, 204, 404))
        except (OSError, RuntimeError) as e:
            print("warning: could not remove %s: %s" % (row["Id"][:12], e), file=sys.stderr)
    print("removed %d" % len(rows or []))


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            total += int(rest[11]) + int(rest[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            continue
    return total


def cmd_statscpu(addr, pid, secs):
    secs = float(secs)
    f = urllib.parse.quote(json.dumps({"label": [LABEL], "status": ["running"]}))
    rows = jcall(addr, "GET", "/containers/json?filters=" + f) or []
    if not rows:
        print("skip: no running bench containers")
        return
    sel = selectors.DefaultSelector()
    socks = []
    for row in rows:
        s = connect(addr, 10.0)
        s.sendall(("GET /containers/%s/stats HTTP/1.1\r\nHost: docker\r\n\r\n" % row["Id"]).encode())
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    objects = 0
    def drain(until):
        nonlocal objects
        while time.monotonic() < until:
            for key, _ in sel.select(timeout=0.2):
                try:
                    d = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                if not d:
                    sel.unregister(key.fileobj)
                    continue
                objects += d.count(b'"read"')
    drain(time.monotonic() + 2.0)  # every stream past its first reading
    pids, _ = engine_pids(int(pid))
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0, o0 = time.monotonic(), cpu_ticks(pids), objects
    drain(t0 + secs)
    t1, c1 = time.monotonic(), cpu_ticks(pids)
    for s in socks:
        s.close()
    pct = (c1 - c0) / hz / ((t1 - t0) * os.cpu_count()) * 100.0
    print(json.dumps({"pct": round(pct, 3), "streams": len(socks), "objects": objects - o0}))


def cmd_attach(addr, image, mib, log_driver=""):
    mib = int(mib)
    extra = {"AttachStdout": True, "AttachStderr": False, "Tty": False}
    if log_driver:  # e.g. "none": the output path without the json-file log's writes
        extra["HostConfig"] = {"NetworkMode": "none", "LogConfig": {"Type": log_driver, "Config": {}}}
    cid = create(addr, image, ["dd", "if=/dev/zero", "bs=1048576", "count=%d" % mib], extra=extra)
    c = Conn(addr)
    c.send("POST", "/containers/%s/attach?stream=1&stdout=1" % cid, b"",
           {"Upgrade": "tcp", "Connection": "Upgrade"})
    status, hdrs = c.read_head()
    if status not in (101, 200):
        print("skip: attach answered %d" % status)
        return
    got = [len(c.buf)]
    c.buf = b""
    t0 = time.monotonic()
    jcall(addr, "POST", "/containers/%s/start" % cid, b"")
    c.sock.settimeout(120)
    buf = bytearray(1 << 20)  # recv_into one buffer: the client must not be the bottleneck
    while True:
        n = c.sock.recv_into(buf)
        if not n:
            break
        got[0] += n
    dt = time.monotonic() - t0
    c.close()
    jcall(addr, "POST", "/containers/%s/wait" % cid, b"")
    want = mib << 20
    if got[0] < want:
        print(json.dumps({"error": "attached reader got %d bytes, expected at least %d" % (got[0], want), "id": cid}))
        return
    print(json.dumps({"mib_s": round(mib / dt, 1), "id": cid, "bytes": got[0]}))


# ---------------------------------------------------------------- report

# key, label, unit, which way is better, decimals
METRICS = [
    ("size", "binary size (engine executables)", "MiB", "lower", 2),
    ("size_x86_64", "binary size, x86_64-unknown-linux-musl", "MiB", "lower", 3),
    ("size_aarch64", "binary size, aarch64-unknown-linux-musl", "MiB", "lower", 3),
    ("size_armv7", "binary size, armv7-unknown-linux-musleabihf", "MiB", "lower", 3),
    ("idle_rss", "idle RSS (engine processes)", "MiB", "lower", 2),
    ("idle_pss", "idle PSS (engine processes)", "MiB", "lower", 2),
    ("idle_rss_anon", "  of idle RSS: anonymous (RssAnon: heap, stacks)", "MiB", "lower", 2),
    ("idle_rss_file", "  of idle RSS: file pages (RssFile: executables)", "MiB", "lower", 2),
    ("rss_0", "engine RSS, 0 containers (image loaded)", "MiB", "lower", 2),
    ("rss_10", "engine RSS, 10 running sleep containers", "MiB", "lower", 2),
    ("rss_50", "engine RSS, 50 running sleep containers", "MiB", "lower", 2),
    ("pss_0", "engine PSS, 0 containers (image loaded)", "MiB", "lower", 2),
    ("pss_10", "engine PSS, 10 running sleep containers", "MiB", "lower", 2),
    ("pss_50", "engine PSS, 50 running sleep containers", "MiB", "lower", 2),
    ("coldstart", "cold start to first /_ping (median)", "ms", "lower", 1),
    ("run_cli", "docker run --rm --network none busybox true (CLI, median)", "ms", "lower", 1),
    ("run_cli_bridge", "same on coracle's default bridge (CLI, median)", "ms", "lower", 1),
    ("floor_cli", "  floor: docker version (the CLI's start-up, one request)", "ms", "lower", 1),
    ("api_cycle", "create+start+wait+remove via API (median)", "ms", "lower", 1),
    ("floor_cycle", "  floor: cgroup join + unshare of its namespaces around true", "ms", "lower", 1),
    ("floor_cgroup_join", "    of it: a fresh process joining a fresh cgroup", "ms", "lower", 1),
    ("floor_ns_cycle", "    of it: unshare -muinpf true", "ms", "lower", 1),
    ("rps_ping_1", "GET /_ping, 1 keep-alive connection", "req/s", "higher", 0),
    ("rps_ping_16", "GET /_ping, 16 connections", "req/s", "higher", 0),
    ("rps_containers_1", "GET /containers/json (50), 1 connection", "req/s", "higher", 0),
    ("rps_containers_16", "GET /containers/json (50), 16 connections", "req/s", "higher", 0),
    ("rps_images_1", "GET /images/json, 1 connection", "req/s", "higher", 0),
    ("rps_images_16", "GET /images/json, 16 connections", "req/s", "higher", 0),
    ("stats_cpu_50", "daemon CPU streaming stats of 50 containers", "%", "lower", 2),
    ("attach", "container stdout to attached reader (100 MiB)", "MiB/s", "higher", 1),
    ("floor_attach_log", "  floor: write its 600 MiB json-file log (dd)", "MiB/s", "higher", 1),
    ("attach_nolog", "same, --log-driver none", "MiB/s", "higher", 1),
    ("floor_attach", "  floor: dd bs=1M | cat (one pipe)", "MiB/s", "higher", 1),
    ("logs", "docker logs of a 100 MiB log", "s", "lower", 2),
    ("load", "docker load of a 100 MiB image", "s", "lower", 2),
    ("floor_load", "  floor: sha256sum + tar -x + syncfs of it", "s", "lower", 2),
    ("save", "docker save of a 100 MiB image", "s", "lower", 2),
    ("floor_save", "  floor: sha256sum + tar -c of its files", "s", "lower", 2),
]


def cmd_report(tsv, json_out, meta_json):
    meta = json.loads(meta_json)
    rows = {}
    with open(tsv) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4:
                continue
            key, side, kind, value = parts[:4]
            note = parts[4] if len(parts) > 4 else ""
            rows[(key, side)] = {"kind": kind, "value": value, "note": note}
    sides = ["coracle"] + (["other"] if meta.get("other") else [])
    out_metrics = []
    table = []
    notes = []
    for key, label, unit, better, dec in METRICS:
        entry = {"key": key, "metric": label, "unit": unit, "better": better}
        cells = []
        vals = {}
        for side in sides:
            r = rows.get((key, side))
            if r is None:
                entry[side] = {"skipped": "not measured"}
                cells.append("skipped (not measured)")
            elif r["kind"] == "skip":
                entry[side] = {"skipped": r["value"]}
                cells.append("skipped (%s)" % r["value"])
            else:
                v = float(r["value"])
                if unit == "MiB":  # recorded as bytes (size) or KiB (memory)
                    v = v / 1024.0 if not key.startswith("size") else v / 1048576.0
                vals[side] = v
                entry[side] = {"value": round(v, 4)}
                if r["note"]:
                    entry[side]["note"] = r["note"]
                    notes.append("%s, %s: %s" % (key, meta.get(side, side), r["note"]))
                cells.append(("%%.%df %%s" % dec) % (v, unit))
        if len(sides) == 2:
            if len(vals) == 2 and vals["other"]:
                entry["ratio"] = round(vals["coracle"] / vals["other"], 4)
                r = vals["coracle"] / vals["other"]
                cells.append(("%.3fx" if r < 0.1 else "%.2fx") % r)
            else:
                cells.append("-")
        out_metrics.append(entry)
        table.append(["%s [%s]" % (label, better)] + cells)
    header = ["metric [better]", meta.get("coracle", "coracle")]
    if len(sides) == 2:
        header += [meta.get("other", "other"), "ratio coracle/other"]
    widths = [max(len(r[i]) for r in table + [header]) for i in range(len(header))]
    fmt = lambda r: " | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)).rstrip()
    print(fmt(header))
    print("-+-".join("-" * w for w in widths))
    for r in table:
        print(fmt(r))
    if notes:
        print()
        print("notes:")
        for n in notes:
            print("  " + n)
    doc = dict(meta)
    doc["metrics"] = out_metrics
    os.makedirs(os.path.dirname(os.path.abspath(json_out)), exist_ok=True)
    with open(json_out + ".part", "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(json_out + ".part", json_out)


def cmd_server(addr):
    """The daemon's name and version from the Server header of /_ping."""
    _, h, _ = call(addr, "GET", "/_ping", timeout=5.0)
    srv = h.get("server", "")
    try:
        v = jcall(addr, "GET", "/version")
        name = srv.split("/")[0] if srv else "daemon"
        if name.lower() == "docker":
            name = "dockerd"
        print("%s %s" % (name, v.get("Version", "?")))
    except (OSError, RuntimeError, ValueError):
        print(srv or "other")


def main():
    a = sys.argv[1:]
    if not a or a[0] in ("-h", "--help"):
        print(__doc__)
        return
    cmd, args = a[0], a[1:]
    if cmd == "coldstart":
        i = args.index("--")
        return cmd_coldstart(args[0], args[1], args[i + 1:], "--json" in args[2:i])
    fn = {"probe": cmd_probe, "waitping": cmd_waitping, "rps": cmd_rps, "floor": cmd_floor, "daemonpid": cmd_daemonpid,
          "mem": cmd_mem, "binsizes": cmd_binsizes, "apicycle": cmd_apicycle, "startn": cmd_startn,
          "cleanup": cmd_cleanup, "attach": cmd_attach, "statscpu": cmd_statscpu, "report": cmd_report, "server": cmd_server}.get(cmd)
    if fn is None:
        raise SystemExit("unknown subcommand %r (see --help)" % cmd)
    fn(*args)


if __name__ == "__main__":
    main()
