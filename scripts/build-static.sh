#!/bin/sh
# Build statically linked release binaries of coracle. musl is the default: it is what
# gets flashed (a static glibc cannot do NSS or getaddrinfo safely, and is larger).
#
#   scripts/build-static.sh                  # musl for this machine's CPU (x86_64-unknown-linux-musl here)
#   scripts/build-static.sh --gnu            # glibc for this machine's CPU
#   scripts/build-static.sh --target aarch64-unknown-linux-musl
#   scripts/build-static.sh --all            # every target below that can be built here
#   scripts/build-static.sh --dry-run [...]  # say how it would build (toolchain, std, flags); build nothing
#   CORACLE_PREBUILT_STD=1 scripts/build-static.sh   # the old pipeline (prebuilt std), to compare
#   CORACLE_LINK_ARGS="-Map=F" scripts/build-static.sh  # extra arguments for the final link only
#
# Targets: x86_64-unknown-linux-musl, aarch64-unknown-linux-musl,
#          armv7-unknown-linux-musleabihf, and the -gnu / -gnueabihf variants.
#
# What it does, per target:
#   1. the Rust standard library: when `rustup target list --installed` lacks the target,
#      `rustup target add TRIPLE` (the only download it ever makes);
#   2. the linker: musl targets link with the toolchain's own rust-lld and musl's
#      self-contained start files (no C cross compiler needed); the host's gnu target with
#      cc; a cross gnu target with Debian's cross gcc (aarch64-linux-gnu-gcc from
#      gcc-aarch64-linux-gnu, arm-linux-gnueabihf-gcc from gcc-arm-linux-gnueabihf),
#      which the script does not install. CARGO_TARGET_<TRIPLE>_LINKER, when set, wins;
#   3. the standard library from source, sized for size (the shipped pipeline, see
#      docs/RELEASING.md): with the toolchain's `rust-src` component (rustup component add
#      rust-src when missing), cargo builds std itself for the target
#      (-Z build-std=std,panic_abort, std's optimize_for_size feature) with the release
#      profile's opt-level, LTO and the flags below, instead of linking rustup's prebuilt,
#      speed-optimised std. These are unstable cargo/rustc options: RUSTC_BOOTSTRAP=1 is set
#      for that one cargo call only, so the stable toolchain that builds and tests
#      everything else builds the release too (how the Linux kernel builds its Rust).
#      When rust-src is missing and cannot be added, it says so loudly and builds with the
#      prebuilt std as before (about 600 KiB larger: scripts/size-budget then fails);
#   4. cargo build --release --target TRIPLE with
#      RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" plus, with std
#      from source, $SIZE_FLAGS below (a classic static executable: no loader, no start-up
#      relocations, what file(1) calls "statically linked"; the price is no ASLR for the
#      daemon's own image). The release profile in Cargo.toml sets opt-level z, lto,
#      codegen-units 1, panic abort, strip. The target is always explicit so RUSTFLAGS only
#      reach target code (and the std built for it), never build scripts or proc macros;
#   5. prints the binary's path, its size and file(1)'s description, and fails when the
#      binary is dynamically linked.
# --all goes on past a target it cannot build and ends with a table: each target's size,
# or why it was not built.
#
# Exit codes: 0 built (--all: every target that could be set up built), 1 build failed,
# 2 usage, 3 Rust target not installed and not installable, 4 linker missing.
set -eu

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'
}

ALL_TARGETS="x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf
x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf"

TARGET="" GNU=0 ALL=0 DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --target) [ $# -ge 2 ] || { echo "error: --target needs a value" >&2; exit 2; }
                  TARGET=$2; shift 2 ;;
        --target=*) TARGET=${1#--target=}; shift ;;
        --gnu) GNU=1; shift ;;
        --all) ALL=1; shift ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ "$ALL" = 1 ] && { [ -n "$TARGET" ] || [ "$GNU" = 1 ]; }; then
    echo "error: --all builds every target; it takes no --target or --gnu" >&2; exit 2
fi
[ -z "$TARGET" ] || [ "$GNU" = 0 ] || { echo "error: give --target or --gnu, not both" >&2; exit 2; }

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found in PATH" >&2; exit 1; }
HOST=$(rustc -vV | sed -n 's/^host: //p')
HOST_ARCH=${HOST%%-*}
if [ -z "$TARGET" ]; then
    if [ "$GNU" = 1 ]; then TARGET=$HOST
    else
        case "$HOST_ARCH" in
            arm*) TARGET=armv7-unknown-linux-musleabihf ;;
            *) TARGET=$HOST_ARCH-unknown-linux-musl ;;
        esac
    fi
fi
RUST_LLD="$(rustc --print sysroot)/lib/rustlib/$HOST/bin/rust-lld"

