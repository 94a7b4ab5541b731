#!/usr/bin/env python3
"""How a Docker-API daemon's costs grow with its work: `scripts/bench.sh --scale`.

Grows the number of running `sleep` containers (and of images, 0.4 per container, up to
200) and records at each checkpoint (default 0/50/100/250/500):
  create+start latency (median of the containers added in that step), GET /containers/json
  and GET /containers/{id}/json latency (medians), the engine's RSS (daemon, containerd,
  shims), the engine's CPU while idle (% of one core over IDLE_SECS), /images/json latency,
  and, for a daemon this script started (`coracle` mode), the time to restart it after
  kill -9: to its first /_ping, and until every container is listed running again. coracle
  has no shim, so a container's stdio dies with the daemon: at start-up it kills what is
  left of each container and restarts it per its policy (the containers run with `always`).

  bench_scale.py coracle BIN WORKDIR [options]   start BIN on WORKDIR/d.sock (data root
                                                 WORKDIR/root), measure, stop it, clean up
  bench_scale.py against ADDR PID [options]      a daemon already running (PID: its pid)
Options:
  --image REF         image to run (default busybox:latest; must be loaded already, or
                      --load TAR loads it first)
  --load TAR          `POST /images/load` this archive first
  --counts LIST       checkpoints (default 0,50,100,250,500)
  --network MODE      none (default) or bridge
  --time-limit S      stop growing once this many seconds were spent growing (the other
                      daemon gets as far as it can in the time coracle needed)
  --idle-secs S       seconds of idle CPU sampling per checkpoint (default 5)
  --json FILE         also write the rows as JSON
Prints a table (one row per checkpoint reached). Everything it made is removed at the end.
Standard library only; imports scripts/bench_load.py for the HTTP client and /proc walks.
"""

import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_load as bl  # noqa: E402

SCALE_LABEL = "coracle.bench.scale"


def ms(f):
    t0 = time.monotonic()
    f()
    return (time.monotonic() - t0) * 1000.0


def median_ms(f, n):
    return statistics.median(ms(f) for _ in range(n))


def rss_kib(pid):
    pids, _ = bl.engine_pids(pid)
    total = 0
    for p in pids:
        try:
            total += bl.smaps(p)["Rss"]
        except OSError:
            continue
    return total


def idle_cpu_pct(pid, secs):
    pids, _ = bl.engine_pids(pid)
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0 = time.monotonic(), bl.cpu_ticks(pids)
    time.sleep(secs)
    t1, c1 = time.monotonic(), bl.cpu_ticks(pids)
    return (c1 - c0) / hz / (t1 - t0) * 100.0


