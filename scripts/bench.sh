#!/usr/bin/env bash
# Measure coracle, and optionally another Docker-API daemon, doing the same work.
#
#   scripts/bench.sh [--quick] [--json FILE]
#   scripts/bench.sh --against unix:///path/to/other.sock [--against-cmd 'CMD'] [--json FILE]
#
# Builds the static release binary (scripts/build-static.sh), starts coracle on a temporary
# data root and unix socket, and measures, on coracle and on the --against daemon:
#   binary size (for the other daemon: its executables and helpers, e.g. dockerd, containerd,
#   containerd-shim-runc-v2, runc, docker-init, docker-proxy), idle RSS/PSS of the engine's
#   processes, engine RSS/PSS with 0, 10 and 50 running `sleep` containers (daemon, containerd,
#   shims; never the containers), cold start to the first answered /_ping, `docker run --rm
#   busybox true` through the real CLI (--network none on both, and on coracle's bridge) and
#   create+start+wait+remove through the API (medians),
#   /_ping, /containers/json (50 containers) and /images/json requests/s over 1 and over 16
#   keep-alive connections, stdout throughput to an attached reader, `docker logs` of a 100 MiB
#   log, and `docker load` / `docker save` of a 100 MiB image. Next to attach, load and save:
#   the same attach with --log-driver none, and the machine's floors for these rows measured
#   in the same run with plain tools (scripts/bench-io-floor.sh: sha256sum, tar, dd, cat), and
#   the floors of a container cycle and of the CLI (scripts/bench_cycle_floor.py: a cgroup join,
#   unshare of the namespaces around true, docker version).
# What a daemon does not implement (its route answers 404 "page not found") is skipped, and the
# table says so. Both daemons get the same busybox image (scripts/make-busybox-image.sh).
#
# Options:
#   --against ADDR     the other daemon (unix:///path or tcp://host:port); it must already be
#                      running unless --against-cmd is given
#   --against-cmd CMD  a shell command that runs the other daemon in the foreground, listening
#                      on ADDR; the bench then starts it itself (3 times for the cold start,
#                      then once for the rest) and stops it at the end
#   --quick            only size, idle memory, cold start, /_ping and /images/json req/s
#                      (2 s each) and the API cycle; under a minute. What CI runs. Fails
#                      when the x86_64 musl binary is over the budget in scripts/size-budget.
#   --soak [OPTS]      the soak instead (scripts/bench_soak.py --help: 1,000 clients and 50
#                      attached containers for 5 min, then 50 restarting containers for 10 min)
#   --stats            only the stats row: 50 sleep containers, one streaming
#                      GET /containers/{id}/stats each, daemon CPU over 10 s as % of
#                      all CPUs (goal: under 1 %); also part of the full run
#   --scale MODE ...   only the scaling table: scripts/bench_scale.py MODE ... (`coracle BIN
#                      WORKDIR --load busybox.tar` or `against ADDR PID`; see its --help)
# The size of each musl target's current release binary is recorded too (x86_64 is what
# bench builds; aarch64 and armv7 when scripts/build-static.sh --all or CI built them).
#   --net [OPTS]       instead: published-port req/s and MiB/s, bridge run time, RSS with 50
#                      containers, side by side with dockerd in a private netns (scripts/bench-net.sh)
#   --json FILE        where to write the results (default target/bench/bench-<commit>.json)
#   --bin PATH         measure this coracle binary instead of building one
#   --runs N           repetitions for the medians (default 10; 3 with --quick)
#   --secs S           seconds per requests/s measurement (default 5; 2 with --quick)
#   --build [OPTS]     only `docker build` of a 5-step Dockerfile, cold and cached, side by side
#                      with --against's classic builder (scripts/bench-build.sh; OPTS are its own)
#   --registry [ARGS]  only the registry pull bench, coracle beside dockerd
#                      (scripts/bench_registry.py; --help there)
#   --wear [ARGS]      only the flash-wear bench: bytes written to the data root's device for
#                      a 100 MiB load, 10 container starts and a minute idle, coracle beside
#                      dockerd (scripts/bench_wear.py; --help there)
#
# Needs: cargo (unless --bin), python3 (standard library only), and for the CLI rows the
# docker CLI. Run as root (containers). Everything the bench makes lives in a temporary
# directory that is removed at exit; containers and images it made on the other daemon
# are removed too. Exit codes: 0 done, 1 failure, 2 usage.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

