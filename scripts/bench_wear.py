#!/usr/bin/env python3
"""scripts/bench.sh --wear: bytes written to the data root's device (flash wear), coracle
beside dockerd, each on a fresh ext4 filesystem of its own on a loop device.

  scripts/bench.sh --wear [--bin PATH] [--idle SECS] [--containers N] [--mib N]
                          [--no-dockerd] [--json FILE]

For each daemon: a sparse 4 GiB file under /var/tmp, mkfs.ext4 with its inode tables and
journal initialised up front (no lazy-init thread writing during the run), a loop device,
mounted as the daemon's data root. The daemon starts; after it settles, the loop device's
written sectors (/sys/block/loopN/stat, after a syncfs of the filesystem, so the journal and
metadata count too) are read before and after each phase:
  - `docker load` of the busybox image with a layer of N MiB of random data
    (scripts/make-busybox-image.sh --extra-random-mib N --seed 1; N = 100 by default),
  - creating and starting N containers (`docker run -d --network none busybox sleep`),
  - idle for SECS seconds (default 60) with them running.
The idle row is real time, not a compressed hour: coracle has no periodic work while idle
(its only timers are stop timeouts, restart back-off, healthcheck probes, pause polls and
launch deadlines, all tied to a request or a container that asked for them; an exposed
plain-TCP socket logs a warning every 60 s, to the log, not the data root), so an hour of
idle writes what a minute does: nothing. For coracle, write_bytes of the daemon (its reaped
workers included) is shown beside the device figure.
dockerd runs as the project's rules say (no iptables, no bridge, its own socket, data and exec
roots and pidfile, NAME wear) and is stopped (SIGTERM, then waited for) at the end of its
run. Needs root, losetup, mkfs.ext4, the docker CLI. Standard library only.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MIB = 1024 * 1024


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw).stdout.strip()


def wait_for(cond, secs, what):
    end = time.time() + secs
    while time.time() < end:
        if cond():
            return
        time.sleep(0.1)
    raise SystemExit("timed out waiting for " + what)


class LoopFs:
    """A fresh ext4 on a loop device, mounted at `mnt`."""

    def __init__(self, mnt):
        self.mnt = mnt
        fd, self.file = tempfile.mkstemp(prefix="wear-", suffix=".img", dir="/var/tmp")
        os.close(fd)
        os.truncate(self.file, 4096 * MIB)
        run("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", self.file)
        self.dev = run("losetup", "-f", "--show", self.file)
        os.makedirs(mnt, exist_ok=True)
        run("mount", self.dev, mnt)
        self.stat = "/sys/block/%s/stat" % os.path.basename(self.dev)

    def written(self):
        """Bytes written to the device so far, once everything is on it."""
        run("sync", "-f", self.mnt)
        with open(self.stat) as f:
            return int(f.read().split()[6]) * 512

    def close(self):
        for _ in range(50):
            if subprocess.run(["umount", self.mnt], stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.2)
        subprocess.run(["losetup", "-d", self.dev], stderr=subprocess.DEVNULL)
        os.unlink(self.file)


def write_bytes(pid):
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def docker(host, *args):
    return run("docker", "-H", host, *args)


def phases(host, fs, pid, image, containers, idle):
    """The three phases; returns {phase: (device bytes, daemon write_bytes)}."""
    out = {}
    time.sleep(2)
    d0, w0 = fs.written(), write_bytes(pid)
    docker(host, "load", "-i", image)
    d1, w1 = fs.written(), write_bytes(pid)
    out["load"] = (d1 - d0, w1 - w0)
    for i in range(containers):
        docker(host, "run", "-d", "--network", "none", "--name", "wear%d" % i,
               "busybox:latest", "sleep", "3600")
    d2, w2 = fs.written(), write_bytes(pid)
    out["containers"] = (d2 - d1, w2 - w1)
    time.sleep(idle)
    d3, w3 = fs.written(), write_bytes(pid)
    out["idle"] = (d3 - d2, w3 - w2)
    for i in range(containers):
        subprocess.run(["docker", "-H", host, "rm", "-f", "wear%d" % i],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(90)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def ping(host):
    return subprocess.run(["docker", "-H", host, "version"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def run_coracle(binary, tmp, image, a):
    base = tempfile.mkdtemp(prefix="coracle-wear-", dir="/var/tmp")
    fs = LoopFs(os.path.join(base, "root"))
    sock = os.path.join(base, "d.sock")
    cfg = os.path.join(base, "daemon.json")
    with open(cfg, "w") as f:
        f.write("{}")
    log = open(os.path.join(base, "log"), "w")
    p = subprocess.Popen([binary, "--config-file", cfg, "--data-root", fs.mnt,
                          "-H", "unix://" + sock], stdout=log, stderr=log)
    try:
        host = "unix://" + sock
        wait_for(lambda: ping(host), 30, "coracle")
        return phases(host, fs, p.pid, image, a.containers, a.idle)
    finally:
        stop(p)
        fs.close()
        shutil.rmtree(base, ignore_errors=True)


def run_dockerd(tmp, image, a):
    name = "wear"
    sock = "/run/dockerd-%s.sock" % name
    data = "/var/lib/dockerd-%s" % name
    shutil.rmtree(data, ignore_errors=True)
    fs = LoopFs(data)
    log = open(os.path.join(tmp, "dockerd.log"), "a")
    p = subprocess.Popen(["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
                          "--host", "unix://" + sock, "--data-root", data,
                          "--exec-root", "/run/dockerd-" + name,
                          "--pidfile", "/run/dockerd-%s.pid" % name], stdout=log, stderr=log)
    try:
        host = "unix://" + sock
        wait_for(lambda: ping(host), 90, "dockerd")
        return phases(host, fs, p.pid, image, a.containers, a.idle)
    finally:
        stop(p)
        fs.close()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/coracle"))
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--containers", type=int, default=10)
    ap.add_argument("--idle", type=int, default=60)
    ap.add_argument("--no-dockerd", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    if not os.path.exists(a.bin):
        subprocess.check_call(["cargo", "build", "--release"], cwd=ROOT)
    with_dockerd = not a.no_dockerd and shutil.which("dockerd") is not None
    tmp = tempfile.mkdtemp(prefix="wearbench-", dir="/var/tmp")
    try:
        image = os.path.join(tmp, "busybox-%dm.tar" % a.mib)
        run(os.path.join(HERE, "make-busybox-image.sh"), "--extra-random-mib", str(a.mib),
            "--seed", "1", image)
        size = os.path.getsize(image)
        rows = {"coracle": run_coracle(a.bin, tmp, image, a)}
        if with_dockerd:
            rows["dockerd"] = run_dockerd(tmp, image, a)
        print("bytes written to the data root's device (ext4 on a loop device, after syncfs)")
        print("%-8s %16s %10s %22s %14s %24s" % (
            "daemon", "load MiB", "per byte", "%d containers KiB" % a.containers,
            "idle %ds B" % a.idle, "coracle write_bytes MiB"))
        out = {"image_bytes": size, "containers": a.containers, "idle_secs": a.idle}
        for name, r in rows.items():
            out[name] = {k: {"device": v[0], "write_bytes": v[1]} for k, v in r.items()}
            wb = "%.1f / %.0f / %d" % (r["load"][1] / MIB, r["containers"][1] / 1024,
                                       r["idle"][1]) if name == "coracle" else "-"
            print("%-8s %16.1f %10.2f %22.0f %14d %24s" % (
                name, r["load"][0] / MIB, r["load"][0] / size, r["containers"][0] / 1024,
                r["idle"][0], wb))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