# Sets $why and returns non-zero when the standard library for $1 is missing and
# rustup cannot add it.
ensure_target() {
    why=""
    [ -d "$(rustc --print target-libdir --target "$1" 2>/dev/null)" ] && return 0
    if command -v rustup >/dev/null 2>&1; then
        echo "Rust target $1 is not installed; rustup target add $1"
        if out=$(rustup target add "$1" 2>&1); then
            printf '%s\n' "$out"
            return 0
        fi
        printf '%s\n' "$out" >&2
        why="rustup target add $1 failed: $(printf '%s\n' "$out" | grep -E '^error|status code' | sed -e 's/^ *[0-9]*: *//' | head -2 | paste -sd' ')"
        return 1
    fi
    why="no standard library for $1 and no rustup to add it (install it with your Rust distribution)"
    return 1
}

# The flags that shrink the binary once std is built from source (docs/RELEASING.md, "What
# the flags do"). Each is unstable, hence RUSTC_BOOTSTRAP=1 on the cargo call:
#   -Cpanic=immediate-abort   a panic traps at once (SIGILL on x86_64): no message, no hook, no
#                             formatting machinery (-Zunstable-options makes it accepted)
#   -Zlocation-detail=none    panic locations (file, line, column) are not recorded:
#                             with immediate-abort nothing prints them anyway
SIZE_FLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none"

# Sets STD_SRC=1 when the toolchain has (or rustup can add) rust-src, the source cargo
# builds std from; otherwise STD_SRC=0 and a warning that the binary will be larger.
# CORACLE_PREBUILT_STD=1 asks for the prebuilt std.
STD_SRC=""
ensure_rust_src() {
    [ -z "$STD_SRC" ] || return 0
    STD_SRC=0
    if [ "${CORACLE_PREBUILT_STD:-0}" = 1 ]; then
        echo "std: prebuilt (CORACLE_PREBUILT_STD=1)"; return 0
    fi
    src="$(rustc --print sysroot)/lib/rustlib/src/rust/library"
    if [ ! -f "$src/std/Cargo.toml" ] && command -v rustup >/dev/null 2>&1; then
        echo "the toolchain has no rust-src; rustup component add rust-src"
        out=$(rustup component add rust-src 2>&1) || printf '%s\n' "$out" | grep -m1 '^error' >&2 || true
    fi
    if [ -f "$src/std/Cargo.toml" ]; then
        STD_SRC=1
        echo "std: from source ($src)"
        return 0
    fi
    cat >&2 <<EOW

WARNING: $(rustc -V) has no rust-src component ($src missing) and rustup could not add it.
WARNING: Building with the PREBUILT standard library instead: no -Z build-std, no
WARNING: optimize_for_size, no immediate-abort panics. The binary works but is about
WARNING: 600 KiB larger than the release pipeline's, and scripts/size-budget will fail.
WARNING: Fix: rustup component add rust-src (or a toolchain that ships it).

EOW
}

# Exports cargo's linker variable for $1 when it needs one; sets $why and returns
# non-zero when that linker is missing.
ensure_linker() {
    why=""
    var=CARGO_TARGET_$(echo "$1" | tr 'a-z.-' 'A-Z__')_LINKER
    eval "set_linker=\${$var:-}"
    if [ -n "$set_linker" ]; then
        echo "linker: $set_linker (from $var)"
        return 0
    fi
    case "$1" in
        *-musl*)
            linker=$RUST_LLD pkg="the rust-lld component of the Rust toolchain (rustup component add llvm-tools, or a newer toolchain)" ;;
        "$HOST") echo "linker: the host's cc"; return 0 ;;
        aarch64-*-linux-gnu) linker=aarch64-linux-gnu-gcc pkg="Debian: apt-get install gcc-aarch64-linux-gnu" ;;
        arm*-linux-gnueabihf) linker=arm-linux-gnueabihf-gcc pkg="Debian: apt-get install gcc-arm-linux-gnueabihf" ;;
        x86_64-*-linux-gnu) linker=x86_64-linux-gnu-gcc pkg="Debian: apt-get install gcc-x86-64-linux-gnu" ;;
        *) echo "linker: cargo's default"; return 0 ;;
    esac
    if ! command -v "$linker" >/dev/null 2>&1 && [ ! -x "$linker" ]; then
        why="no linker for $1: $linker is missing ($pkg; or export $var=/path/to/linker)"
        return 1
    fi
    export "$var=$linker"
    echo "linker: $linker"
}

