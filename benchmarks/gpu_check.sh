#!/usr/bin/env bash
# The GPU check of issue 13, in three steps (benchmarks/README.md):
#
#   bash benchmarks/gpu_check.sh prepare    # here, without a GPU: CIFAR-10 JPEGs as an uncompressed zip and
#                                           # the h5netcdf wheel into .gpucheck/ (git-ignored through
#                                           # .git/info/exclude), then prints the device call to make
#   bash benchmarks/gpu_check.sh            # on the device machine: unzip, run gpu_check.py, JSON into $OUT
#   bash benchmarks/gpu_check.sh dry-run    # anywhere: the same script on the CPU with tiny settings
#
# Environment: VISRECUR_DATA (folder holding cifar10-jpeg/, for prepare and dry-run), OUT (results folder),
# GPU_CHECK_BUDGET (seconds for the whole check, default 420), GPU_CHECK_ARGS (more gpu_check.py options).
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
    # stored, not deflated (JPEGs do not shrink): about 62 MB with short member names, under the 64 MiB
    # that travels with the working tree
    "$PY" - "$src" "$CARRY/cifar10-jpeg.zip" <<'EOF'
import os, sys, zipfile
from pathlib import Path
src, dest = Path(sys.argv[1]), Path(sys.argv[2])
tmp = dest.with_suffix(".zip.tmp")
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
    for split in ("train", "test"):
        for path in sorted((src / split).rglob("*.jpg")):
            z.write(path, path.relative_to(src).as_posix())
os.replace(tmp, dest)
print(f"{dest}: {dest.stat().st_size / 2**20:.1f} MiB")
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
    if [ -f "$CARRY/cifar10-jpeg.zip" ]; then
        "$PY" -c "import zipfile, sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
            "$CARRY/cifar10-jpeg.zip" "$data/cifar10-jpeg"
    else
        echo "error: $CARRY/cifar10-jpeg.zip is missing: run 'bash benchmarks/gpu_check.sh prepare' here and carry $CARRY" >&2
        exit 2
    fi
    if ls "$CARRY"/h5netcdf-*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --target /tmp/gpucheck-site "$CARRY"/h5netcdf-*.whl
        export PYTHONPATH=/tmp/gpucheck-site${PYTHONPATH:+:$PYTHONPATH}
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    PYTHONUNBUFFERED=1 "$PY" benchmarks/gpu_check.py --data-root "$data/cifar10-jpeg" --out "$OUT" \
        --scratch /tmp --budget "${GPU_CHECK_BUDGET:-420}" ${GPU_CHECK_ARGS:-} 2>&1 | tee "$OUT/gpu_check.log"
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
