#!/usr/bin/env bash
# Networking side by side with dockerd: published-port throughput, bridge run time, RSS.
#
#   scripts/bench-net.sh [--bin PATH] [--runs N] [--secs S] [--mib M] [--no-dockerd]
#   scripts/bench.sh --net [same options]
#
# Everything runs inside a dedicated network namespace `bench-net` (both daemons, their
# bridges and firewall rules, the 127.0.0.1 clients), joined by a veth to a second namespace
# `bench-peer` (10.250.0.2) that plays another host; the host's own firewall and links are
# never touched, and both namespaces are deleted at exit. dockerd runs with its defaults
# (iptables DNAT, docker-proxy for 127.0.0.1) on its own data root and socket.
# Rows, for coracle and dockerd, interleaved:
#   req/s   small HTTP GETs (one connection each, 4 at a time) to busybox httpd behind a
#           published port, from the peer (the DNAT path) and from 127.0.0.1 in bench-net
#   MiB/s   a M MiB file (default 64) fetched through the same port, both ways
#   run     median time of `docker run --rm busybox true` on the bridge and with
#           --network none, and their ratio (goal: bridge <= 1.2x none)
#   rss     daemon RSS with 50 `sleep` containers on the bridge (dockerd: dockerd,
#           containerd and the shims; never the containers)
# Goal: through-port throughput within 10% of dockerd's. The machine is noisy: read ratios.
#
# Options:
#   --bin PATH     the coracle binary (default target/release/coracle, built if missing)
#   --runs N       runs for the run-time medians (default 10)
#   --secs S       seconds per req/s measurement (default 5)
#   --mib M        size of the throughput file (default 64)
#   --no-dockerd   measure coracle only
# Needs: root, ip (iproute2), curl, python3, the docker CLI, dockerd (docker.io) unless
# --no-dockerd. Exit codes: 0 done, 1 failure, 2 usage.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }
BIN="" RUNS=10 SECS=5 MIB=64 DOCKERD=1
need() { [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) need "$@"; BIN=$2; shift 2 ;;
        --runs) need "$@"; RUNS=$2; shift 2 ;;
        --secs) need "$@"; SECS=$2; shift 2 ;;
        --mib) need "$@"; MIB=$2; shift 2 ;;
        --no-dockerd) DOCKERD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$BIN" ]; then
    BIN=$here/target/release/coracle
    [ -x "$BIN" ] || (cd "$here" && cargo build --release >&2)
fi
[ -x "$BIN" ] || { echo "error: no coracle binary at $BIN" >&2; exit 1; }
for t in ip curl python3 docker; do
    command -v $t >/dev/null || { echo "error: $t not found" >&2; exit 1; }
done
[ "$DOCKERD" = 0 ] || command -v dockerd >/dev/null || { echo "error: dockerd not found (apt-get install docker.io, or --no-dockerd)" >&2; exit 1; }

