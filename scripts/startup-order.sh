#!/bin/sh
# Regenerate scripts/startup-order.txt: the functions the daemon runs from exec to idle
# (start-up on a fresh data root with the default bridge, one GET /_ping, one second
# idle), in address order. build.rs hands the file to rust-lld (--symbol-ordering-file)
# for the musl release binary, which then places those functions first in .text,
# together. Why: the kernel maps an executable's pages 64 KiB at a time around each page
# fault (fault-around), so an idle daemon's RSS is the number of 64 KiB windows of .text
# that start-up touched, not the bytes it ran: start-up runs ~800 KiB of code, spread
# over nearly every window of the 2.9 MiB .text when the linker places it at random.
# See docs/BENCHMARKS.md, "Start-up: cold start and idle memory".
#
#   scripts/startup-order.sh        # needs valgrind (callgrind) and root (the bridge)
#
# Names that no longer exist are ignored by the linker, and functions new to start-up
# land wherever the linker puts them: the order degrades slowly as the code changes;
# re-run this when the idle RSS row of scripts/bench.sh grows. Only x86_64 musl names
# match (the symbol hashes differ per target).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
command -v valgrind >/dev/null 2>&1 || { echo "error: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
T=x86_64-unknown-linux-musl
W=$(mktemp -d /tmp/coracle-order.XXXXXX)
trap 'rm -rf "$W"' EXIT
# The release binary exactly as build-static.sh makes it (std from source, the same flags),
# with a map of where each function went: CORACLE_LINK_ARGS reaches only the final link,
# so std and the dependencies of the last release build are reused. Which functions run
# does not depend on where they are, so the current order file may stay in the link.
CORACLE_LINK_ARGS="-Map=$W/map --no-demangle" sh scripts/build-static.sh --target $T
cp "${CARGO_TARGET_DIR:-target}/$T/release/coracle" "$W/coracle"
echo '{}' > "$W/daemon.json"
valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$W/cg.out" \
    "$W/coracle" --data-root "$W/root" -H "unix://$W/s.sock" --config-file "$W/daemon.json" \
    --log-level warn > "$W/valgrind.log" 2>&1 &
vg=$!
i=0
until curl -s -m 5 --unix-socket "$W/s.sock" http://x/_ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 600 ] || { cat "$W/valgrind.log" >&2; kill $vg; exit 1; }
    sleep 0.05
done
sleep 1
callgrind_control -d $vg >/dev/null
sleep 0.5
kill -TERM $vg
wait $vg || true
python3 - "$W/map" "$W"/cg.out.1 > scripts/startup-order.txt <<'EOF'
import bisect, re, sys
# lld's map: symbol lines are "VMA LMA Size Align NAME"
syms = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 5 and re.match(r"^[0-9a-f]+$", f[0]) and not f[4].startswith((".", "<", "/", "*")):
        syms.append((int(f[0], 16), f[4]))
syms.sort()
starts = [a for a, _ in syms]
# callgrind --dump-instr: instruction addresses, absolute (0x..) or relative (+n/-n)
ran, cur = {}, 0
for line in open(sys.argv[2]):
    m = re.match(r"^(0x[0-9a-f]+|[+-]\d+)\s", line)
    if m:
        t = m.group(1)
        cur = int(t, 16) if t.startswith("0x") else cur + int(t)
        i = bisect.bisect_right(starts, cur) - 1
        if i >= 0:
            ran.setdefault(syms[i][1], syms[i][0])
names = sorted(ran, key=ran.get)
sys.stderr.write("%d functions ran (of %d symbols)\n" % (len(names), len(syms)))
print("\n".join(names))
EOF
echo "wrote scripts/startup-order.txt ($(wc -l < scripts/startup-order.txt) functions)"
