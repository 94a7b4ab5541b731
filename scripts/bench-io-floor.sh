#!/usr/bin/env bash
# The machine's floors for the data-path rows of scripts/bench.sh (load, save, attach):
# what the same bytes cost with the plainest tools, on this machine, right now.
#
#   scripts/bench-io-floor.sh [--breakdown] ARCHIVE.tar DIR
#
# ARCHIVE.tar is the bench's 100 MiB image (scripts/make-busybox-image.sh --extra-random-mib
# 100); DIR is a scratch directory on the filesystem of the daemon's data root (it is emptied
# and removed). Prints one line per floor, tab-separated: KEY VALUE NOTE, where
#   floor_load    seconds: sha256sum of the archive, then tar -x of it into DIR and syncfs
#                 (a load must at least hash the layer once and write it durably)
#   floor_save    seconds: sha256sum of the extracted files, then tar -c of them to a file
#                 (a save must at least read the layer, verify its digest and write the tar)
#   floor_attach  MiB/s: dd if=/dev/zero bs=1M count=100 | cat > /dev/null (a pipe and one copy)
#   floor_attach_log  MiB/s of container output: dd of 600 MiB into a file in DIR, the size of
#                 the json-file log of 100 MiB of zero bytes (each written as `\u0000`, as
#                 dockerd writes it too); once, not synced (neither daemon syncs its logs)
# Each of the first three is the best of 3, after one warm-up read of the archive (page cache
# warm, as for the daemons). With --breakdown, the load floor's parts follow, each best of 3
# (seconds): floor_load_sha (sha256sum of the archive), floor_load_tar (tar -x alone, not
# synced), floor_load_sync (the syncfs after that tar -x, alone: the disk writing 100 MiB
# and whatever else is dirty on the filesystem), floor_load_write_sync (dd of the archive's
# size into one file, then syncfs), floor_load_skel (gzip -1 of the layers' tar-split
# skeletons: the tar with regular files' payloads cut out) and floor_load_read (cat of the
# archive: the page-cache read). Needs coreutils, tar and python3 (for syncfs). Exit codes: 0, 1 failure, 2 usage.
set -euo pipefail

BREAKDOWN=0
if [ "${1:-}" = --breakdown ]; then BREAKDOWN=1; shift; fi
[ $# -eq 2 ] || { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; exit 2; }
ARCHIVE=$1 DIR=$2
[ -f "$ARCHIVE" ] || { echo "error: no archive $ARCHIVE" >&2; exit 1; }

now_ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
best() { printf '%s\n' "$@" | sort -g | head -1; }
best_high() { printf '%s\n' "$@" | sort -g | tail -1; }
syncfs() { python3 -c 'import ctypes, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0: sys.exit("syncfs failed")' "$1"; }

rm -rf "$DIR"
mkdir -p "$DIR"
trap 'rm -rf "$DIR"' EXIT
cat "$ARCHIVE" > /dev/null
syncfs "$DIR"

loads=() saves=() pipes=()
for _ in 1 2 3; do
    rm -rf "$DIR/x" "$DIR/out.tar"
    mkdir "$DIR/x"
    syncfs "$DIR"
    t0=$(now_ns)
    sha256sum "$ARCHIVE" > /dev/null
    tar -xf "$ARCHIVE" -C "$DIR/x"
    syncfs "$DIR"
    t1=$(now_ns)
    loads+=("$(secs "$t0" "$t1")")

    t0=$(now_ns)
    find "$DIR/x" -type f -exec cat {} + | sha256sum > /dev/null
    tar -cf "$DIR/out.tar" -C "$DIR/x" .
    t1=$(now_ns)
    saves+=("$(secs "$t0" "$t1")")

    t0=$(now_ns)
    dd if=/dev/zero bs=1M count=100 status=none | cat > /dev/null
    t1=$(now_ns)
    pipes+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", 100 / ((b - a) / 1e9) }')")
done

