#!/usr/bin/env bash
# CI for the static musl release binaries (called from .ci/run). On a fresh machine it
# installs what it needs, then runs clippy for the musl targets (and armv7 gnueabihf when
# it stands in for armv7 musl), and:
#   1. builds x86_64-unknown-linux-musl (scripts/build-static.sh), runs the unit tests
#      built for x86_64-unknown-linux-musl (debug), and runs the integration
#      tests against that very binary: the test executables of `cargo test` (already built
#      by .ci/run's own `cargo test`) with CORACLE_BIN pointing at the release binary, so
#      every daemon the tests start is the static musl one. $MUSL_TESTS picks test files
#      (default all; e.g. MUSL_TESTS="system containers"). tests/check_config.rs and
#      tests/install.rs run the binary of the build itself, not CORACLE_BIN.
#   2. builds aarch64-unknown-linux-musl and runs scripts/qemu-smoke.sh: the daemon under
#      qemu-aarch64-static, docker version (Arch arm64), docker load of an arm64 busybox
#      image, docker run --rm busybox echo ok; then the same from a device tree made by
#      scripts/install.sh --board raspberrypi-arm64, run with chroot.
#   3. the same for armv7-unknown-linux-musleabihf when rustup can install its target;
#      when it cannot, says so and smoke-tests the static glibc armv7-unknown-linux-gnueabihf
#      build instead (Debian's gcc-arm-linux-gnueabihf links it), so 32-bit ARM still runs
#      (ARMV7_GNU_FALLBACK=0 skips that).
#   4. prints each target's size.
# CI_QUICK=1 (what .ci/run sets, with a MUSL_TESTS subset) drops the musl clippy of the
# tests, the aarch64 clippy, the musl unit tests and the armv7 release build and smoke
# test (armv7 is still compiled by clippy), to keep CI under 25 minutes.
# The arm busybox comes from Debian's busybox-static:arm64 / :armhf packages, downloaded
# with apt-get into a private apt state under target/ci-musl (the system's dpkg
# architectures and lists stay untouched).
#
# Exit codes: 0 passed, 1 failed.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
say() { printf '\n== ci-musl: %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
t0=$(date +%s)

# ------------------------------------------------------------------ setup
say "setup"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
installed qemu-user-static || missing+=(qemu-user-static)
command -v file >/dev/null || missing+=(file)
command -v unshare >/dev/null || missing+=(util-linux)
# ring (the tls feature) compiles C for each target: Debian's cross gcc for arm64.
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The release pipeline builds std from source (scripts/build-static.sh; docs/RELEASING.md):
# rustup's rust-src component. build-static.sh adds it too, and falls back loudly without it.
rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done
ARMV7=armv7-unknown-linux-musleabihf ARMV7_WHY=""
if ! rustup target list --installed | grep -qx "$ARMV7"; then
    if ! out=$(rustup target add "$ARMV7" 2>&1); then
        ARMV7_WHY="rustup target add $ARMV7 failed: $(printf '%s\n' "$out" | grep -E '^error|status code' | sed -e 's/^ *[0-9]*: *//' | head -2 | paste -sd' ')"
    fi
fi
# binfmt_misc: qemu-user-static ships entries with the F flag (interpreter opened at
# registration), so foreign binaries run inside a chroot or a container's rootfs too.
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
for e in qemu-aarch64 qemu-arm; do
    [ -e "/proc/sys/fs/binfmt_misc/$e" ] || update-binfmts --enable "$e"
    echo "binfmt_misc $e: $(tr '\n' ' ' < "/proc/sys/fs/binfmt_misc/$e" | cut -c1-60)..."
done

# Debian's static busybox for arm64 and armhf, through a private apt state.
apt_dir=$here/target/ci-musl/apt
bb_deb() { # DEBARCH -> prints the path of its busybox
    local a=$1 d=$apt_dir/$1
    if [ ! -x "$d/root/bin/busybox" ]; then
        mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$d"
        local o=(-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
                 -o "APT::Architecture=$a" -o "APT::Architectures::=arm64" -o "APT::Architectures::=armhf")
        [ -e "$apt_dir/lists/.updated" ] || { apt-get "${o[@]}" update -qq >/dev/null 2>&1 || true; touch "$apt_dir/lists/.updated"; }
        (cd "$d" && rm -f ./*.deb && apt-get "${o[@]}" download "busybox-static:$a" >/dev/null 2>&1)
        dpkg-deb -x "$d"/busybox-static_*.deb "$d/root"
    fi
    echo "$d/root/bin/busybox"
}

# The same C compilers for ring as scripts/build-static.sh picks (clippy builds ring too).
export CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-cc}
export CC_aarch64_unknown_linux_musl=${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc}
export CC_armv7_unknown_linux_musleabihf=${CC_armv7_unknown_linux_musleabihf:-arm-linux-gnueabihf-gcc}

# ------------------------------------------------------------------ lints per libc
# Where musl's (or 32-bit) libc types differ, clippy sees different code than on the host.
say "clippy for the musl targets"
# CI's quick path (.ci/run) sets CI_QUICK=1: musl clippy for the daemon only (not its
# tests), no aarch64 clippy (the aarch64 release build below compiles the same code).
if [ "${CI_QUICK:-0}" = 1 ]; then
    cargo clippy --target x86_64-unknown-linux-musl --quiet -- -D warnings
else
    cargo clippy --all-targets --target x86_64-unknown-linux-musl --quiet -- -D warnings
    cargo clippy --target aarch64-unknown-linux-musl --quiet -- -D warnings
fi

# ------------------------------------------------------------------ x86_64
say "x86_64-unknown-linux-musl: build"
sh scripts/build-static.sh --target x86_64-unknown-linux-musl
X86=target/x86_64-unknown-linux-musl/release/coracle
sum_before=$(sha256sum < "$X86")

if [ "${CI_QUICK:-0}" != 1 ]; then
    say "x86_64-unknown-linux-musl: unit tests"
    cargo test --target x86_64-unknown-linux-musl --bin coracle
fi

MUSL_TESTS=${MUSL_TESTS:-all}
test_args=(--test '*')
if [ "$MUSL_TESTS" != all ]; then
    test_args=()
    for t in $MUSL_TESTS; do test_args+=(--test "$t"); done
fi
say "x86_64-unknown-linux-musl: integration tests against the release binary (${MUSL_TESTS})"
# The test executables are the ones .ci/run's `cargo test` just built (nothing is compiled
# again); CORACLE_BIN makes every daemon they start the static musl release binary.
CORACLE_BIN=$here/$X86 cargo test "${test_args[@]}"
[ "$(sha256sum < "$X86")" = "$sum_before" ] || { echo "ci-musl: $X86 changed while the tests ran" >&2; exit 1; }

# ------------------------------------------------------------------ aarch64
say "aarch64-unknown-linux-musl: build"
sh scripts/build-static.sh --target aarch64-unknown-linux-musl
say "aarch64-unknown-linux-musl: smoke test under qemu"
bash scripts/qemu-smoke.sh --target aarch64-unknown-linux-musl --busybox "$(bb_deb arm64)"

# ------------------------------------------------------------------ armv7
if [ -z "$ARMV7_WHY" ]; then
    say "$ARMV7: build"
    sh scripts/build-static.sh --target "$ARMV7"
    say "$ARMV7: smoke test under qemu"
    bash scripts/qemu-smoke.sh --target "$ARMV7" --busybox "$(bb_deb armhf)"
else
    say "$ARMV7: NOT BUILT: $ARMV7_WHY"
    # So that 32-bit ARM still runs: the static glibc armv7 build, under qemu-arm the same way.
    G=armv7-unknown-linux-gnueabihf
    if [ "${ARMV7_GNU_FALLBACK:-1}" = 1 ]; then
        command -v arm-linux-gnueabihf-gcc >/dev/null || {
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-arm-linux-gnueabihf >/dev/null
        }
        rustup target list --installed | grep -qx "$G" || rustup target add "$G"
        cargo clippy --target "$G" --quiet -- -D warnings
    fi
    # CI's quick path stops at clippy: it compiles the 32-bit code (time_t, c_long
    # widths), the release build and the qemu smoke test are the full run's.
    if [ "${ARMV7_GNU_FALLBACK:-1}" = 1 ] && [ "${CI_QUICK:-0}" != 1 ]; then
        say "$G (instead of $ARMV7): build"
        sh scripts/build-static.sh --target "$G"
        say "$G: smoke test under qemu"
        bash scripts/qemu-smoke.sh --target "$G" --busybox "$(bb_deb armhf)"
    fi
fi

say "sizes"
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl "$ARMV7" armv7-unknown-linux-gnueabihf; do
    b=target/$t/release/coracle
    if [ -f "$b" ]; then printf '%-34s %9d bytes  %s\n' "$t" "$(wc -c < "$b")" "$(file -b "$b" | cut -d, -f1-2)"
    else printf '%-34s not built\n' "$t"; fi
done
echo "ci-musl: passed in $(( $(date +%s) - t0 )) s"