NS=bench-net PEER=bench-peer
WORK=$(mktemp -d /tmp/coracle-bench-net.XXXXXX)
CSOCK=$WORK/coracle.sock DSOCK=/run/dockerd-net.sock
CPID="" DPID=""
log() { printf '%s\n' "$*" >&2; }
# nsenter, not `ip netns exec`: that remounts /sys and hides the cgroup mounts.
in_ns() { nsenter --net=/run/netns/"$NS" "$@"; }
in_peer() { nsenter --net=/run/netns/"$PEER" "$@"; }
dc() { DOCKER_HOST=unix://$CSOCK docker "$@"; }
dd_() { DOCKER_HOST=unix://$DSOCK docker "$@"; }

stop() { # pid
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$1" 2>/dev/null && kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$CPID" ]; then dc rm -f $(dc ps -aq) >/dev/null 2>&1 || true; stop "$CPID"; fi
    if [ -n "$DPID" ]; then dd_ rm -f $(dd_ ps -aq) >/dev/null 2>&1 || true; stop "$DPID"; fi
    # dockerd's own containerd exits with it; anything left in the namespace goes too
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$PEER" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    awk -v w="$WORK" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    awk '$2 ~ "^/var/lib/dockerd-net|^/run/dockerd-net" { print $2 }' /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$WORK"
    [ "$DOCKERD" = 0 ] || rm -rf /var/lib/dockerd-net /run/dockerd-net /run/dockerd-net.pid /run/dockerd-net.sock
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns del "$PEER" 2>/dev/null || true
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip netns add "$PEER"
ip -n "$NS" link set lo up
ip -n "$PEER" link set lo up
ip -n "$NS" link add bn0 type veth peer name bn1 netns "$PEER"
ip -n "$NS" addr add 10.250.0.1/24 dev bn0
ip -n "$NS" link set bn0 up
ip -n "$PEER" addr add 10.250.0.2/24 dev bn1
ip -n "$PEER" link set bn1 up

# Both daemons get the same busybox image.
"$here/scripts/make-busybox-image.sh" "$WORK/busybox.tar" >/dev/null

wait_sock() { # sock
    for _ in $(seq 1 300); do
        curl -s --unix-socket "$1" http://x/_ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "error: no daemon on $1" >&2; return 1
}

echo '{"bridge": "cbench0", "bip": "10.251.0.1/24"}' > "$WORK/daemon.json"
in_ns "$BIN" --data-root "$WORK/coracle-root" -H "unix://$CSOCK" --config-file "$WORK/daemon.json" \
    > "$WORK/coracle.log" 2>&1 &
CPID=$!
wait_sock "$CSOCK"
dc load -i "$WORK/busybox.tar" >/dev/null
SIDES=(coracle)
if [ "$DOCKERD" = 1 ]; then
    in_ns dockerd --iptables=true --ip6tables=false --host "unix://$DSOCK" \
        --data-root /var/lib/dockerd-net --exec-root /run/dockerd-net \
        --pidfile /run/dockerd-net.pid > "$WORK/dockerd.log" 2>&1 &
    DPID=$!
    wait_sock "$DSOCK"
    dd_ load -i "$WORK/busybox.tar" >/dev/null
    SIDES+=(dockerd)
fi
cli() { if [ "$1" = coracle ]; then shift; dc "$@"; else shift; dd_ "$@"; fi; }
port_of() { if [ "$1" = coracle ]; then echo 18091; else echo 18090; fi; }

# The web server: busybox httpd with a tiny page and the big file.
for s in "${SIDES[@]}"; do
    cli "$s" run -d --name bweb -p "$(port_of "$s"):80" busybox sh -c \
        "mkdir -p /w && echo ok > /w/small && dd if=/dev/zero of=/w/big bs=1M count=$MIB 2>/dev/null && exec httpd -f -p 80 -h /w" >/dev/null
done
for s in "${SIDES[@]}"; do
    p=$(port_of "$s")
    for _ in $(seq 1 100); do
        [ "$(in_peer curl -s -m 2 "http://10.250.0.1:$p/small" 2>/dev/null)" = ok ] && break
        sleep 0.2
    done
done

LOADPY='
import socket, sys, threading, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fam = socket.AF_INET
req = b"GET /small HTTP/1.0\r\nHost: x\r\n\r\n"
count = [0] * 4
end = time.time() + secs
def worker(i):
    while time.time() < end:
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(req)
        while s.recv(65536):
            pass
        s.close()
        count[i] += 1
ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(round(sum(count) / secs))
'
reqs() { # side where(peer|lo)
    local p; p=$(port_of "$1")
    if [ "$2" = peer ]; then in_peer python3 -c "$LOADPY" 10.250.0.1 "$p" "$SECS"
    else in_ns python3 -c "$LOADPY" 127.0.0.1 "$p" "$SECS"; fi
}
mibs() { # side where
    local p speed; p=$(port_of "$1")
    if [ "$2" = peer ]; then
        speed=$(in_peer curl -s -o /dev/null -w '%{speed_download}' "http://10.250.0.1:$p/big")
    else
        speed=$(in_ns curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$p/big")
    fi
    python3 -c "print(round(float('$speed') / 1048576, 1))"
}
median_run() { # side network
    local sock=$CSOCK
    [ "$1" = coracle ] || sock=$DSOCK
    DOCKER_HOST=unix://$sock python3 -c '
import subprocess, sys, time
ts = []
for _ in range(int(sys.argv[1])):
    t = time.monotonic()
    subprocess.run(["docker", "run", "--rm", "--network", sys.argv[2], "busybox", "true"],
                   check=True, stdout=subprocess.DEVNULL)
    ts.append(time.monotonic() - t)
ts.sort()
print(round(ts[len(ts) // 2], 3))
' "$RUNS" "$2"
}
rss_kib() { # side
    if [ "$1" = coracle ]; then
        awk '/^VmRSS/ { print $2 }' "/proc/$CPID/status"
    else
        local total=0 pid
        for pid in $(pgrep -f "dockerd-net|/run/dockerd-net/containerd" || true); do
            total=$((total + $(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)))
        done
        echo "$total"
    fi
}

declare -A R
for where in peer lo; do
    for s in "${SIDES[@]}"; do R[reqs_${where}_$s]=$(reqs "$s" "$where"); done
    for s in "${SIDES[@]}"; do R[mibs_${where}_$s]=$(mibs "$s" "$where"); done
done
for s in "${SIDES[@]}"; do
    R[run_bridge_$s]=$(median_run "$s" bridge)
    R[run_none_$s]=$(median_run "$s" none)
done
for s in "${SIDES[@]}"; do
    cli "$s" rm -f bweb >/dev/null
    for i in $(seq 1 50); do cli "$s" run -d busybox sleep 600 >/dev/null; done
    sleep 2
    R[rss_$s]=$(rss_kib "$s")
    cli "$s" rm -f $(cli "$s" ps -aq) >/dev/null
done

ratio() { python3 -c "a, b = float('$1' or 0), float('$2' or 0); print(round(a / b, 2) if b else '-')"; }
printf '%-34s %12s %12s %8s\n' row coracle dockerd ratio
row() { # label key
    local c=${R[${2}_coracle]:-} d=${R[${2}_dockerd]:-}
    printf '%-34s %12s %12s %8s\n' "$1" "$c" "${d:--}" "$( [ -n "$d" ] && ratio "$c" "$d" || echo -)"
}
row "req/s via port from peer (DNAT)" reqs_peer
row "req/s via port from 127.0.0.1" reqs_lo
row "MiB/s via port from peer (DNAT)" mibs_peer
row "MiB/s via port from 127.0.0.1" mibs_lo
row "run --rm true, bridge (s)" run_bridge
row "run --rm true, --network none (s)" run_none
row "RSS, 50 containers on bridge (KiB)" rss
for s in "${SIDES[@]}"; do
    printf '%s: bridge/none run time %s\n' "$s" "$(ratio "${R[run_bridge_$s]}" "${R[run_none_$s]}")"
done