# ring (rustls's crypto, the default `tls` feature) compiles C and assembly for the
# target: exports CC_<triple> for cc-rs when it is unset. x86_64 musl uses the host's
# cc; the ARM targets Debian's cross gcc (its glibc headers are only read for
# freestanding declarations; rust-lld links musl). `--no-default-features` needs none.
ensure_cc() {
    why=""
    var=CC_$(echo "$1" | tr 'a-z.-' 'a-z__')
    eval "set_cc=\${$var:-}"
    if [ -n "$set_cc" ]; then echo "C compiler: $set_cc (from $var)"; return 0; fi
    case "$1" in
        x86_64-*-linux-musl) cc=cc pkg="Debian: apt-get install gcc" ;;
        aarch64-*-linux-musl) cc=aarch64-linux-gnu-gcc pkg="Debian: apt-get install gcc-aarch64-linux-gnu" ;;
        arm*-linux-musleabihf) cc=arm-linux-gnueabihf-gcc pkg="Debian: apt-get install gcc-arm-linux-gnueabihf" ;;
        *) return 0 ;;
    esac
    if ! command -v "$cc" >/dev/null 2>&1; then
        why="no C compiler for $1 (ring, the tls feature): $cc is missing ($pkg; or export $var=..., or build with --no-default-features)"
        return 1
    fi
    export "$var=$cc"
    echo "C compiler: $cc"
}

# Builds $1; prints size and file(1). Sets $size and $desc; returns 1 on failure.
build_one() {
    t=$1 size="" desc=""
    echo "== $t"
    ensure_target "$t" || { echo "error: $why" >&2; return 3; }
    ensure_linker "$t" || { echo "error: $why" >&2; return 4; }
    ensure_cc "$t" || { echo "error: $why" >&2; return 4; }
    ensure_rust_src
    flags="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static -C relocation-model=static"
    if [ "$STD_SRC" = 1 ]; then
        flags="$flags $SIZE_FLAGS"
        set -- env RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort \
            CARGO_UNSTABLE_BUILD_STD_FEATURES=optimize_for_size
        echo "building coracle for $t with std from source (RUSTC_BOOTSTRAP=1, -Z build-std=std,panic_abort, -Z build-std-features=optimize_for_size; RUSTFLAGS=$flags)"
    else
        set -- env
        echo "building coracle for $t with the prebuilt std (RUSTFLAGS=$flags)"
    fi
    [ "$DRY" = 0 ] || { why="--dry-run: not built"; return 5; }
    if [ -n "${CORACLE_LINK_ARGS:-}" ]; then
        # scripts/startup-order.sh: extra linker arguments for the final link only (a map
        # file), so the dependencies and std built with the same flags are reused.
        largs=""
        for a in $CORACLE_LINK_ARGS; do largs="$largs -C link-arg=$a"; done
        # shellcheck disable=SC2086 # one word per argument
        "$@" RUSTFLAGS="$flags" cargo rustc --release --target "$t" --bin coracle -- $largs \
            || { why="cargo rustc failed"; return 1; }
    else
        "$@" RUSTFLAGS="$flags" cargo build --release --target "$t" || { why="cargo build failed"; return 1; }
    fi
    bin="${CARGO_TARGET_DIR:-target}/$t/release/coracle"
    [ -f "$bin" ] || { why="build succeeded but $bin is missing"; echo "error: $why" >&2; return 1; }
    size=$(wc -c < "$bin" | tr -d ' ')
    case "$bin" in /*) echo "binary: $bin" ;; *) echo "binary: $here/$bin" ;; esac
    echo "size: $size bytes ($(( (size + 1023) / 1024 )) KiB, $(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }') MiB)"
    if command -v file >/dev/null 2>&1; then
        desc=$(file -b "$bin")
        echo "file: $desc"
        case "$desc" in
            *"dynamically linked"*|*interpreter*)
                why="$bin is dynamically linked"; echo "error: $why" >&2; return 1 ;;
            *"static-pie linked"*)
                echo "linkage: statically linked (static-pie: no loader, no shared libraries; ASLR still works)" ;;
            *"statically linked"*)
                echo "linkage: statically linked" ;;
            *) why="cannot tell from file(1) whether $bin is statically linked"; echo "error: $why" >&2; return 1 ;;
        esac
    else
        desc="file(1) not installed, linkage not verified (apt-get install file)"
        echo "file: $desc"
    fi
    return 0
}

if [ "$ALL" = 0 ]; then
    rc=0
    build_one "$TARGET" || rc=$?
    [ "$rc" != 5 ] || rc=0
    exit "$rc"
fi

summary="" failed=0
for t in $ALL_TARGETS; do
    rc=0
    build_one "$t" || rc=$?
    case "$rc" in
        5) line="dry run" ;;
        0) line="built   $size bytes; $(printf '%s' "$desc" | cut -d, -f2 | sed 's/^ //'), statically linked" ;;
        1) line="FAILED  $why"; failed=1 ;;
        *) line="skipped $why" ;;
    esac
    summary="$summary$(printf '%-32s %s' "$t" "$line")
"
done
echo
echo "== summary"
printf '%s' "$summary"
exit "$failed"
