#!/usr/bin/env bash
# Time `docker build` (classic builder, DOCKER_BUILDKIT=0) of a 5-step Dockerfile, cold
# (--no-cache) and cached, on coracle and optionally on another daemon, interleaved run by run
# so a busy machine's noise hits both alike; prints medians and their ratio.
#
#   scripts/bench-build.sh [--bin PATH] [--against ADDR] [--runs N]
#   scripts/bench.sh --build [same options]
#
#   --bin PATH      the coracle binary (default target/release/coracle, else target/debug/coracle)
#   --against ADDR  the other daemon (unix:///path or tcp://host:port), already running, with
#                   busybox:latest loaded (e.g. dockerd 20.10 started with --bridge=none)
#   --runs N        builds of each kind per daemon (default 5)
#
# The Dockerfile: FROM busybox, ENV, COPY of a 1 MiB file, RUN, CMD. coracle runs on a
# temporary data root and socket, removed at exit; the images made on the other daemon are
# removed too. Needs root, the docker CLI and python3.
set -euo pipefail

BIN="" AGAINST="" RUNS=5
need() { [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) need "$@"; BIN=$2; shift 2 ;;
        --against) need "$@"; AGAINST=$2; shift 2 ;;
        --runs) need "$@"; RUNS=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$BIN" ]; then
    BIN=$here/target/release/coracle
    [ -x "$BIN" ] || BIN=$here/target/debug/coracle
fi
[ -x "$BIN" ] || { echo "error: no coracle binary (cargo build, or --bin)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/coracle-bench-build.XXXXXX)
CPID=""
cleanup() {
    if [ -n "$AGAINST" ]; then
        DOCKER_HOST=$AGAINST docker rmi -f bench-build:latest >/dev/null 2>&1 || true
        DOCKER_HOST=$AGAINST docker image prune -f >/dev/null 2>&1 || true
    fi
    if [ -n "$CPID" ] && kill -0 "$CPID" 2>/dev/null; then
        kill -TERM "$CPID" 2>/dev/null || true
        wait "$CPID" 2>/dev/null || true
    fi
    awk -v w="$WORK" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

SOCK=$WORK/coracle.sock
echo '{}' > "$WORK/daemon.json"
"$BIN" --config-file "$WORK/daemon.json" --data-root "$WORK/root" -H "unix://$SOCK" \
    --pidfile "$WORK/coracle.pid" --log-level warn >"$WORK/coracle.log" 2>&1 &
CPID=$!
for _ in $(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "error: coracle did not start (see its log)" >&2; cat "$WORK/coracle.log" >&2; exit 1; }
"$here/scripts/make-busybox-image.sh" "$WORK/busybox.tar" >/dev/null
DOCKER_HOST=unix://$SOCK docker load -i "$WORK/busybox.tar" >/dev/null

CTX=$WORK/ctx
mkdir -p "$CTX"
head -c 1048576 /dev/urandom > "$CTX/f.bin"
cat > "$CTX/Dockerfile" <<'DF'
FROM busybox
ENV BENCH=1
COPY f.bin /f.bin
RUN wc -c /f.bin > /size
CMD ["cat", "/size"]
DF

# one build on daemon $1 with extra args; prints seconds
build_secs() {
    local host=$1; shift
    python3 - "$host" "$CTX" "$@" <<'PY'
import os, subprocess, sys, time
host, ctx, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="0")
t = time.monotonic()
r = subprocess.run(["docker", "build", "-q", "-t", "bench-build", *extra, ctx], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
if r.returncode != 0:
    sys.exit(f"docker build on {host} failed: {r.stderr.decode(errors='replace')}")
print(f"{time.monotonic() - t:.4f}")
PY
}

hosts=("unix://$SOCK")
names=("coracle")
if [ -n "$AGAINST" ]; then hosts+=("$AGAINST"); names+=("other"); fi
declare -A cold cached
for h in "${!hosts[@]}"; do
    # warm the page cache and the base image; not counted
    build_secs "${hosts[$h]}" --no-cache >/dev/null
    cold[$h]="" cached[$h]=""
done
for _ in $(seq 1 "$RUNS"); do
    for h in "${!hosts[@]}"; do
        cold[$h]+="$(build_secs "${hosts[$h]}" --no-cache) "
        cached[$h]+="$(build_secs "${hosts[$h]}") "
    done
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
printf '%-28s %12s %12s %10s\n' "build, 5 steps (median s)" "coracle" "${names[1]:-}" "ratio"
for kind in cold cached; do
    declare -n m=$kind
    a=$(echo "${m[0]}" | median)
    if [ -n "$AGAINST" ]; then
        b=$(echo "${m[1]}" | median)
        r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
    else b="-" r="-"; fi
    printf '%-28s %12s %12s %10s\n' "$kind ($RUNS runs)" "$a" "$b" "$r"
done