AGAINST="" AGAINST_CMD="" QUICK=0 STATS_ONLY=0 STATS_SECS=10 JSON="" BIN="" RUNS="" SECS=""
need() { [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --net) shift; exec "$(dirname "$0")/bench-net.sh" "$@" ;;  # networking vs dockerd: scripts/bench-net.sh --help
        --against) need "$@"; AGAINST=$2; shift 2 ;;
        --against-cmd) need "$@"; AGAINST_CMD=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --stats) STATS_ONLY=1; shift ;;
        --scale) shift; exec python3 "$(dirname "$0")/bench_scale.py" "$@" ;;
        --soak) shift; exec python3 "$(dirname "$0")/bench_soak.py" "$@" ;;
        --json) need "$@"; JSON=$2; shift 2 ;;
        --bin) need "$@"; BIN=$2; shift 2 ;;
        --runs) need "$@"; RUNS=$2; shift 2 ;;
        --secs) need "$@"; SECS=$2; shift 2 ;;
        --build) shift; exec "$(dirname "$0")/bench-build.sh" "$@" ;;
        --registry) shift; exec python3 "$(dirname "$0")/bench_registry.py" "$@" ;;
        --wear) shift; exec python3 "$(dirname "$0")/bench_wear.py" "$@" ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -z "$AGAINST_CMD" ] || [ -n "$AGAINST" ] || { echo "error: --against-cmd needs --against ADDR" >&2; exit 2; }
if [ "$QUICK" = 1 ]; then RUNS=${RUNS:-3}; SECS=${SECS:-2}; else RUNS=${RUNS:-10}; SECS=${SECS:-5}; fi

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
command -v python3 >/dev/null 2>&1 || { echo "error: python3 not found" >&2; exit 1; }
LOAD=(python3 "$here/scripts/bench_load.py")
HAVE_DOCKER=1
command -v docker >/dev/null 2>&1 || HAVE_DOCKER=0

WORK=$(mktemp -d /tmp/coracle-bench.XXXXXX)
RESULTS=$WORK/results.tsv
: > "$RESULTS"
CPID="" OPID="" OTHER_TOUCHED=0 OTHER_HAD_BUSYBOX=""

log() { printf '%s\n' "$*" >&2; }

# Unmounts anything a daemon left mounted under $WORK, deepest first, then removes it.
remove_work() {
    local m
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v w="$WORK" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r)
    rm -rf "$WORK"
}

stop_pid() { # pid, group(0|1)
    local pid=$1 group=$2 _
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    if [ "$group" = 1 ]; then kill -TERM -- "-$pid" 2>/dev/null || true; else kill -TERM "$pid" 2>/dev/null || true; fi
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "warning: pid $pid did not stop on SIGTERM in 30 s; sending SIGKILL"
        if [ "$group" = 1 ]; then kill -KILL -- "-$pid" 2>/dev/null || true; else kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    wait "$pid" 2>/dev/null || true
    # a daemon's group may hold children (its containerd) for a moment longer
    if [ "$group" = 1 ]; then
        for _ in $(seq 1 100); do
            kill -0 -- "-$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$AGAINST" ] && [ "$OTHER_TOUCHED" = 1 ]; then
        "${LOAD[@]}" cleanup "$AGAINST" >/dev/null 2>&1 || true
        if [ "$HAVE_DOCKER" = 1 ]; then
            DOCKER_HOST=$AGAINST docker rmi -f bench-big:latest >/dev/null 2>&1 || true
            [ -n "$OTHER_HAD_BUSYBOX" ] || DOCKER_HOST=$AGAINST docker rmi -f busybox:latest >/dev/null 2>&1 || true
        fi
    fi
    if [ -n "$CPID" ]; then
        "${LOAD[@]}" cleanup "unix://$WORK/coracle.sock" >/dev/null 2>&1 || true
        stop_pid "$CPID" 0
    fi
    stop_pid "$OPID" 1
    remove_work
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# record KEY SIDE ok VALUE [NOTE] | record KEY SIDE skip REASON
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >> "$RESULTS"; }
# a helper's output is either a value or "skip: REASON"
record_out() { # KEY SIDE OUTPUT
    case "$3" in
        skip:*) record "$1" "$2" skip "$(printf '%s' "${3#skip: }" | tr '\t\n' '  ')" ;;
        "") record "$1" "$2" skip "measurement failed (see messages above)" ;;
        *) record "$1" "$2" ok "$3" ;;
    esac
}
jget() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); v=d.get(sys.argv[2]); print("" if v is None else (", ".join(v) if isinstance(v, list) else v))' "$1" "$2"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
QUICK_SKIP="not run with --quick"
UNSUP="not supported by this daemon"