t0=$(now_ns)
dd if=/dev/zero of="$DIR/log" bs=384K count=1600 status=none
t1=$(now_ns)
rm -f "$DIR/log"
logw=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", 100 / ((b - a) / 1e9) }')

if [ "$BREAKDOWN" = 1 ]; then
    shas=() tars=() syncs=() wsyncs=() skels=() reads=()
    size_kib=$(( $(stat -c %s "$ARCHIVE") / 1024 ))
    for _ in 1 2 3; do
        rm -rf "$DIR/x" "$DIR/w"
        mkdir "$DIR/x"
        syncfs "$DIR"
        t0=$(now_ns); cat "$ARCHIVE" > /dev/null; t1=$(now_ns); reads+=("$(secs "$t0" "$t1")")
        t0=$(now_ns); sha256sum "$ARCHIVE" > /dev/null; t1=$(now_ns); shas+=("$(secs "$t0" "$t1")")
        t0=$(now_ns); tar -xf "$ARCHIVE" -C "$DIR/x"; t1=$(now_ns); tars+=("$(secs "$t0" "$t1")")
        t0=$(now_ns); syncfs "$DIR"; t1=$(now_ns); syncs+=("$(secs "$t0" "$t1")")
        t0=$(now_ns)
        dd if=/dev/zero of="$DIR/w" bs=1024K count=$(( size_kib / 1024 )) status=none
        syncfs "$DIR"
        t1=$(now_ns); wsyncs+=("$(secs "$t0" "$t1")")
        rm -f "$DIR/w"
        skels+=("$(python3 - "$DIR/x" <<'PY'
import gzip, io, os, sys, tarfile, time
# The layers of a docker-save archive extracted above: <id>/layer.tar (or blobs/).
layers = [os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs
          if f == "layer.tar" or "/blobs/" in os.path.join(d, f)]
skel = io.BytesIO()
for path in layers:
    with open(path, "rb") as f:
        data = f.read()
    try:
        tf = tarfile.open(fileobj=io.BytesIO(data))
        members = tf.getmembers()
    except tarfile.TarError:
        continue
    pos = 0
    for m in members:
        # Everything up to this member's payload (headers, padding), not the payload.
        skel.write(data[pos:m.offset_data])
        pos = m.offset_data + (m.size if m.isreg() else 0)
    skel.write(data[pos:])
raw = skel.getvalue()
t0 = time.monotonic()
gzip.compress(raw, compresslevel=1)
print("%.3f" % (time.monotonic() - t0))
PY
)")
    done
    rm -rf "$DIR/x"
fi

printf 'floor_load\t%s\t%s\n' "$(best "${loads[@]}")" "sha256sum + tar -x + syncfs of the archive, best of 3"
printf 'floor_save\t%s\t%s\n' "$(best "${saves[@]}")" "sha256sum + tar -c of the extracted files, best of 3"
printf 'floor_attach\t%s\t%s\n' "$(best_high "${pipes[@]}")" "dd bs=1M count=100 | cat, best of 3"
printf 'floor_attach_log\t%s\t%s\n' "$logw" "100 MiB / time to write 600 MiB with dd bs=384K"
if [ "$BREAKDOWN" = 1 ]; then
    printf 'floor_load_read\t%s\t%s\n' "$(best "${reads[@]}")" "cat of the archive (page cache), best of 3"
    printf 'floor_load_sha\t%s\t%s\n' "$(best "${shas[@]}")" "sha256sum of the archive alone, best of 3"
    printf 'floor_load_tar\t%s\t%s\n' "$(best "${tars[@]}")" "tar -x of the archive alone, not synced, best of 3"
    printf 'floor_load_sync\t%s\t%s\n' "$(best "${syncs[@]}")" "syncfs right after that tar -x, alone, best of 3"
    printf 'floor_load_write_sync\t%s\t%s\n' "$(best "${wsyncs[@]}")" "dd of the archive's size into one file + syncfs, best of 3"
    printf 'floor_load_skel\t%s\t%s\n' "$(best "${skels[@]}")" "gzip -1 of the layers' tar-split skeletons (python zlib), best of 3"
fi
