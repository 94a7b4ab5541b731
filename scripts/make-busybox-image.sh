#!/bin/sh
# Build a `docker save`-format image archive from the host's static busybox.
#
#   scripts/make-busybox-image.sh OUT.tar
#   scripts/make-busybox-image.sh [--tag NAME:TAG] [--extra-random-mib N] [--seed S] OUT.tar
#
# The archive holds manifest.json, the image config (<sha256>.json) and one layer
# (<sha256>/layer.tar) with:
#   /bin/busybox           the host's busybox (must be statically linked; Debian: busybox-static)
#   /bin/<applet>          symlinks to busybox for common applets (sh, true, sleep, cat, ...)
#   /etc/passwd, /etc/group  root and nobody (65534)
#   /tmp (1777), /root, /home, /dev, /proc, /sys, /var, /usr/bin
# Config: Cmd ["sh"], Env PATH, tagged busybox:latest unless --tag says otherwise;
# architecture from busybox's ELF header (BUSYBOX=/path/to/arm64/busybox makes an arm64 image).
# --extra-random-mib N adds a second layer with one file /data.bin of N MiB of pseudo-random
# bytes from a fixed seed (--seed, default 1), for load/save benchmarks.
#
# Everything is deterministic (fixed mtimes, uid/gid 0, fixed created dates), so the same
# busybox gives the same image ID: sha256 of the config bytes. The config's rootfs.diff_ids
# are the sha256 of each layer tar. Prints the image ID on stdout.
#
# Needs python3 (standard library only). Exit codes: 0 written, 1 failure, 2 usage.
set -eu

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'
}

TAG=busybox:latest
EXTRA=0
SEED=1
OUT=""
BUSYBOX=${BUSYBOX:-}
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) [ $# -ge 2 ] || { echo "error: --tag needs a value" >&2; exit 2; }; TAG=$2; shift 2 ;;
        --extra-random-mib) [ $# -ge 2 ] || { echo "error: --extra-random-mib needs a value" >&2; exit 2; }; EXTRA=$2; shift 2 ;;
        --seed) [ $# -ge 2 ] || { echo "error: --seed needs a value" >&2; exit 2; }; SEED=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "error: unknown option: $1 (see --help)" >&2; exit 2 ;;
        *) [ -z "$OUT" ] || { echo "error: more than one output file" >&2; exit 2; }; OUT=$1; shift ;;
    esac
done
[ -n "$OUT" ] || { usage >&2; exit 2; }

if [ -z "$BUSYBOX" ]; then
    for b in /bin/busybox /usr/bin/busybox; do
        [ -x "$b" ] && { BUSYBOX=$b; break; }
    done
fi
[ -n "$BUSYBOX" ] || { echo "error: no busybox found (apt-get install busybox-static)" >&2; exit 1; }
if command -v file >/dev/null 2>&1; then
    case "$(file -bL "$BUSYBOX")" in
        *"dynamically linked"*) echo "error: $BUSYBOX is dynamically linked; install busybox-static" >&2; exit 1 ;;
    esac
fi
command -v python3 >/dev/null 2>&1 || { echo "error: python3 not found" >&2; exit 1; }

exec python3 - "$OUT" "$TAG" "$EXTRA" "$SEED" "$BUSYBOX" <<'PYEOF'
import hashlib, io, json, os, platform, random, sys, tarfile, tempfile

out, tag, extra_mib, seed, busybox = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
MTIME = 1704067200  # 2024-01-01T00:00:00Z
CREATED = "2024-01-01T00:00:00Z"
APPLETS = """sh ash true false sleep cat echo ls id ps top yes env stty dd head tail wc mkdir rmdir
rm cp mv ln hostname uname date grep sed sort uniq pwd touch chmod chown printf test [ kill
mount umount free df du whoami nc wget vi more find xargs tee seq od hexdump ifconfig ip
ping basename dirname readlink realpath stat sync tr cut md5sum sha256sum expr which nproc
watch time timeout usleep nohup mkfifo tty reset clear less awk""".split()