T_START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- build and images
if [ -z "$BIN" ]; then
    log "building the static release binary (scripts/build-static.sh)..."
    b0=$(date +%s)
    if ! sh scripts/build-static.sh > "$WORK/build.log" 2>&1; then
        cat "$WORK/build.log" >&2
        log "error: build failed"
        exit 1
    fi
    BIN=$(sed -n 's/^binary: //p' "$WORK/build.log")
    log "built $BIN in $(( $(date +%s) - b0 )) s"
fi
[ -x "$BIN" ] || { log "error: no coracle binary at $BIN"; exit 1; }
T_MEASURE=$(date +%s)

# ---------------------------------------------------------------- sizes per target, budget
# Each musl target's release binary, when it is current (built from the sources as they are:
# scripts/build-static.sh --all, or CI); the x86_64 one against scripts/size-budget.
current() { [ -f "$1" ] && [ -z "$(find src build.rs Cargo.toml Cargo.lock -newer "$1" -print -quit 2>/dev/null)" ]; }
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf; do
    b=target/$t/release/coracle
    if current "$b"; then record "size_${t%%-*}" coracle ok "$(wc -c < "$b" | tr -d ' ')" "$t"
    elif [ -f "$b" ]; then record "size_${t%%-*}" coracle skip "older than the sources"
    else record "size_${t%%-*}" coracle skip "not built"; fi
done
BUDGET=$(grep -v '^#' scripts/size-budget | grep -m1 -E '^[0-9]+$' || true)
[ -n "$BUDGET" ] || { log "error: no budget (a line of digits) in scripts/size-budget"; exit 1; }
BUDGET_MSG=""
b=target/x86_64-unknown-linux-musl/release/coracle
if current "$b"; then
    sz=$(wc -c < "$b" | tr -d ' ')
    if [ "$sz" -gt "$BUDGET" ]; then
        BUDGET_MSG="error: $b is $sz bytes, over the budget of $BUDGET in scripts/size-budget by $(( sz - BUDGET )); make it smaller, or raise the budget in the same commit and say why"
    else
        BUDGET_MSG="size budget: $b is $sz bytes, $(( BUDGET - sz )) under the budget of $BUDGET (scripts/size-budget)"
    fi
else
    BUDGET_MSG="size budget: not checked, no current $b (scripts/build-static.sh builds it)"
    [ "$QUICK" = 0 ] || BUDGET_MSG="error: ${BUDGET_MSG#size budget: }"
fi

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT-dirty"
[ -n "$JSON" ] || JSON="target/bench/bench-$COMMIT.json"

log "making the busybox test image..."
scripts/make-busybox-image.sh "$WORK/busybox.tar" >/dev/null
if [ "$QUICK" = 0 ] && [ "$STATS_ONLY" = 0 ]; then
    log "making the 100 MiB image..."
    scripts/make-busybox-image.sh --tag bench-big:latest --extra-random-mib 100 --seed 1 "$WORK/big.tar" >/dev/null
    log "measuring the machine's floors for load, save and attach (scripts/bench-io-floor.sh)..."
    while IFS=$'\t' read -r k v note; do
        record "$k" coracle ok "$v" "$note"; record "$k" other skip "a machine floor: see the coracle column"
    done < <(scripts/bench-io-floor.sh "$WORK/big.tar" "$WORK/floor")
    log "measuring the machine's floors for a container cycle (scripts/bench_cycle_floor.py)..."
    while IFS=$'\t' read -r k v note; do
        record "$k" coracle ok "$v" "$note"; record "$k" other skip "a machine floor: see the coracle column"
    done < <(python3 scripts/bench_cycle_floor.py)
fi

echo '{}' > "$WORK/daemon.json"
CSOCK="unix://$WORK/coracle.sock"
CARGS=(--config-file "$WORK/daemon.json" --log-level warn)

