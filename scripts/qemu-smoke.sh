#!/usr/bin/env bash
# Smoke-test a cross-built coracle under qemu-user, the way a board would run it.
#
#   scripts/qemu-smoke.sh --target aarch64-unknown-linux-musl --busybox PATH [--bin PATH]
#
#   --target TRIPLE  aarch64-* (qemu-aarch64-static, board raspberrypi-arm64, Arch arm64) or
#                    armv7-* (qemu-arm-static, board armv7-musl, Arch arm)
#   --busybox PATH   a static busybox for that CPU (Debian's busybox-static:arm64 / :armhf);
#                    the test image is made from it with scripts/make-busybox-image.sh
#   --bin PATH       the coracle binary (default target/TRIPLE/release/coracle)
#
# Two runs, each with the docker CLI as the client:
#   1. direct: qemu-<arch>-static runs the daemon on a temporary data root and socket;
#      `docker version` must say the target's Arch, `docker load` the busybox image, and
#      `docker run --rm busybox echo ok` print ok.
#   2. installed: scripts/install.sh --rootfs DIR --board BOARD installs the binary into a
#      device tree that holds only busybox; `chroot DIR /usr/bin/coracle --version` and
#      `check-config` run, then the daemon runs from that tree with chroot and the board's
#      own /etc/coracle/daemon.json, and the same version / load / run checks pass.
# Nothing in the tree is qemu: exec of a foreign binary (the daemon in the chroot, busybox in
# a container's rootfs) works only because binfmt_misc's qemu entry has the F (fix-binary)
# flag, which the script checks first. Each daemon runs in its own mount namespace
# (unshare -m), so whatever it mounted goes away with it.
#
# Needs root, qemu-user-static with binfmt_misc entries (update-binfmts --enable
# qemu-aarch64), the docker CLI, python3, unshare and chroot. Exit codes: 0 passed,
# 1 failed, 2 usage.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }
TARGET="" BUSYBOX="" BIN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --target|--busybox|--bin)
            [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; exit 2; }
            case "$1" in --target) TARGET=$2 ;; --busybox) BUSYBOX=$2 ;; --bin) BIN=$2 ;; esac
            shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$TARGET" ] && [ -n "$BUSYBOX" ] || { usage >&2; exit 2; }
case "$TARGET" in
    aarch64-*) QEMU=qemu-aarch64-static BINFMT=qemu-aarch64 BOARD=raspberrypi-arm64 ARCH=arm64 ;;
    armv7-*|arm-*) QEMU=qemu-arm-static BINFMT=qemu-arm BOARD=armv7-musl ARCH=arm ;;
    *) echo "error: no qemu smoke test for $TARGET" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
[ -n "$BIN" ] || BIN=target/$TARGET/release/coracle
BIN=$(realpath "$BIN")
BUSYBOX=$(realpath "$BUSYBOX")

fail() { echo "qemu-smoke: FAIL: $*" >&2; exit 1; }
step() { echo "qemu-smoke: $*"; }
command -v "$QEMU" >/dev/null || fail "$QEMU not found (apt-get install qemu-user-static)"
command -v docker >/dev/null || fail "no docker CLI"
[ -f "$BIN" ] || fail "no binary at $BIN (scripts/build-static.sh --target $TARGET)"
entry=/proc/sys/fs/binfmt_misc/$BINFMT
[ -r "$entry" ] || fail "binfmt_misc has no $BINFMT entry (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable $BINFMT)"
grep -qx enabled "$entry" || fail "binfmt_misc entry $BINFMT is disabled"
grep -q '^flags:.*F' "$entry" || fail "binfmt_misc entry $BINFMT lacks the F flag: exec inside a chroot or container rootfs cannot find $QEMU"
step "$(file -b "$BIN" | cut -d, -f1-2,4); binfmt $BINFMT: $(sed -n 's/^flags: //p' "$entry")"

