#!/bin/sh
# Build a statically linked release binary of coracle for one Rust target.
#
#   scripts/build-static.sh                      # host target (x86_64-unknown-linux-gnu here)
#   scripts/build-static.sh --target aarch64-unknown-linux-musl
#   scripts/build-static.sh --target armv7-unknown-linux-musleabihf
#
# What it does:
#   cargo build --release --target TRIPLE with
#   RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static"
#   (a classic static executable: no loader, no relocations to process at start-up, what
#   file(1) calls "statically linked"; the price is no ASLR for the daemon's own image)
#   (the release profile in Cargo.toml already sets opt-level z, lto, codegen-units 1,
#   panic abort, strip), then prints the binary's path and size and runs file(1) on it.
#   The target is always passed explicitly so RUSTFLAGS only reach the target code, not
#   build scripts or proc macros that run on the build host.
#
# Cross builds need (1) the Rust standard library for the target and (2) a linker for it:
#   rustup target add TRIPLE
#   aarch64-unknown-linux-gnu     apt-get install gcc-aarch64-linux-gnu
#                                 CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
#   aarch64-unknown-linux-musl    rust-lld works: CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
#                                 (or aarch64-linux-gnu-gcc as above)
#   armv7-unknown-linux-musleabihf / armv7-unknown-linux-gnueabihf
#                                 apt-get install gcc-arm-linux-gnueabihf
#                                 CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER=arm-linux-gnueabihf-gcc
#   x86_64-unknown-linux-musl     the host cc links it; nothing extra
# The script stops with a non-zero exit and says which of these is missing; it never
# downloads anything itself.
#
# Exit codes: 0 built, 1 build failed, 2 usage, 3 target not installed, 4 linker missing.
set -eu

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'
}

# Sets $var (cargo's linker variable), $linker and $pkg (Debian package) for a triple.
linker_for() {
    var=CARGO_TARGET_$(echo "$1" | tr 'a-z.-' 'A-Z__')_LINKER
    case "$1" in
        aarch64-*-linux-gnu) linker=aarch64-linux-gnu-gcc; pkg=gcc-aarch64-linux-gnu ;;
        aarch64-*-linux-musl) linker=aarch64-linux-gnu-gcc; pkg="gcc-aarch64-linux-gnu (or set $var=rust-lld)" ;;
        arm*-linux-*eabihf) linker=arm-linux-gnueabihf-gcc; pkg="gcc-arm-linux-gnueabihf (or set $var=rust-lld for musl)" ;;
        *) linker=""; pkg="" ;;
    esac
}

TARGET=""
while [ $# -gt 0 ]; do
    case "$1" in
        --target) [ $# -ge 2 ] || { echo "error: --target needs a value" >&2; exit 2; }
                  TARGET=$2; shift 2 ;;
        --target=*) TARGET=${1#--target=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found in PATH" >&2; exit 1; }
HOST=$(rustc -vV | sed -n 's/^host: //p')
[ -n "$TARGET" ] || TARGET=$HOST

# (1) Is the standard library for the target installed?
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx "$TARGET"; then
        echo "error: Rust target $TARGET is not installed in this toolchain." >&2
        echo "       installed: $(rustup target list --installed | tr '\n' ' ')" >&2
        echo "       add it with: rustup target add $TARGET" >&2
        linker_for "$TARGET"
        if [ -n "$linker" ]; then
            echo "       then a linker for it: $linker (Debian: apt-get install $pkg)" >&2
            echo "       and export $var=$linker" >&2
        fi
        exit 3
    fi
elif [ ! -d "$(rustc --print target-libdir --target "$TARGET" 2>/dev/null)" ]; then
    echo "error: no standard library for $TARGET (no rustup; install it with your Rust distribution)" >&2
    exit 3
fi

# (2) Is there a linker for it? Cargo reads CARGO_TARGET_<TRIPLE>_LINKER.
if [ "$TARGET" != "$HOST" ]; then
    linker_for "$TARGET"
    eval "set_linker=\${$var:-}"
    if [ -z "$set_linker" ]; then
        if [ -n "$linker" ]; then
            if ! command -v "$linker" >/dev/null 2>&1; then
                echo "error: no linker for $TARGET: $linker is not in PATH." >&2
                echo "       install it (Debian: apt-get install $pkg)," >&2
                echo "       or point cargo at one: export $var=/path/to/linker" >&2
                exit 4
            fi
            export "$var=$linker"
        fi
    fi
fi

RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static -C relocation-model=static"
export RUSTFLAGS
echo "building coracle for $TARGET (RUSTFLAGS=$RUSTFLAGS)"
cargo build --release --target "$TARGET" || exit 1

bin="target/$TARGET/release/coracle"
[ -f "$bin" ] || { echo "error: build succeeded but $bin is missing" >&2; exit 1; }
size=$(wc -c < "$bin" | tr -d ' ')
echo "binary: $here/$bin"
echo "size: $size bytes ($(( (size + 1023) / 1024 )) KiB)"
if command -v file >/dev/null 2>&1; then
    desc=$(file -b "$bin")
    echo "file: $desc"
    case "$desc" in
        *"dynamically linked"*|*interpreter*)
            echo "error: $bin is dynamically linked" >&2; exit 1 ;;
        *"static-pie linked"*)
            echo "linkage: statically linked (static-pie: no dynamic loader, no shared libraries; position independent, so ASLR still works)" ;;
        *"statically linked"*)
            echo "linkage: statically linked" ;;
        *) echo "error: cannot tell from file(1) whether $bin is statically linked" >&2; exit 1 ;;
    esac
else
    echo "file: not installed, linkage not verified (apt-get install file)"
fi