# ---------------------------------------------------------------- cold starts
if [ "$STATS_ONLY" = 0 ]; then
    log "coracle: cold start x3..."
    # the first run makes the data root (fsyncs of the new records), the others reuse it
    out=$("${LOAD[@]}" coldstart "unix://$WORK/cold.sock" 3 --json -- \
        "$BIN" --data-root "$WORK/cold" -H "unix://$WORK/cold.sock" "${CARGS[@]}")
    case "$out" in
        "{"*) record coldstart coracle ok "$(jget "$out" median_ms)" "runs $(jget "$out" runs_ms) ms (the first on a new data root)" ;;
        *) record_out coldstart coracle "$out" ;;
    esac
    rm -rf "$WORK/cold"
fi

"$BIN" --data-root "$WORK/coracle" -H "$CSOCK" --pidfile "$WORK/coracle.pid" "${CARGS[@]}" \
    > "$WORK/coracle.log" 2>&1 &
CPID=$!
"${LOAD[@]}" waitping "$CSOCK" 10 >/dev/null || { cat "$WORK/coracle.log" >&2; log "error: coracle did not start"; exit 1; }

OTHER_NAME=""
if [ -n "$AGAINST" ]; then
    if [ -n "$AGAINST_CMD" ]; then
        if "${LOAD[@]}" waitping "$AGAINST" 0.2 >/dev/null 2>&1; then
            log "error: something already answers on $AGAINST; stop it or drop --against-cmd"
            exit 1
        fi
        log "other: cold start x3 ($AGAINST_CMD)..."
        record_out coldstart other "$("${LOAD[@]}" coldstart "$AGAINST" 3 -- sh -c "exec $AGAINST_CMD")"
        setsid sh -c "exec $AGAINST_CMD" > "$WORK/other.log" 2>&1 &
        OPID=$!
        "${LOAD[@]}" waitping "$AGAINST" 60 >/dev/null || { tail -20 "$WORK/other.log" >&2; log "error: the other daemon did not start"; exit 1; }
    else
        "${LOAD[@]}" waitping "$AGAINST" 5 >/dev/null || { log "error: nothing answers /_ping on $AGAINST"; exit 1; }
        record coldstart other skip "daemon started outside the bench; give --against-cmd to measure"
    fi
    OTHER_NAME=$("${LOAD[@]}" server "$AGAINST")
fi
CORACLE_NAME=$("${LOAD[@]}" server "$CSOCK")

