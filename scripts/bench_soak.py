#!/usr/bin/env python3
"""Soak: `scripts/bench.sh --soak [options]` (or this script directly).

Starts coracle on a temporary data root (`"bridge": "none"`, so it touches no host
networking) and runs two phases:

 1. clients (default 5 min): --clients (1000) concurrent keep-alive API clients, each
    sending GET /_ping and GET /containers/json in turn, one request per --think seconds
    (1.0), while --containers (50) containers log a line every 100 ms to an attached
    reader each. Reported: p50/p99/max latency per path, requests, errors (any non-200,
    a closed connection, a request unanswered for 30 s), attached bytes received.
 2. restarts (default 10 min): --containers containers under `--restart always` whose
    command exits after 1 s, each also restarted through the API about once a second
    (dockerd's back-off doubles a 1 s run's delay up to a minute, so the policy alone
    would not restart them every second). Reported: restarts done, API errors, and
    daemon RSS, open fds and mount count sampled every 10 s: the mean of the last minute
    against that of the second minute (goal: within 5%; one sample's fds depend on how
    many runs are live at that instant), zombies among the daemon's children, and after
    removing every container, leftover cgroups and mounts and the open fds against their
    count before phase 2 (at most 5 more).

Options:
  --bin PATH            the coracle binary (default: target/release/coracle, brought up
                        to date with cargo build --release first)
  --soak-minutes M      phase 1 length (default 5); phase 2 is twice as long unless
                        --restart-minutes says otherwise
  --restart-minutes R   phase 2 length (default 2 x M)
  --clients N           keep-alive API clients in phase 1 (default 1000)
  --containers N        containers in each phase (default 50)
  --think S             seconds between one client's requests (default 1.0)
  --json FILE           results (default target/bench/soak-<commit>.json)

Standard library only; run as root. Exit code 0 when there was no error and every
figure was flat, 1 otherwise, 2 on bad usage.
"""

import argparse
import json
import multiprocessing as mp
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_load as bl  # noqa: E402  (the shared raw HTTP client)

PATHS = ("/_ping", "/containers/json")


