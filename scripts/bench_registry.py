#!/usr/bin/env python3
"""scripts/bench.sh --registry: pull the same image from the same local registry with
coracle and, if installed, dockerd, side by side (runs interleaved).

  scripts/bench.sh --registry [--bin PATH] [--mib N] [--runs N] [--no-dockerd] [--json FILE]

Starts Debian's docker-registry on a free loopback port with a temporary storage root,
pushes an image of 4 gzip layers of random data (N MiB in all, default 100) by hand
(docker schema 2), then, for each run and each daemon, starts the daemon on a fresh data
root under /var/tmp (a real disk, so write counters mean something) and pulls the image
through POST /images/create, measuring:
  - the pull's wall time (request to the end of the progress stream),
  - the daemon's peak VmRSS during the pull (sampled every 20 ms; the daemon process only,
    and separately with its children: coracle's pull worker, dockerd's untar helpers),
  - bytes written to disk per byte of image (compressed size): write_bytes of the daemon's
    /proc/PID/io after the pull minus before (the kernel adds a reaped child's counters to
    its parent's, so workers count), after a sync.
dockerd runs as the project's rules say: no iptables, no bridge, its own socket, data and
exec roots and pidfile (NAME reg-bench), --insecure-registry for the registry; it is stopped
(SIGTERM, then waited for) after each run. Standard library only.
"""

