#!/usr/bin/env python3
"""The machine's floors for the container-cycle rows of scripts/bench.sh: what the kernel
and the docker CLI cost on their own, measured in the same run with plain tools.

    bench_cycle_floor.py [--runs N] [--docker-host ADDR]

Prints one line per floor, tab-separated: KEY VALUE NOTE (milliseconds, medians of N runs,
default 15), where
  floor_cgroup_join  a fresh process moving itself into a fresh cgroup (every mounted v1
                     hierarchy, or the v2 one), as a container's first process must before
                     it execs. cgroup v1 takes the kernel's threadgroup rwsem for writing,
                     which waits an RCU grace period when no migration happened just before
                     (runs are 200 ms apart, as for one `docker run` after a pause).
  floor_ns_cycle     `unshare --mount --uts --ipc --net --pid --fork true`: making and tearing
                     down a container's namespaces around a program that does nothing
  floor_cycle        both: the process joins its cgroups, then runs the unshare above; the
                     least any create+start+wait+remove of a container can take here
  floor_cli          `docker version` against ADDR (--docker-host; skipped without it): the
                     CLI's own start-up and one API round trip, the least any `docker run` costs
Needs root, util-linux `unshare`, and the docker CLI for floor_cli. Standard library only.
"""

import os
import statistics
import subprocess
import sys
import time

ROOT = "/sys/fs/cgroup"


def hierarchies():
    """cgroup.procs directories to join: every v1 hierarchy, else the v2 root."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            fstype, mnt = parts[sep + 1], parts[4]
            if fstype == "cgroup" and "name=" not in parts[sep + 3]:
                out.append(mnt)
    if not out and os.path.exists(os.path.join(ROOT, "cgroup.procs")):
        out.append(ROOT)
    return out


def make_groups(name):
    dirs = []
    for h in hierarchies():
        d = os.path.join(h, name)
        os.makedirs(d, exist_ok=True)
        # cpuset needs cpus and mems before a task may join
        for k in ("cpuset.cpus", "cpuset.mems"):
            p = os.path.join(h, k)
            if os.path.exists(p):
                with open(p) as src, open(os.path.join(d, k), "w") as dst:
                    dst.write(src.read().strip() or "0")
        dirs.append(d)
    return dirs


def remove_groups(dirs):
    for d in dirs:
        for _ in range(100):
            try:
                os.rmdir(d)
                break
            except OSError:
                time.sleep(0.01)


def run_child(dirs, argv):
    """Fork; the child joins `dirs` and execs argv (or exits). Returns ms until reaped."""
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            for d in dirs:
                fd = os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY)
                os.write(fd, b"0")
                os.close(fd)
            if argv:
                os.execvp(argv[0], argv)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return (time.monotonic() - t0) * 1000.0


def median_of(runs, f):
    vals = []
    for _ in range(runs):
        time.sleep(0.2)
        vals.append(f())
    return statistics.median(vals)


def main():
    args = sys.argv[1:]
    runs, host = 15, None
    while args:
        a = args.pop(0)
        if a == "--runs" and args:
            runs = int(args.pop(0))
        elif a == "--docker-host" and args:
            host = args.pop(0)
        else:
            sys.exit(__doc__)
    unshare = ["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork", "true"]
    name = "coracle-bench-floor-%d" % os.getpid()
    dirs = make_groups(name)
    kind = "v1, %d hierarchies" % len(dirs) if dirs and dirs[0] != ROOT else "v2"
    try:
        base = median_of(runs, lambda: run_child([], None))
        join = median_of(runs, lambda: run_child(dirs, None)) - base
        ns = median_of(runs, lambda: run_child([], unshare))
        both = median_of(runs, lambda: run_child(dirs, unshare))
    finally:
        remove_groups(dirs)
    print("floor_cgroup_join\t%.1f\ta fresh process joining a fresh cgroup (%s), fork cost taken out" % (join, kind))
    print("floor_ns_cycle\t%.1f\tunshare of mount, uts, ipc, net and pid namespaces around true" % ns)
    print("floor_cycle\t%.1f\tcgroup join, then the unshare above: a container cycle's kernel floor" % both)
    if host:
        env = dict(os.environ, DOCKER_HOST=host)

        def cli():
            t0 = time.monotonic()
            subprocess.run(["docker", "version"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            return (time.monotonic() - t0) * 1000.0
        print("floor_cli\t%.1f\tdocker version: the CLI's start-up and one API round trip" % median_of(runs, cli))


if __name__ == "__main__":
    main()