# ---------------------------------------------------------------- one daemon
bench_daemon() { # SIDE ADDR
    local side=$1 addr=$2 pid out f id t0 times
    local -A sup
    log "== $side ($addr)"
    export DOCKER_HOST=$addr DOCKER_CONFIG=$WORK/docker-config
    pid=$("${LOAD[@]}" daemonpid "$addr")
    case "$pid" in skip:*|"") pid="" ;; esac
    if [ "$side" = coracle ]; then pid=$CPID; fi

    # size
    if [ "$side" = coracle ]; then
        record size coracle ok "$(wc -c < "$BIN" | tr -d ' ')" "static binary"
    elif [ -n "$pid" ]; then
        out=$("${LOAD[@]}" binsizes "$pid")
        record size other ok "$(jget "$out" bytes)" "$(jget "$out" files)"
    else
        record size other skip "daemon process not found (only unix sockets are traced)"
    fi

    # idle memory
    mem_rows() { # KEY_RSS KEY_PSS [KEY_ANON KEY_FILE]
        local k
        if [ -z "$pid" ]; then
            for k in "$@"; do record "$k" "$side" skip "daemon process not found"; done; return
        fi
        local m; m=$("${LOAD[@]}" mem "$pid")
        record "$1" "$side" ok "$(jget "$m" rss_kib)" "$(jget "$m" procs)"
        if [ -n "$(jget "$m" pss_kib)" ]; then record "$2" "$side" ok "$(jget "$m" pss_kib)"; else record "$2" "$side" skip "no PSS on this kernel"; fi
        # the RSS split: RssAnon (what the daemon allocated) and RssFile (its executables' pages)
        if [ $# -ge 4 ]; then
            if [ -n "$(jget "$m" rss_anon_kib)" ]; then
                record "$3" "$side" ok "$(jget "$m" rss_anon_kib)"; record "$4" "$side" ok "$(jget "$m" rss_file_kib)"
            else
                record "$3" "$side" skip "no RssAnon in /proc/PID/status"; record "$4" "$side" skip "no RssFile in /proc/PID/status"
            fi
        fi
    }
    sleep 1
    mem_rows idle_rss idle_pss idle_rss_anon idle_rss_file

    # requests/s on /_ping
    rps_rows() { # KEY PATH
        local c o
        for c in 1 16; do
            o=$("${LOAD[@]}" rps "$addr" "$2" "$c" "$SECS")
            case "$o" in
                skip:*) record_out "$1_$c" "$side" "$o" ;;
                *) record "$1_$c" "$side" ok "$(jget "$o" rps)" "client CPU $(jget "$o" client_cpu) cores over $(jget "$o" procs) process(es), $c conn" ;;
            esac
        done
    }
    if [ "$STATS_ONLY" = 0 ]; then
        log "$side: /_ping req/s..."
        rps_rows rps_ping /_ping
    fi

    for f in images containers attach logs load save; do
        sup[$f]=$("${LOAD[@]}" probe "$addr" "$f")
        [ "${sup[$f]}" = supported ] || log "$side: $f skipped: $UNSUP"
    done

    # the busybox image
    local have_bb=0
    if [ "$HAVE_DOCKER" = 0 ]; then
        log "$side: no docker CLI, cannot load the busybox image"
    elif [ "${sup[load]}" = supported ]; then
        if [ "$side" = other ]; then
            OTHER_TOUCHED=1
            OTHER_HAD_BUSYBOX=$(docker image inspect -f '{{.Id}}' busybox:latest 2>/dev/null || true)
        fi
        if docker load -i "$WORK/busybox.tar" >/dev/null 2>"$WORK/load.err"; then have_bb=1
        else log "$side: docker load of busybox failed: $(cat "$WORK/load.err")"; fi
    fi
    local no_bb="no busybox image (image load failed)"
    [ "${sup[load]}" = supported ] || no_bb="no busybox image (image load $UNSUP)"
    [ "$HAVE_DOCKER" = 1 ] || no_bb="no docker CLI to load the image"

    if [ "$STATS_ONLY" = 1 ]; then :
    elif [ "${sup[images]}" = supported ]; then
        log "$side: /images/json req/s..."
        rps_rows rps_images /images/json
    else
        for f in rps_images_1 rps_images_16; do record "$f" "$side" skip "$UNSUP"; done
    fi

    # daemon CPU while every running bench container's stats are streamed
    stats_row() {
        local o
        if [ -z "$pid" ]; then record stats_cpu_50 "$side" skip "daemon process not found"; return; fi
        log "$side: daemon CPU while streaming stats of 50 containers..."
        o=$("${LOAD[@]}" statscpu "$addr" "$pid" "$STATS_SECS")
        case "$o" in
            skip:*) record_out stats_cpu_50 "$side" "$o" ;;
            *) record stats_cpu_50 "$side" ok "$(jget "$o" pct)" "$(jget "$o" streams) streams, $(jget "$o" objects) objects in $STATS_SECS s, % of all $(nproc) CPUs" ;;
        esac
    }
    local no_ct=""
    if [ "${sup[containers]}" != supported ]; then no_ct="$UNSUP"; elif [ "$have_bb" = 0 ]; then no_ct="$no_bb"; fi

    if [ "$STATS_ONLY" = 1 ]; then
        if [ -n "$no_ct" ]; then record stats_cpu_50 "$side" skip "$no_ct"; return; fi
        "${LOAD[@]}" startn "$addr" busybox:latest 50 >/dev/null
        sleep 2
        stats_row
        "${LOAD[@]}" cleanup "$addr" >/dev/null || true
        return
    fi


    # create+start+wait+remove
    if [ -n "$no_ct" ]; then record api_cycle "$side" skip "$no_ct"
    else
        log "$side: API create+start+wait+remove x$RUNS..."
        record_out api_cycle "$side" "$("${LOAD[@]}" apicycle "$addr" busybox:latest "$RUNS" || true)"
        [ "$side" = other ] && OTHER_TOUCHED=1
    fi

    if [ "$QUICK" = 1 ]; then
        for f in rss_0 rss_10 rss_50 pss_0 pss_10 pss_50 run_cli run_cli_bridge rps_containers_1 rps_containers_16 stats_cpu_50 attach logs load save; do
            record "$f" "$side" skip "$QUICK_SKIP"
        done
        return
    fi

    # docker run --rm busybox true, end to end: both daemons with --network none (the
    # bench's dockerd runs with --bridge=none, so its default network is none), and
    # coracle on its default bridge as a row of its own
    cli_row() { # KEY NOTE COMMAND...: the median ms of COMMAND over $RUNS runs
        local key=$1 note=$2; shift 2
        log "$side: $* x$RUNS..."
        times=()
        for _ in $(seq 1 "$RUNS"); do
            t0=$(now_ms)
            if ! "$@" >/dev/null 2>"$WORK/run.err"; then
                times=(); log "$side: $1 failed: $(cat "$WORK/run.err")"; break
            fi
            times+=($(( $(now_ms) - t0 )))
        done
        if [ ${#times[@]} -gt 0 ]; then record "$key" "$side" ok "$(median "${times[@]}")" "$note"
        else record "$key" "$side" skip "$1 failed: $(head -c 200 "$WORK/run.err" | tr '\t\n' '  ')"; fi
    }
    if [ -n "$no_ct" ]; then record run_cli "$side" skip "$no_ct"; record run_cli_bridge "$side" skip "$no_ct"
    else
        cli_row run_cli "" docker run --rm --network none busybox true
        if [ "$side" = coracle ]; then
            # the CLI's own floor: start-up and one request, against the fast daemon
            cli_row floor_cli "docker version against coracle" docker version
            record floor_cli other skip "a machine floor: see the coracle column"
            cli_row run_cli_bridge "" docker run --rm busybox true
        else record run_cli_bridge other skip "coracle only (the bench's dockerd has --bridge=none)"; fi
    fi

    # memory with 0, 10, 50 containers and /containers/json under load
    if [ -n "$no_ct" ]; then
        for f in rss_0 rss_10 rss_50 pss_0 pss_10 pss_50 rps_containers_1 rps_containers_16 stats_cpu_50; do record "$f" "$side" skip "$no_ct"; done
    else
        log "$side: engine memory with 0, 10, 50 sleep containers..."
        sleep 1
        mem_rows rss_0 pss_0
        if out=$("${LOAD[@]}" startn "$addr" busybox:latest 10 2>"$WORK/start.err") && sleep 2 && mem_rows rss_10 pss_10 \
            && out=$("${LOAD[@]}" startn "$addr" busybox:latest 40 2>"$WORK/start.err") && sleep 2 && mem_rows rss_50 pss_50; then
            log "$side: /containers/json req/s with 50 containers..."
            rps_rows rps_containers /containers/json
            stats_row
        else
            local why; why="starting sleep containers failed: $(tail -1 "$WORK/start.err" | head -c 200 | tr '\t' ' ')"
            log "$side: $why"
            for f in rss_10 rss_50 pss_10 pss_50 rps_containers_1 rps_containers_16 stats_cpu_50; do
                grep -q "^$f	$side	" "$RESULTS" || record "$f" "$side" skip "$why"
            done
        fi
        "${LOAD[@]}" cleanup "$addr" >/dev/null || true
    fi

    # attach throughput and docker logs of the same 100 MiB
    if [ -n "$no_ct" ] || [ "${sup[attach]}" != supported ]; then
        record attach "$side" skip "${no_ct:-$UNSUP}"
        record attach_nolog "$side" skip "${no_ct:-$UNSUP}"
        record logs "$side" skip "${no_ct:-attach $UNSUP (the log is made by the attach run)}"
    else
        log "$side: attach throughput, 100 MiB..."
        out=$("${LOAD[@]}" attach "$addr" busybox:latest 100 2>&1 || true)
        id=$(jget "$out" id 2>/dev/null || true)
        if [ -n "$(jget "$out" mib_s 2>/dev/null || true)" ]; then
            record attach "$side" ok "$(jget "$out" mib_s)" "stdcopy-framed, dd bs=1M count=100"
        else
            record attach "$side" skip "$(printf '%s' "$out" | tail -1 | head -c 200 | tr '\t' ' ')"
        fi
        out=$("${LOAD[@]}" attach "$addr" busybox:latest 100 none 2>&1 || true)
        if [ -n "$(jget "$out" mib_s 2>/dev/null || true)" ]; then
            record attach_nolog "$side" ok "$(jget "$out" mib_s)" "stdcopy-framed, dd bs=1M count=100, log driver none"
        else
            record attach_nolog "$side" skip "$(printf '%s' "$out" | tail -1 | head -c 200 | tr '\t' ' ')"
        fi
        if [ -z "$id" ]; then record logs "$side" skip "no container from the attach run"
        elif [ "${sup[logs]}" != supported ]; then record logs "$side" skip "$UNSUP"
        else
            log "$side: docker logs, 100 MiB..."
            t0=$(now_ms)
            if docker logs "$id" >/dev/null 2>&1; then
                record logs "$side" ok "$(awk -v a="$t0" -v b="$(now_ms)" 'BEGIN { printf "%.3f", (b-a)/1000 }')"
            else record logs "$side" skip "docker logs failed"; fi
        fi
        "${LOAD[@]}" cleanup "$addr" >/dev/null || true
    fi

    # docker load / save of 100 MiB
    if [ "$HAVE_DOCKER" = 0 ]; then
        record load "$side" skip "no docker CLI"; record save "$side" skip "no docker CLI"
    elif [ "${sup[load]}" != supported ]; then
        record load "$side" skip "$UNSUP"
        if [ "${sup[save]}" = supported ]; then record save "$side" skip "image load $UNSUP"; else record save "$side" skip "$UNSUP"; fi
    else
        log "$side: docker load / save, 100 MiB..."
        docker rmi -f bench-big:latest >/dev/null 2>&1 || true
        t0=$(now_ms)
        if docker load -i "$WORK/big.tar" >/dev/null 2>"$WORK/load.err"; then
            record load "$side" ok "$(awk -v a="$t0" -v b="$(now_ms)" 'BEGIN { printf "%.3f", (b-a)/1000 }')"
            if [ "${sup[save]}" != supported ]; then record save "$side" skip "$UNSUP"
            else
                t0=$(now_ms)
                if docker save -o "$WORK/saved.tar" bench-big:latest 2>"$WORK/save.err"; then
                    record save "$side" ok "$(awk -v a="$t0" -v b="$(now_ms)" 'BEGIN { printf "%.3f", (b-a)/1000 }')" "$(( $(wc -c < "$WORK/saved.tar") / 1048576 )) MiB written"
                else record save "$side" skip "docker save failed: $(head -c 200 "$WORK/save.err" | tr '\t\n' '  ')"; fi
                rm -f "$WORK/saved.tar"
            fi
            docker rmi -f bench-big:latest >/dev/null 2>&1 || true
        else
            record load "$side" skip "docker load failed: $(head -c 200 "$WORK/load.err" | tr '\t\n' '  ')"
            record save "$side" skip "no image (load failed)"
        fi
    fi
}

bench_daemon coracle "$CSOCK"
[ -z "$AGAINST" ] || bench_daemon other "$AGAINST"

T_END=$(date +%s)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
META=$(python3 -c 'import json,sys; a=sys.argv; print(json.dumps({"commit":a[1],"date":a[2],"quick":a[3]=="1","coracle":a[4],"other":a[5] or None,"other_addr":a[6] or None,"host":a[7],"kernel":a[8],"cpus":int(a[9]),"runs":int(a[10]),"secs":float(a[11]),"measure_seconds":int(a[12]),"loadavg_before":a[13],"loadavg_after":a[14]}))' \
    "$COMMIT" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$QUICK" "$CORACLE_NAME" "$OTHER_NAME" "$AGAINST" \
    "$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null || uname -s)" "$(uname -r)" "$(nproc)" "$RUNS" "$SECS" "$(( T_END - T_MEASURE ))" "$LOAD_BEFORE" "$LOAD_AFTER")

echo "coracle bench at $COMMIT, $(date -u +%Y-%m-%d), $(nproc) CPUs, kernel $(uname -r)$([ "$QUICK" = 1 ] && echo ', --quick')"
echo "medians of $RUNS; req/s over $SECS s each; memory in MiB (1024 KiB); load average $LOAD_BEFORE at start, $LOAD_AFTER at end"
if awk -v l="${LOAD_BEFORE%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    echo "warning: the machine was busy when the bench started (load ${LOAD_BEFORE%% *} on $(nproc) CPUs); timings and req/s are noisy"
fi
echo
"${LOAD[@]}" report "$RESULTS" "$JSON" "$META"
echo
echo "$BUDGET_MSG"
echo "results: $JSON (measured in $(( T_END - T_MEASURE )) s; $(( T_END - T_START )) s with the build)"
case "$BUDGET_MSG" in
    error:*) [ "$QUICK" = 1 ] && exit 1 ;;
esac
