#!/usr/bin/env bash
# The GPU check of issue 13, in three steps (benchmarks/README.md):
#
#   bash benchmarks/gpu_check.sh prepare    # here, without a GPU: CIFAR-10 JPEGs packed end to end and
#                                           # the h5netcdf wheel into .gpucheck/ (git-ignored through
#                                           # .git/info/exclude), then prints the device call to make
#   bash benchmarks/gpu_check.sh            # on the device machine: unpack, run gpu_check.py, JSON into $OUT
#   bash benchmarks/gpu_check.sh dry-run    # anywhere: the same script on the CPU with tiny settings
#
# Environment: VISRECUR_DATA (folder holding cifar10-jpeg/, for prepare and dry-run), OUT (results folder),
# GPU_CHECK_BUDGET (seconds for the whole check, default 540), GPU_CHECK_ARGS (more gpu_check.py options).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CARRY=.gpucheck

case "${1:-run}" in
prepare)
    src="${VISRECUR_DATA:-../shared/data}/cifar10-jpeg"
    [ -d "$src/train" ] || { echo "error: no CIFAR-10 JPEG folder at $src; set VISRECUR_DATA" >&2; exit 2; }
    mkdir -p "$CARRY"
    exclude=$(git rev-parse --git-path info/exclude)
    if ! grep -qx "/$CARRY/" "$exclude" 2>/dev/null; then
        [ -s "$exclude" ] && [ -n "$(tail -c1 "$exclude")" ] && echo >> "$exclude"  # end its last line first
        echo "/$CARRY/" >> "$exclude"
    fi
    # the JPEG bytes end to end plus a gzipped index (name, size): a zip's headers would add about 5 MB
    # per 60,000 files. What travels is capped at 64 MiB with the working tree (shipped weights included):
    # every test image, then training images round-robin over the classes while they fit
    git describe --always --dirty > "$CARRY/source.txt"  # which code the results come from (.git stays here)
    git ls-files -z --cached --others --exclude-standard > "$CARRY/tree.lst"
    "$PY" - "$src" "$CARRY" <<'EOF'
import gzip, itertools, json, os, sys
from pathlib import Path
src, dest = Path(sys.argv[1]), Path(sys.argv[2])
names = (dest / "tree.lst").read_bytes().split(b"\0")
tree = sum(os.path.getsize(n) for n in names if n and os.path.isfile(n))  # a deleted tracked file does not travel
(dest / "tree.lst").unlink()
room = 64 * 2**20 - tree - 2**20  # 1 MiB for the index, the wheel and files changed before the call
for old in dest.glob("cifar10-jpeg.*"):
    old.unlink()
test = sorted((src / "test").rglob("*.jpg"))
by_class = [sorted(d.glob("*.jpg")) for d in sorted((src / "train").iterdir()) if d.is_dir()]
train = [p for p in itertools.chain(*itertools.zip_longest(*by_class)) if p is not None]
index, used = [], 0
with open(dest / "cifar10-jpeg.bin.tmp", "wb") as blob:
    for path in test + train:
        data = path.read_bytes()
        if used + len(data) > room:
            break
        blob.write(data)
        used += len(data)
        index.append([path.relative_to(src).as_posix(), len(data)])
with gzip.open(dest / "cifar10-jpeg.index.json.gz.tmp", "wt") as f:
    json.dump(index, f)
os.replace(dest / "cifar10-jpeg.bin.tmp", dest / "cifar10-jpeg.bin")
os.replace(dest / "cifar10-jpeg.index.json.gz.tmp", dest / "cifar10-jpeg.index.json.gz")
n_train = sum(name.startswith("train/") for name, _ in index)
if len(index) - n_train < len(test):
    sys.exit(f"error: only {len(index) - n_train} of the {len(test)} test images fit beside a {tree / 2**20:.1f} MiB "
             "working tree; move large untracked files out of the checkout")
print(f"{len(index) - n_train} test and {n_train} of {len(train)} training images, {used / 2**20:.1f} MiB "
      f"(the working tree: {tree / 2**20:.1f} MiB)")
if n_train < len(train):
    print("the training set is cut to what travels: Table 1 runs on it say how many images they used")
EOF
    # the device image lacks h5netcdf (the .nc recording paths): its wheel, pure Python, travels too
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$CARRY" "h5netcdf==$("$PY" -c \
        'import importlib.metadata as m; print(m.version("h5netcdf"))')" \
        || echo "h5netcdf wheel not fetched: the check then skips the .nc recording paths"
    du -sh "$CARRY"
    echo "now, with the device tool: run(command='bash benchmarks/gpu_check.sh', carry=['$CARRY'], timeout_s=600)"
    ;;
run)
    : "${OUT:?OUT must name the results folder}"
    data=/tmp/gpucheck-data
    mkdir -p "$data" "$OUT"
    if [ -f "$CARRY/cifar10-jpeg.bin" ]; then
        "$PY" - "$CARRY" "$data/cifar10-jpeg" <<'EOF'
import gzip, json, sys
from pathlib import Path
carry, dest = Path(sys.argv[1]), Path(sys.argv[2])
with gzip.open(carry / "cifar10-jpeg.index.json.gz", "rt") as f:
    index = json.load(f)
with open(carry / "cifar10-jpeg.bin", "rb") as blob:
    for name, size in index:
        data = blob.read(size)
        if len(data) != size:
            sys.exit(f"error: {carry / 'cifar10-jpeg.bin'} ends inside {name}: run prepare again")
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
    if blob.read(1):
        sys.exit(f"error: {carry / 'cifar10-jpeg.bin'} is longer than its index: run prepare again")
print(f"unpacked {len(index)} images into {dest}")
EOF
    else
        echo "error: $CARRY/cifar10-jpeg.bin is missing: run 'bash benchmarks/gpu_check.sh prepare' here and carry $CARRY" >&2
        exit 2
    fi
    if ls "$CARRY"/h5netcdf-*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --target /tmp/gpucheck-site "$CARRY"/h5netcdf-*.whl
        export PYTHONPATH=/tmp/gpucheck-site${PYTHONPATH:+:$PYTHONPATH}
    fi
    [ -f "$CARRY/source.txt" ] && export GPU_CHECK_SOURCE="$(cat "$CARRY/source.txt")"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    PYTHONUNBUFFERED=1 "$PY" benchmarks/gpu_check.py --data-root "$data/cifar10-jpeg" --out "$OUT" \
        --scratch /tmp --budget "${GPU_CHECK_BUDGET:-540}" ${GPU_CHECK_ARGS:-} 2>&1 | tee "$OUT/gpu_check.log"
    ;;
dry-run)
    out=${OUT:-/tmp/gpu_check_dry_run}
    PYTHONUNBUFFERED=1 "$PY" benchmarks/gpu_check.py --dry-run --out "$out" ${GPU_CHECK_ARGS:-}
    ;;
*)
    echo "usage: bash benchmarks/gpu_check.sh [prepare|run|dry-run]" >&2
    exit 2
    ;;
esac