def elf_arch(path):
    """The Go architecture name of an ELF executable (its e_machine), or None."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "little" if head[5] == 1 else "big"
    return {0x3E: "amd64", 0xB7: "arm64", 0x28: "arm", 0x03: "386"}.get(int.from_bytes(head[18:20], order))


# The image's architecture is busybox's own, so an arm64 busybox makes an arm64 image.
ARCH = elf_arch(busybox) or {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386"}.get(platform.machine(), platform.machine())


def info(name, kind=tarfile.REGTYPE, mode=0o644, size=0, link=""):
    t = tarfile.TarInfo(name)
    t.type, t.mode, t.size, t.linkname = kind, mode, size, link
    t.mtime, t.uid, t.gid, t.uname, t.gname = MTIME, 0, 0, "root", "root"
    return t


def base_layer(f):
    with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for d, mode in [("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("home", 0o755), ("proc", 0o555),
                        ("root", 0o700), ("sys", 0o555), ("tmp", 0o1777), ("usr", 0o755), ("usr/bin", 0o755),
                        ("var", 0o755)]:
            tf.addfile(info(d + "/", tarfile.DIRTYPE, mode))
        data = open(busybox, "rb").read()
        tf.addfile(info("bin/busybox", mode=0o755, size=len(data)), io.BytesIO(data))
        for a in APPLETS:
            tf.addfile(info("bin/" + a, tarfile.SYMTYPE, 0o777, link="busybox"))
        files = {
            "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
            "etc/group": "root:x:0:\nnogroup:x:65534:\n",
            "etc/hostname": "busybox\n",
        }
        for name, text in files.items():
            b = text.encode()
            tf.addfile(info(name, size=len(b)), io.BytesIO(b))


def random_layer(f, mib):
    rng = random.Random(seed)
    with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        size = mib << 20

        class Gen(io.RawIOBase):
            left = size
            def readable(self):
                return True
            def readinto(self, b):
                n = min(len(b), self.left, 1 << 20)
                if n <= 0:
                    return 0
                b[:n] = rng.randbytes(n)
                self.left -= n
                return n

        tf.addfile(info("data.bin", size=size), io.BufferedReader(Gen(), 1 << 20))


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


tmp = tempfile.mkdtemp(prefix="mkbb.", dir=os.path.dirname(os.path.abspath(out)) or ".")
try:
    layers = []
    makers = [(base_layer, ())] + ([(random_layer, (extra_mib,))] if extra_mib > 0 else [])
    for i, (mk, args) in enumerate(makers):
        p = os.path.join(tmp, "layer%d.tar" % i)
        with open(p, "wb") as f:
            mk(f, *args)
        layers.append((p, sha_file(p)))
    history = [{"created": CREATED, "created_by": "scripts/make-busybox-image.sh: busybox and applet links"}]
    if extra_mib > 0:
        history.append({"created": CREATED, "created_by": "scripts/make-busybox-image.sh: %d MiB random /data.bin (seed %d)" % (extra_mib, seed)})
    config = {
        "architecture": ARCH,
        "os": "linux",
        "created": CREATED,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for _, d in layers]},
        "history": history,
    }
    cfg = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    image_id = hashlib.sha256(cfg).hexdigest()
    if ":" not in tag.rsplit("/", 1)[-1]:
        tag += ":latest"
    manifest = [{"Config": image_id + ".json", "RepoTags": [tag], "Layers": [d + "/layer.tar" for _, d in layers]}]
    mbytes = json.dumps(manifest, separators=(",", ":")).encode()
    part = out + ".part"
    with tarfile.open(part, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        tf.addfile(info(image_id + ".json", size=len(cfg)), io.BytesIO(cfg))
        for p, d in layers:
            tf.addfile(info(d + "/", tarfile.DIRTYPE, 0o755))
            with open(p, "rb") as f:
                tf.addfile(info(d + "/layer.tar", size=os.path.getsize(p)), f)
        tf.addfile(info("manifest.json", size=len(mbytes)), io.BytesIO(mbytes))
    os.replace(part, out)
    print("sha256:" + image_id)
finally:
    for name in os.listdir(tmp):
        os.unlink(os.path.join(tmp, name))
    os.rmdir(tmp)
PYEOF