def tiny_image_tar(n):
    """A one-layer image archive (`docker save` shape) whose layer holds one distinct file."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        data = ("scale image %d\n" % n).encode()
        ti = tarfile.TarInfo("scale-%d" % n)
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    layer = layer.getvalue()
    import hashlib
    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["true"], "Labels": {SCALE_LABEL: "1"}},
                         "rootfs": {"type": "layers", "diff_ids": [diff]},
                         "created": "2024-01-01T00:00:00Z"}).encode()
    cid = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": cid + ".json", "RepoTags": ["coracle-scale/img:%d" % n],
                            "Layers": ["l/layer.tar"]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for name, data in ((cid + ".json", config), ("l/layer.tar", layer), ("manifest.json", manifest)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return out.getvalue()


def load(addr, data):
    status, _, body = bl.call(addr, "POST", "/images/load?quiet=1", data,
                              {"Content-Type": "application/x-tar"})
    if status != 200 or b"error" in body.lower():
        raise RuntimeError("image load -> %d %s" % (status, body[:300]))


def create_start(addr, image, network):
    body = {"Image": image, "Cmd": ["sleep", "36000"], "Labels": {SCALE_LABEL: "1"},
            "HostConfig": {"NetworkMode": network, "RestartPolicy": {"Name": "always"}}}
    cid = bl.jcall(addr, "POST", "/containers/create", body)["Id"]
    bl.jcall(addr, "POST", "/containers/%s/start" % cid, b"")
    return cid


def running_count(addr):
    f = urllib.parse.quote(json.dumps({"label": [SCALE_LABEL], "status": ["running"]}))
    return len(bl.jcall(addr, "GET", "/containers/json?filters=" + f) or [])


def cleanup(addr):
    f = urllib.parse.quote(json.dumps({"label": [SCALE_LABEL]}))
    for row in bl.jcall(addr, "GET", "/containers/json?all=1&filters=" + f) or []:
        bl.jcall(addr, "DELETE", "/containers/%s?force=1" % row["Id"], ok=(200, 204, 404))
    for row in bl.jcall(addr, "GET", "/images/json?filters=" + f) or []:
        bl.jcall(addr, "DELETE", "/images/%s?force=1" % row["Id"], ok=(200, 404, 409))


class Coracle:
    def __init__(self, binary, workdir):
        self.binary, self.workdir = binary, workdir
        os.makedirs(workdir, exist_ok=True)
        self.sock = os.path.join(workdir, "d.sock")
        self.addr = "unix://" + self.sock
        with open(os.path.join(workdir, "daemon.json"), "w") as f:
            f.write("{}")
        self.proc = None

    def start(self):
        log = open(os.path.join(self.workdir, "daemon.log"), "ab")
        self.proc = subprocess.Popen([self.binary, "-H", self.addr, "--data-root",
                                      os.path.join(self.workdir, "root"), "--config-file",
                                      os.path.join(self.workdir, "daemon.json")],
                                     stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 120
        while not bl.ping_once(self.addr):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("coracle did not start (see %s/daemon.log)" % self.workdir)
            time.sleep(0.0005)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.kill9()


def main():
    args = sys.argv[1:]
    if len(args) < 3 or args[0] not in ("coracle", "against"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    mode = args[0]
    opts = {"--image": "busybox:latest", "--load": None, "--counts": "0,50,100,250,500",
            "--network": "none", "--time-limit": None, "--idle-secs": "5", "--json": None}
    rest = args[3:]
    while rest:
        k = rest.pop(0)
        if k not in opts or not rest:
            print("bad option %s" % k, file=sys.stderr)
            sys.exit(2)
        opts[k] = rest.pop(0)
    counts = [int(c) for c in opts["--counts"].split(",")]
    limit = float(opts["--time-limit"]) if opts["--time-limit"] else None
    idle = float(opts["--idle-secs"])
    daemon = None
    if mode == "coracle":
        daemon = Coracle(args[1], args[2])
        daemon.start()
        addr = daemon.addr
    else:
        addr = args[1]
    pid = lambda: daemon.proc.pid if daemon else int(args[2])  # noqa: E731
    rows = []
    try:
        if opts["--load"]:
            with open(opts["--load"], "rb") as f:
                load(addr, f.read())
        image, network = opts["--image"], opts["--network"]
        ids, nimages, grown = [], 0, 0.0
        for target in counts:
            lat = []
            t_grow = time.monotonic()
            while len(ids) < target and (limit is None or grown + time.monotonic() - t_grow < limit):
                t0 = time.monotonic()
                ids.append(create_start(addr, image, network))
                lat.append((time.monotonic() - t0) * 1000)
                want_images = min(200, (len(ids) * 2) // 5)
                while nimages < want_images:
                    nimages += 1
                    load(addr, tiny_image_tar(nimages))
            grown += time.monotonic() - t_grow
            if len(ids) < target:
                print("stopped growing at %d containers (time limit %.0f s)" % (len(ids), limit),
                      file=sys.stderr)
                break
            row = {"containers": len(ids), "images": nimages,
                   "create_start_ms": round(statistics.median(lat), 2) if lat else None}
            row["list_ms"] = round(median_ms(lambda: bl.call(addr, "GET", "/containers/json"), 21), 2)
            if ids:
                k = [0]

                def one():
                    k[0] += 1
                    bl.call(addr, "GET", "/containers/%s/json" % ids[k[0] % len(ids)])
                row["inspect_ms"] = round(median_ms(one, 51), 2)
            else:
                row["inspect_ms"] = None
            row["images_ms"] = round(median_ms(lambda: bl.call(addr, "GET", "/images/json"), 21), 2)
            row["rss_mib"] = round(rss_kib(pid()) / 1024.0, 2)
            row["idle_cpu_pct"] = round(idle_cpu_pct(pid(), idle), 2)
            if daemon:
                daemon.kill9()
                t0 = time.monotonic()
                daemon.start()
                row["restart_ping_ms"] = round((time.monotonic() - t0) * 1000, 1)
                while running_count(addr) < len(ids):
                    if time.monotonic() - t0 > 300:
                        raise RuntimeError("containers not all running after a restart")
                    time.sleep(0.002)
                row["restart_all_running_ms"] = round((time.monotonic() - t0) * 1000, 1)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    finally:
        try:
            cleanup(addr)
        finally:
            if daemon:
                daemon.stop()
    cols = ["containers", "images", "create_start_ms", "list_ms", "inspect_ms", "images_ms",
            "rss_mib", "idle_cpu_pct", "restart_ping_ms", "restart_all_running_ms"]
    cols = [c for c in cols if any(c in r for r in rows)]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join("-" if r.get(c) is None else str(r[c]) for c in cols) + " |")
    if opts["--json"]:
        with open(opts["--json"], "w") as f:
            json.dump({"mode": mode, "network": opts["--network"], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