def log(*a):
    print("[soak %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- clients (phase 1)

def client_proc(sock_path, n, secs, think, q, idx):
    """n keep-alive clients on one selector; latencies per path back through q."""
    sel = selectors.DefaultSelector()
    lat = {p: [] for p in PATHS}
    errors = []
    conns = []
    for i in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(sock_path)
        except OSError as e:
            errors.append("connect: %s" % e)
            continue
        s.setblocking(False)
        c = {"s": s, "buf": b"", "sent": None, "path": PATHS[(i + idx) % 2],
             "next": time.monotonic() + think * (i / max(n, 1))}
        conns.append(c)
        sel.register(s, selectors.EVENT_READ, c)
    end = time.monotonic() + secs
    while True:
        now = time.monotonic()
        if now >= end and all(c["sent"] is None for c in conns):
            break
        if now >= end + 30:
            errors.append("%d requests unanswered 30 s after the end"
                          % sum(c["sent"] is not None for c in conns))
            break
        for c in conns:
            if c["s"] is None:
                continue
            if c["sent"] is None and now >= c["next"] and now < end:
                req = ("GET %s HTTP/1.1\r\nHost: d\r\n\r\n" % c["path"]).encode()
                try:
                    c["s"].sendall(req)
                    c["sent"] = now
                except OSError as e:
                    errors.append("send: %s" % e)
                    sel.unregister(c["s"])
                    c["s"].close()
                    c["s"] = None
            elif c["sent"] is not None and now - c["sent"] > 30:
                errors.append("%s unanswered for 30 s" % c["path"])
                sel.unregister(c["s"])
                c["s"].close()
                c["s"] = None
        for key, _ in sel.select(timeout=0.01):
            c = key.data
            try:
                d = c["s"].recv(262144)
            except BlockingIOError:
                continue
            except OSError as e:
                d = b""
                errors.append("recv: %s" % e)
            if not d:
                errors.append("closed by the daemon")
                sel.unregister(c["s"])
                c["s"].close()
                c["s"] = None
                continue
            c["buf"] += d
            done = response_end(c["buf"])
            if done is None:
                continue
            status, rest = done
            t = time.monotonic()
            if status != 200:
                errors.append("%s -> %d" % (c["path"], status))
            lat[c["path"]].append(t - c["sent"])
            c["buf"] = rest
            c["sent"] = None
            c["next"] = t + think
            c["path"] = PATHS[1] if c["path"] == PATHS[0] else PATHS[0]
    for c in conns:
        if c["s"] is not None:
            c["s"].close()
    q.put((lat, errors[:50], len(errors)))


def response_end(buf):
    """(status, rest) once buf holds a whole response, else None."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return None
    head = buf[:i].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    hdrs = {}
    for l in head[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    body = buf[i + 4:]
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        return (status, body[n:]) if len(body) >= n else None
    if "chunked" in hdrs.get("transfer-encoding", ""):
        j = body.find(b"0\r\n\r\n")
        # good enough for JSON bodies: the last chunk ends the body
        while j >= 0:
            if j == 0 or body[j - 2:j] == b"\r\n":
                return status, body[j + 5:]
            j = body.find(b"0\r\n\r\n", j + 1)
        return None
    return status, b""


def attach_reader(sock_path, ids, stop, stats):
    """One attached stream per container, drained in this thread."""
    sel = selectors.DefaultSelector()
    for cid in ids:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)
        s.sendall(("POST /containers/%s/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                   "Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
                   % cid).encode())
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.2):
            try:
                d = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            if not d:
                stats["closed"] += 1
                sel.unregister(key.fileobj)
                key.fileobj.close()
                continue
            stats["bytes"] += len(d)
    for key in list(sel.get_map().values()):
        key.fileobj.close()


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


# ---------------------------------------------------------------- daemon facts

def daemon_facts(pid, data_root):
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                rss = int(l.split()[1])
    fds = len(os.listdir("/proc/%d/fd" % pid))
    with open("/proc/%d/mounts" % pid) as f:  # the daemon's mount namespace
        mounts = sum(1 for l in f if data_root in l.split()[1])
    return {"rss_kib": rss, "fds": fds, "mounts": mounts}


def zombies_of(pid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        if int(rest[1]) == pid and rest[0] == "Z":
            out.append(int(p))
    return out


def leftover_cgroups(ids):
    left = []
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
                 "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/freezer"):
        for cid in ids:
            p = os.path.join(base, "coracle", cid)
            if os.path.isdir(p):
                left.append(p)
    return left


def within(a, b, pct):
    return b == 0 and a == 0 or b != 0 and abs(a - b) / b <= pct / 100.0


# ---------------------------------------------------------------- main

def main():
    # SIGTERM/SIGINT: stop through the `finally` below (daemon stopped, mounts gone).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    ap = argparse.ArgumentParser(add_help=True, description="coracle soak (see the module doc)")
    ap.add_argument("--bin")
    ap.add_argument("--soak-minutes", type=float, default=5.0)
    ap.add_argument("--restart-minutes", type=float)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--think", type=float, default=1.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    restart_min = a.restart_minutes if a.restart_minutes is not None else 2 * a.soak_minutes

    binary = a.bin or os.path.join(ROOT, "target/release/coracle")
    if not a.bin:
        # Always (a no-op when it is up to date): a binary left from before a
        # fix would be measured instead of the sources.
        subprocess.check_call(["cargo", "build", "--release"], cwd=ROOT)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    work = tempfile.mkdtemp(prefix="coracle-soak.")
    data_root = os.path.join(work, "root")
    sock = os.path.join(work, "d.sock")
    addr = "unix://" + sock
    with open(os.path.join(work, "daemon.json"), "w") as f:
        json.dump({"bridge": "none"}, f)
    dlog = open(os.path.join(work, "daemon.log"), "w")
    d = subprocess.Popen([binary, "--config-file", os.path.join(work, "daemon.json"),
                          "--data-root", data_root, "-H", addr,
                          "--max-connections", str(a.clients + a.containers + 200)],
                         stdin=subprocess.DEVNULL, stdout=dlog, stderr=dlog)
    result = {"binary": binary, "clients": a.clients, "containers": a.containers,
              "soak_minutes": a.soak_minutes, "restart_minutes": restart_min}
    ok = True
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if bl.call(addr, "GET", "/_ping", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        tar = os.path.join(work, "busybox.tar")
        subprocess.check_call([os.path.join(HERE, "make-busybox-image.sh"), tar],
                              stdout=subprocess.DEVNULL)
        subprocess.check_call(["docker", "-H", addr, "load", "-i", tar], stdout=subprocess.DEVNULL)

        # Phase 1 -------------------------------------------------------
        log("phase 1: %d clients, %d attached logging containers, %.1f min"
            % (a.clients, a.containers, a.soak_minutes))
        ids = []
        for i in range(a.containers):
            ids.append(bl.create(addr, "busybox:latest",
                                 ["sh", "-c", "i=0; while true; do echo soak line $i; i=$((i+1)); usleep 100000; done"]))
        stop = threading.Event()
        astats = {"bytes": 0, "closed": 0}
        reader = threading.Thread(target=attach_reader, args=(sock, ids, stop, astats))
        reader.start()
        time.sleep(0.5)
        for cid in ids:
            bl.jcall(addr, "POST", "/containers/%s/start" % cid, b"")
        secs = a.soak_minutes * 60
        procs, q = [], mp.Queue()
        nproc = 4
        for k in range(nproc):
            n = a.clients // nproc + (1 if k < a.clients % nproc else 0)
            p = mp.Process(target=client_proc, args=(sock, n, secs, a.think, q, k))
            p.start()
            procs.append(p)
        pid = d.pid
        samples1 = []
        t0 = time.time()
        while time.time() - t0 < secs:
            time.sleep(10)
            samples1.append(daemon_facts(pid, data_root))
        lat = {p: [] for p in PATHS}
        errs, nerr = [], 0
        for _ in procs:
            l, e, n = q.get()
            for p in PATHS:
                lat[p].extend(l[p])
            errs.extend(e)
            nerr += n
        for p in procs:
            p.join()
        stop.set()
        reader.join()
        phase1 = {"errors": nerr, "error_samples": errs[:10],
                  "attached_bytes": astats["bytes"], "attached_closed_early": astats["closed"],
                  "samples": samples1}
        for p in PATHS:
            xs = lat[p]
            phase1[p] = {"requests": len(xs),
                         "p50_ms": round(1000 * percentile(xs, 50), 2) if xs else None,
                         "p99_ms": round(1000 * percentile(xs, 99), 2) if xs else None,
                         "max_ms": round(1000 * max(xs), 2) if xs else None}
        result["phase1"] = phase1
        log("phase 1:", json.dumps({k: v for k, v in phase1.items() if k != "samples"}))
        ok &= nerr == 0 and astats["closed"] == 0 and astats["bytes"] > 0
        for cid in ids:
            bl.jcall(addr, "DELETE", "/containers/%s?force=1" % cid, ok=(204,))

        # Phase 2 -------------------------------------------------------
        time.sleep(2)
        before2 = daemon_facts(pid, data_root)
        log("phase 2: %d containers restarting every second, %.1f min" % (a.containers, restart_min))
        ids2 = []
        for i in range(a.containers):
            cid = bl.create(addr, "busybox:latest", ["sleep", "1"],
                            extra={"HostConfig": {"NetworkMode": "none",
                                                  "RestartPolicy": {"Name": "always"}}})
            bl.jcall(addr, "POST", "/containers/%s/start" % cid, b"")
            ids2.append(cid)
        secs2 = restart_min * 60
        t0 = time.time()
        restarts, api_errors, err_samples = 0, 0, []
        samples2 = []
        next_sample = t0 + 10
        lock = threading.Lock()

        def restarter(part):
            nonlocal restarts, api_errors
            c = bl.Conn(addr, timeout=60)
            while time.time() - t0 < secs2:
                round_start = time.time()
                for cid in part:
                    try:
                        st, _, body = c.request("POST", "/containers/%s/restart?t=0" % cid)
                    except OSError as e:
                        st, body = 0, str(e).encode()
                        c = bl.Conn(addr, timeout=60)
                    with lock:
                        if st == 204:
                            restarts += 1
                        else:
                            api_errors += 1
                            if len(err_samples) < 10:
                                err_samples.append("%d %s" % (st, body[:200]))
                time.sleep(max(0.0, 1.0 - (time.time() - round_start)))
            c.close()

        workers = [threading.Thread(target=restarter, args=(ids2[k::10],)) for k in range(10)]
        for w in workers:
            w.start()
        while time.time() - t0 < secs2:
            time.sleep(1)
            if time.time() >= next_sample:
                next_sample += 10
                s = daemon_facts(pid, data_root)
                s["t"] = round(time.time() - t0)
                s["zombies"] = len(zombies_of(pid))
                samples2.append(s)
        for w in workers:
            w.join()
        counts = bl.jcall(addr, "GET", "/containers/json?all=1")
        policy_restarts = 0
        for cid in ids2:
            policy_restarts += bl.jcall(addr, "GET", "/containers/%s/json" % cid).get("RestartCount", 0)
        for cid in ids2:
            bl.jcall(addr, "DELETE", "/containers/%s?force=1" % cid, ok=(204,))
        time.sleep(2)
        after = daemon_facts(pid, data_root)
        # A single sample's open fds depend on how many runs are live at
        # that instant (each has its pipes and log open): compare the means
        # of the second minute and of the last minute, and, for leaks, the
        # count after removing every container with the one before phase 2.
        def window(lo, hi):
            xs = [s for s in samples2 if lo <= s["t"] < hi] or samples2[-1:] or [after]
            return {k: round(sum(x[k] for x in xs) / len(xs)) for k in ("rss_kib", "fds", "mounts")}

        first = window(60, 120)
        last = window(secs2 - 60, secs2 + 60)
        phase2 = {"api_restarts": restarts, "restart_count_total": policy_restarts,
                  "api_errors": api_errors, "error_samples": err_samples,
                  "containers_listed": len(counts or []),
                  "before": before2,
                  "second_minute_mean": first, "last_minute_mean": last,
                  "after_removal": after,
                  "zombies_at_end": zombies_of(pid),
                  "leftover_cgroups": leftover_cgroups(ids2 + ids),
                  "samples": samples2}
        flat = {k: within(last[k], first[k], 5) for k in ("rss_kib", "fds", "mounts")}
        phase2["flat_within_5pct"] = flat
        # Every fd a run opened is closed once the containers are gone.
        phase2["fds_back"] = after["fds"] <= before2["fds"] + 5
        result["phase2"] = phase2
        log("phase 2:", json.dumps({k: v for k, v in phase2.items() if k != "samples"}))
        ok &= api_errors == 0 and all(flat.values()) and phase2["fds_back"] \
            and not phase2["zombies_at_end"] \
            and not phase2["leftover_cgroups"] and after["mounts"] == 0
    finally:
        try:
            bl.cmd_cleanup(addr)
        except Exception:  # noqa: BLE001 (best effort at the end)
            pass
        d.terminate()
        try:
            d.wait(60)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait()
        with open("/proc/self/mounts") as f:
            for m in sorted((l.split()[1] for l in f if work in l.split()[1]), reverse=True):
                subprocess.call(["umount", "-l", m])
        out = a.json
        if not out:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip() or "unknown"
            os.makedirs(os.path.join(ROOT, "target/bench"), exist_ok=True)
            out = os.path.join(ROOT, "target/bench/soak-%s.json" % commit)
        result["ok"] = bool(ok)
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
        log("results in", out, "ok" if ok else "NOT ok")
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