import argparse
import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(cond, secs, what):
    end = time.time() + secs
    while time.time() < end:
        if cond():
            return
        time.sleep(0.05)
    raise SystemExit("timed out waiting for " + what)


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Registry:
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "registry")
        os.makedirs(self.dir)
        self.port = free_port()
        cfg = os.path.join(self.dir, "config.yml")
        with open(cfg, "w") as f:
            f.write("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                    "    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%d\n"
                    % (os.path.join(self.dir, "data"), self.port))
        self.proc = subprocess.Popen(["docker-registry", "serve", cfg],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.up, 15, "docker-registry")

    def up(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def req(self, method, path, body=b"", headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data

    def push_blob(self, repo, data):
        d = sha(data)
        st, h, _ = self.req("POST", "/v2/%s/blobs/uploads/" % repo)
        assert st == 202, st
        loc = h["location"]
        if loc.startswith("http"):
            loc = "/" + loc.split("/", 3)[3]
        sep = "&" if "?" in loc else "?"
        st, _, b = self.req("PUT", "%s%sdigest=%s" % (loc, sep, d.replace(":", "%3A")), data,
                            {"Content-Type": "application/octet-stream"})
        assert st == 201, (st, b)
        return d

    def push_image(self, repo, tag, mib):
        layers, diff_ids, descs = 4, [], []
        each = mib * 1024 * 1024 // layers
        for i in range(layers):
            raw = io.BytesIO()
            with tarfile.open(fileobj=raw, mode="w") as t:
                data = os.urandom(each)
                ti = tarfile.TarInfo("layer%d.bin" % i)
                ti.size = len(data)
                ti.mtime = 0
                t.addfile(ti, io.BytesIO(data))
            raw = raw.getvalue()
            gz = gzip.compress(raw, compresslevel=1, mtime=0)
            diff_ids.append(sha(raw))
            d = self.push_blob(repo, gz)
            descs.append({"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                          "size": len(gz), "digest": d})
        config = json.dumps({
            "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        cd = self.push_blob(repo, config)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": len(config), "digest": cd},
            "layers": descs}).encode()
        st, _, b = self.req("PUT", "/v2/%s/manifests/%s" % (repo, tag), manifest,
                            {"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
        assert st == 201, (st, b)
        return sum(x["size"] for x in descs)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=600)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(600)
        self.sock.connect(self.path)


def ping(sock):
    try:
        c = UnixHTTP(sock)
        c.request("GET", "/_ping")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def children(pid):
    out = []
    for t in os.listdir("/proc"):
        if not t.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % t) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(t))
            out.extend(children(int(t)))
    return out


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def write_bytes(pid):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def pull(sock, pid, ref, tag, skip_children=()):
    """Pull; returns (seconds, peak daemon RSS KiB, peak with children KiB, bytes written)."""
    os.sync()
    w0 = write_bytes(pid)
    peaks = [rss_kib(pid), 0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            r = rss_kib(pid)
            kids = [k for k in children(pid) if k not in skip_children]
            peaks[0] = max(peaks[0], r)
            peaks[1] = max(peaks[1], r + sum(rss_kib(k) for k in kids))
            time.sleep(0.02)

    t = threading.Thread(target=sample)
    t.start()
    c = UnixHTTP(sock)
    t0 = time.time()
    try:
        c.request("POST", "/images/create?fromImage=%s&tag=%s" % (ref, tag))
        r = c.getresponse()
        body = r.read()
        secs = time.time() - t0
    finally:
        done.set()
        t.join()
        c.close()
    if r.status != 200 or b'"error"' in body:
        raise SystemExit("pull failed: %d %s" % (r.status, body[-500:].decode(errors="replace")))
    os.sync()
    return secs, peaks[0], max(peaks), write_bytes(pid) - w0


def run_coracle(binary, tmp, ref, tag, n):
    base = tempfile.mkdtemp(prefix="coracle-regbench-", dir="/var/tmp")
    sock = os.path.join(base, "d.sock")
    cfg = os.path.join(base, "daemon.json")
    with open(cfg, "w") as f:
        f.write("{}")
    log = open(os.path.join(base, "log"), "w")
    p = subprocess.Popen([binary, "--config-file", cfg, "--data-root", os.path.join(base, "root"),
                          "-H", "unix://" + sock], stdout=log, stderr=log)
    try:
        wait_for(lambda: ping(sock), 20, "coracle")
        return pull(sock, p.pid, ref, tag)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait()
        shutil.rmtree(base, ignore_errors=True)


def run_dockerd(tmp, ref, tag, host):
    name = "reg-bench"
    sock = "/run/dockerd-%s.sock" % name
    data = "/var/lib/dockerd-%s" % name
    shutil.rmtree(data, ignore_errors=True)
    log = open(os.path.join(tmp, "dockerd.log"), "a")
    p = subprocess.Popen(["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
                          "--host", "unix://" + sock, "--data-root", data,
                          "--exec-root", "/run/dockerd-" + name,
                          "--pidfile", "/run/dockerd-%s.pid" % name,
                          "--insecure-registry", host], stdout=log, stderr=log)
    try:
        wait_for(lambda: ping(sock), 60, "dockerd")
        # Its containerd is a long-lived child, not part of the pull.
        settled = children(p.pid)
        return pull(sock, p.pid, ref, tag, skip_children=settled)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/coracle"))
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-dockerd", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    if not os.path.exists(a.bin):
        subprocess.check_call(["cargo", "build", "--release"], cwd=ROOT)
    with_dockerd = not a.no_dockerd and shutil.which("dockerd") is not None
    tmp = tempfile.mkdtemp(prefix="regbench-")
    reg = Registry(tmp)
    try:
        size = reg.push_image("bench/big", "latest", a.mib)
        ref = "127.0.0.1:%d/bench/big" % reg.port
        rows = {"coracle": [], "dockerd": []}
        for i in range(a.runs):
            rows["coracle"].append(run_coracle(a.bin, tmp, ref, "latest", i))
            if with_dockerd:
                rows["dockerd"].append(run_dockerd(tmp, ref, "latest", "127.0.0.1:%d" % reg.port))
        out = {"image_bytes": size, "runs": a.runs}
        print("pull of a %.1f MiB image (4 gzip layers) from a loopback docker-registry, "
              "median of %d runs" % (size / 1048576, a.runs))
        print("%-8s %9s %14s %18s %14s" % ("daemon", "time s", "daemon RSS MiB",
                                           "+children RSS MiB", "written/image"))
        for name, rs in rows.items():
            if not rs:
                continue
            med = [statistics.median(x[k] for x in rs) for k in range(4)]
            out[name] = {"secs": med[0], "rss_kib": med[1], "rss_all_kib": med[2],
                         "written_per_byte": med[3] / size, "all": rs}
            print("%-8s %9.2f %14.1f %18.1f %14.2f" % (name, med[0], med[1] / 1024,
                                                       med[2] / 1024, med[3] / size))
        if with_dockerd and rows["dockerd"]:
            c, d = out["coracle"], out["dockerd"]
            print("coracle/dockerd: time %.2fx, daemon RSS %.2fx, written %.2fx"
                  % (c["secs"] / d["secs"], c["rss_kib"] / d["rss_kib"],
                     c["written_per_byte"] / max(d["written_per_byte"], 1e-9)))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
    finally:
        reg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