WORK=$(mktemp -d /tmp/coracle-qemu.XXXXXX)
DPID=""
export DOCKER_CONFIG=$WORK/docker-config
stop_daemon() {
    [ -n "$DPID" ] || return 0
    kill -TERM "$DPID" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
    DPID=""
}
cleanup() {
    local rc=$?
    stop_daemon
    # The daemons ran in their own mount namespaces; nothing should be mounted here.
    awk -v w="$WORK" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BUSYBOX="$BUSYBOX" scripts/make-busybox-image.sh "$WORK/busybox.tar" >/dev/null
img_arch=$(tar -xOf "$WORK/busybox.tar" manifest.json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Config"])' \
    | xargs -I{} tar -xOf "$WORK/busybox.tar" {} | python3 -c 'import json,sys; print(json.load(sys.stdin)["architecture"])')
[ "$img_arch" = "$ARCH" ] || fail "the busybox image is $img_arch, not $ARCH: is $BUSYBOX a $ARCH busybox?"

# wait_up SOCKET LOG: until the daemon answers, at most 60 s (qemu starts slowly).
wait_up() {
    for _ in $(seq 1 600); do
        [ -S "$1" ] && DOCKER_HOST=unix://$1 timeout 10 docker version >/dev/null 2>&1 && return 0
        kill -0 "$DPID" 2>/dev/null || { cat "$2" >&2; fail "the daemon exited"; }
        sleep 0.1
    done
    cat "$2" >&2
    fail "the daemon did not answer on $1 within 60 s"
}

# checks SOCKET LOG LABEL: version says $ARCH, load the image, run echo ok.
checks() {
    export DOCKER_HOST=unix://$1
    local arch os out
    arch=$(timeout 60 docker version --format '{{.Server.Arch}}') || { cat "$2" >&2; fail "$3: docker version"; }
    os=$(timeout 60 docker version --format '{{.Server.Os}}/{{.Server.KernelVersion}}')
    [ "$arch" = "$ARCH" ] || fail "$3: docker version says Arch $arch, want $ARCH"
    step "$3: docker version: Arch $arch ($os)"
    out=$(timeout 120 docker load -i "$WORK/busybox.tar" 2>&1) || { cat "$2" >&2; fail "$3: docker load: $out"; }
    step "$3: docker load: $out"
    out=$(timeout 120 docker run --rm busybox echo ok 2>&1) || { tail -20 "$2" >&2; fail "$3: docker run --rm busybox echo ok: $out"; }
    [ "$out" = ok ] || fail "$3: docker run --rm busybox echo ok printed '$out'"
    out=$(timeout 120 docker run --rm busybox uname -m 2>&1) || fail "$3: docker run --rm busybox uname -m: $out"
    step "$3: docker run --rm busybox echo ok: ok (uname -m in the container: $out)"
    [ -z "$(timeout 60 docker ps -aq)" ] || fail "$3: --rm left a container behind"
    unset DOCKER_HOST
}

# 1. direct
step "direct: $QEMU $BIN"
unshare -m --propagation private "$QEMU" "$BIN" --data-root "$WORK/data" -H "unix://$WORK/direct.sock" \
    --pidfile "$WORK/direct.pid" --log-level info > "$WORK/direct.log" 2>&1 &
DPID=$!
wait_up "$WORK/direct.sock" "$WORK/direct.log"
checks "$WORK/direct.sock" "$WORK/direct.log" direct
stop_daemon
[ ! -e "$WORK/direct.sock" ] || fail "direct: the socket was left behind after SIGTERM"
step "direct: stopped cleanly on SIGTERM"

# 2. installed into a device tree, run with chroot
root=$WORK/rootfs
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/var/run" "$root/var/lib"
cp "$BUSYBOX" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
sh scripts/install.sh --rootfs "$root" --board "$BOARD" --binary "$BIN" --init sysvinit --enable | sed 's/^/qemu-smoke: install: /'
[ "$(sha256sum < "$root/usr/bin/coracle")" = "$(sha256sum < "$BIN")" ] || fail "install.sh did not install $BIN"
v=$(chroot "$root" /usr/bin/coracle --version) || fail "chroot $root /usr/bin/coracle --version"
step "installed: chroot /usr/bin/coracle --version: $v"
chroot "$root" /usr/bin/coracle check-config > "$WORK/check-config.txt" 2>&1 || true
grep -q . "$WORK/check-config.txt" || fail "installed: check-config printed nothing"
step "installed: check-config ran ($(wc -l < "$WORK/check-config.txt") lines)"
# The board's daemon.json: socket /var/run/docker.sock, data root /var/lib/coracle, pidfile.
# On a board / is a mount point; a bare chroot's is not, and the launcher's "make / rslave"
# and pivot_root need one. So the tree is bind-mounted onto itself first.
unshare -m --propagation private sh -c '
    set -e
    mount --bind "$1" "$1"
    mount -t proc proc "$1/proc"
    mount --rbind /sys "$1/sys"
    mount --rbind /dev "$1/dev"
    mount -t tmpfs tmpfs "$1/tmp"
    exec chroot "$1" /usr/bin/coracle --config-file /etc/coracle/daemon.json' sh "$root" > "$WORK/chroot.log" 2>&1 &
DPID=$!
wait_up "$root/var/run/docker.sock" "$WORK/chroot.log"
checks "$root/var/run/docker.sock" "$WORK/chroot.log" installed
stop_daemon
[ ! -e "$root/var/run/coracle.pid" ] || fail "installed: the pidfile was left behind after SIGTERM"
step "installed: stopped cleanly on SIGTERM"
step "PASS $TARGET"
