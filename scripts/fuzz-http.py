#!/usr/bin/env python3
"""Mutation fuzz of coracle's HTTP front and archive loader, then a leak check.

Starts the daemon (a temporary data root and socket), counts its open
connections, forked workers, `.tmp*` directories and fds, then for DURATION
seconds sends mutated requests from several threads: heads with flipped,
dropped or repeated bytes and headers; bodies framed by Content-Length,
chunked, or both; clients that hang up at a random byte (inside a chunk-size
line, a CRLF, a trailer) or stall and leave; and `docker load` / `import`
archives with mutated bytes. Afterwards it waits for the daemon's timeouts to
pass and counts again. Exit status 1 if anything leaked or the daemon died.

usage: scripts/fuzz-http.py [--binary target/debug/coracle] [--seconds 600]
                            [--threads 12] [--seed N]
Needs root (the daemon does). Tests never depend on it: it is a soak.
"""

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

HEAD_TIMEOUT = 3  # seconds; the daemon runs with --head-timeout this


def docker_save_archive():
    """A tiny valid docker-save archive (one layer, one tag)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in [("etc/hello", b"hi\n"), ("bin/" + "x" * 120, b"long\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    layer = layer.getvalue()
    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
         "rootfs": {"type": "layers", "diff_ids": [diff]}}
    ).encode()
    cid = hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        [{"Config": cid + ".json", "RepoTags": ["fuzz:latest"], "Layers": ["l/layer.tar"]}]
    ).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in [("l/layer.tar", layer), (cid + ".json", config),
                           ("manifest.json", manifest)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue(), layer


def mutate(rng, data, n=None):
    b = bytearray(data)
    for _ in range(n if n is not None else rng.randint(1, 8)):
        if not b:
            break
        op = rng.randrange(6)
        i = rng.randrange(len(b))
        if op == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            del b[i:i + rng.randint(1, 16)]
        elif op == 2:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 3:
            b[i:i] = b[i:i + rng.randint(1, 64)]
        elif op == 4:
            b[i] = rng.choice(b"\r\n:;0 \x00\xff")
        else:
            b[i:i] = rng.choice([b"\r\n", b"Transfer-Encoding: chunked\r\n",
                                 b"Content-Length: 7\r\n", b"Expect: 100-continue\r\n"])
    return bytes(b)


def chunked(rng, body):
    out = bytearray()
    pos = 0
    while pos < len(body):
        n = rng.randint(1, 1024)
        piece = body[pos:pos + n]
        out += b"%x" % len(piece)
        if rng.random() < 0.1:
            out += b";ext=1"
        out += b"\r\n" + piece + b"\r\n"
        pos += n
    out += b"0\r\n"
    if rng.random() < 0.2:
        out += b"X-Trailer: y\r\n"
    out += b"\r\n"
    return bytes(out)


def request(rng, archive, layer):
    """One seed request, framed at random, as bytes."""
    kind = rng.randrange(7)
    if kind == 0:
        return b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"
    if kind == 1:
        body = json.dumps({"Image": "fuzz", "Env": ["A=1"], "Cmd": ["true"]}).encode()
        path, ct = b"/containers/create", b"application/json"
    elif kind == 2:
        body, path, ct = archive, b"/images/load?quiet=1", b"application/x-tar"
    elif kind == 3:
        body, path, ct = mutate(rng, archive, rng.randint(1, 30)), b"/images/load", b"application/x-tar"
    elif kind == 4:
        body, path, ct = layer, b"/images/create?fromSrc=-&repo=fz", b"application/x-tar"
    elif kind == 5:
        body, path, ct = b"{}", b"/containers/prune", b"application/json"
    else:
        body, path, ct = b"x" * rng.randint(0, 5000), b"/exec/none/start", b"text/plain"
    framing = rng.randrange(3)
    head = b"POST " + path + b" HTTP/1.1\r\nHost: d\r\nContent-Type: " + ct + b"\r\n"
    if framing == 0:
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    if framing == 1:
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(rng, body)
    return (head + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body)
            + chunked(rng, body))


def one_client(sock_path, rng, archive, layer, stats):
    data = request(rng, archive, layer)
    if rng.random() < 0.5:
        data = mutate(rng, data)
    cut = len(data)
    r = rng.random()
    if r < 0.25:
        cut = rng.randint(0, len(data))  # hang up (or stall) at a random byte
    elif r < 0.5:
        # ... or near framing: inside a size line, a CRLF, a trailer.
        marks = [i for i in range(len(data) - 1) if data[i:i + 2] == b"\r\n"]
        if marks:
            cut = max(0, min(len(data), rng.choice(marks) + rng.randint(-3, 3)))
    stall = rng.random() < 0.1
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    try:
        s.connect(sock_path)
        s.sendall(data[:cut])
        if stall:
            time.sleep(rng.uniform(0, HEAD_TIMEOUT + 1))
        if cut == len(data) or rng.random() < 0.5:
            s.settimeout(rng.choice([0.2, 1.0]))
            try:
                s.shutdown(socket.SHUT_WR) if rng.random() < 0.3 else None
                while s.recv(65536):
                    pass
            except OSError:
                pass
        stats["requests"] += 1
    except OSError:
        stats["errors"] += 1
    finally:
        s.close()


def counts(pid, root):
    fds = os.listdir(f"/proc/{pid}/fd")
    socks = 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                socks += 1
        except OSError:
            pass
    children = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    st = f.read()
                if int(st[st.rfind(")") + 2:].split()[1]) == pid:
                    children += 1
            except (OSError, ValueError, IndexError):
                pass
    temps = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            if n.startswith(".tmp"):
                temps += 1
        dirnames[:] = [d for d in dirnames if not d.startswith(".tmp") and d != "diff"]
    return {"sockets": socks, "workers": children, "temp_dirs": temps, "fds": len(fds)}


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--binary", default=os.path.join(here, "..", "target", "debug", "coracle"))
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--threads", type=int, default=12)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="coracle-fuzz-")
    sock = os.path.join(tmp, "d.sock")
    root = os.path.join(tmp, "root")
    with open(os.path.join(tmp, "daemon.json"), "w") as f:
        f.write("{}")
    log = open(os.path.join(tmp, "daemon.log"), "w")
    keep = [False]
    d = subprocess.Popen(
        [a.binary, "--config-file", os.path.join(tmp, "daemon.json"), "--data-root", root,
         "-H", "unix://" + sock, "--head-timeout", str(HEAD_TIMEOUT), "--max-connections", "64"],
        stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        time.sleep(0.5)
        before = counts(d.pid, root)
        archive, layer = docker_save_archive()
        stats = {"requests": 0, "errors": 0}
        end = time.time() + a.seconds

        def loop(i):
            rng = random.Random(a.seed * 1000 + i)
            while time.time() < end:
                one_client(sock, rng, archive, layer, stats)

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(a.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Let head/body timeouts, lingering closes and killed workers settle.
        time.sleep(HEAD_TIMEOUT + 3)
        after = counts(d.pid, root) if d.poll() is None else None
        print(json.dumps({"seed": a.seed, "seconds": a.seconds, "clients": stats["requests"],
                          "client_errors": stats["errors"], "before": before, "after": after}))
        if after is None:
            print("the daemon died; log:", os.path.join(tmp, "daemon.log"))
            keep[0] = True
            return 1
        leaked = [k for k in before if after[k] > before[k]]
        if leaked:
            print("LEAKED:", ", ".join(leaked), "- daemon log kept in", tmp)
            keep[0] = True
            return 1
        return 0
    finally:
        if d.poll() is None:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(15)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
        log.close()
        if not keep[0]:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
