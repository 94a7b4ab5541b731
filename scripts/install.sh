#!/bin/sh
# Install coracle into a device root filesystem tree: a Buildroot/Yocto rootfs overlay,
# or an SD-card image mounted on the build host. POSIX sh; runs under busybox sh.
#
#   scripts/install.sh --rootfs DIR --board NAME [--binary PATH]
#                      [--init systemd|sysvinit|openrc|all|none] [--enable] [--force]
#
#   --rootfs DIR   root of the device tree; must exist
#   --board NAME   a profile under board/ (generic-x86_64, raspberrypi-arm64, armv7-musl)
#   --binary PATH  the coracle binary; default target/<board TARGET>/release/coracle
#                  (as built by scripts/build-static.sh --target <board TARGET>)
#   --init KIND    init files to install (default all = systemd + sysvinit):
#                    systemd   etc/systemd/system/coracle.service and coracle.socket
#                    sysvinit  etc/init.d/coracle (busybox-compatible) + etc/default/coracle
#                    openrc    etc/init.d/coracle (openrc-run) + etc/conf.d/coracle
#                  sysvinit and OpenRC both own etc/init.d/coracle, so openrc is only
#                  installed when asked for by name, and never together with sysvinit.
#   --enable       also start it at boot: systemd multi-user.target.wants symlink,
#                  busybox rcS symlink etc/init.d/S95coracle, OpenRC runlevels/default
#   --force        overwrite an existing etc/coracle/daemon.json (and etc/default,
#                  etc/conf.d settings); without it they are kept
#
# Installs: usr/bin/coracle (0755), etc/coracle/daemon.json (0644), the init files.
# Exit codes: 0 ok, 2 usage or bad argument (unknown board, missing rootfs or binary).
set -eu

die() { echo "install.sh: error: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'; }

ROOTFS="" BOARD="" BINARY="" INIT=all FORCE=0 ENABLE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --rootfs|--board|--binary|--init)
            [ $# -ge 2 ] || die "$1 needs a value"
            case "$1" in
                --rootfs) ROOTFS=$2 ;;
                --board) BOARD=$2 ;;
                --binary) BINARY=$2 ;;
                --init) INIT=$2 ;;
            esac
            shift 2 ;;
        --rootfs=*) ROOTFS=${1#*=}; shift ;;
        --board=*) BOARD=${1#*=}; shift ;;
        --binary=*) BINARY=${1#*=}; shift ;;
        --init=*) INIT=${1#*=}; shift ;;
        --force) FORCE=1; shift ;;
        --enable) ENABLE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
boards=$(cd "$repo/board" && for d in */; do [ -f "$d/daemon.json" ] && printf '%s ' "${d%/}"; done | sed 's/ $//')

[ -n "$BOARD" ] || die "--board is required (one of: $boards)"
[ -n "$ROOTFS" ] || die "--rootfs is required"
case "$BOARD" in */*|.*) die "unknown board '$BOARD' (one of: $boards)" ;; esac
bdir="$repo/board/$BOARD"
[ -f "$bdir/daemon.json" ] || die "unknown board '$BOARD' (one of: $boards)"
[ -d "$ROOTFS" ] || die "rootfs directory '$ROOTFS' does not exist (create it, or mount the image first)"
ROOTFS=$(cd "$ROOTFS" && pwd)

case "$INIT" in
    systemd|sysvinit|openrc|none) kinds=$INIT ;;
    all) kinds="systemd sysvinit" ;;
    *) die "unknown --init '$INIT' (systemd, sysvinit, openrc, all or none)" ;;
esac

TARGET=""
# shellcheck disable=SC1091
[ -f "$bdir/board.conf" ] && . "$bdir/board.conf"
if [ -z "$BINARY" ]; then
    BINARY="$repo/target/$TARGET/release/coracle"
    [ -f "$BINARY" ] || die "no binary at $BINARY; build it with: scripts/build-static.sh --target $TARGET (or pass --binary PATH)"
fi
[ -f "$BINARY" ] || die "binary '$BINARY' does not exist"

# put SRC DEST MODE: copy SRC to ROOTFS/DEST with MODE, creating directories.
put() {
    mkdir -p "$ROOTFS/$(dirname "$2")"
    rm -f "$ROOTFS/$2.tmp-install"
    cp "$1" "$ROOTFS/$2.tmp-install"
    chmod "$3" "$ROOTFS/$2.tmp-install"
    mv -f "$ROOTFS/$2.tmp-install" "$ROOTFS/$2"
    echo "installed /$2 (mode $3)"
}

# put_config SRC DEST: like put with 0644, but keeps an existing file unless --force.
put_config() {
    if [ -e "$ROOTFS/$2" ] && [ "$FORCE" -eq 0 ]; then
        echo "kept existing /$2 (use --force to overwrite it with the $BOARD default)"
    else
        put "$1" "$2" 0644
    fi
}

# link TARGET LINK: symlink inside the tree; TARGET is as the device sees it.
link() {
    mkdir -p "$ROOTFS/$(dirname "$2")"
    ln -sf "$1" "$ROOTFS/$2"
    echo "enabled: /$2 -> $1"
}

echo "installing coracle for board $BOARD into $ROOTFS (init: $kinds)"
put "$BINARY" usr/bin/coracle 0755
put_config "$bdir/daemon.json" etc/coracle/daemon.json

for kind in $kinds; do
    case "$kind" in
        systemd)
            put "$bdir/systemd/coracle.service" etc/systemd/system/coracle.service 0644
            put "$bdir/systemd/coracle.socket" etc/systemd/system/coracle.socket 0644
            if [ "$ENABLE" -eq 1 ]; then
                link /etc/systemd/system/coracle.service etc/systemd/system/multi-user.target.wants/coracle.service
            fi ;;
        sysvinit)
            put "$bdir/sysvinit/coracle" etc/init.d/coracle 0755
            put_config "$bdir/sysvinit/coracle.default" etc/default/coracle
            if [ "$ENABLE" -eq 1 ]; then
                link coracle etc/init.d/S95coracle
            fi ;;
        openrc)
            put "$bdir/openrc/coracle" etc/init.d/coracle 0755
            put_config "$bdir/openrc/coracle.confd" etc/conf.d/coracle
            if [ "$ENABLE" -eq 1 ]; then
                link /etc/init.d/coracle etc/runlevels/default/coracle
            fi ;;
        none) ;;
    esac
done
echo "done; check the device kernel with: /usr/bin/coracle check-config"
