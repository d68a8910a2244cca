"""``python -m visrecur.evaluate [--checkpoint NAME_OR_PATH] [--limit 1000] [--json OUT.json]``: top-1 error of
a checkpoint on a fixed class-balanced subset of the test split; the shipped weights keep such a measurement
beside them (``visrecur/weights/<file>.json``), which a test re-measures."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from visrecur.artifacts.checkpoint import load
from visrecur.artifacts.io import check_replaceable, data_root, write_atomically
from visrecur.cli import ArgumentParser
from visrecur.errors import report_errors
from visrecur.training.evaluate import subset_errors


def is_measurement(path: Path) -> bool:
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(result, dict) and {"test_images", "subset", "top1_error"} <= set(result)


@report_errors
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m visrecur.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="checkpoint path or shipped model name; default: the shipped default")
    p.add_argument("--data-root", default=str(data_root() / "cifar10-jpeg"), help="image folder with test/ (or val/)")
    p.add_argument("--limit", type=int, default=1000, help="test images (class-balanced)")
    p.add_argument("--json", help="write {readout time: error} here (atomically)")
    args = p.parse_args(argv)
    if args.limit < 1:
        p.error(f"--limit {args.limit} must be at least 1")
    if args.json is not None and (not args.json.endswith(".json") or Path(args.json).is_dir()):
        p.error(f"--json {args.json!r} must name a .json file, e.g. errors.json")
    if args.json:  # refused before any work: only a measurement of this command's is replaced
        check_replaceable(Path(args.json), is_measurement, "measurement (.json) of python -m visrecur.evaluate",
                          True, "--json")
    model = load(args.checkpoint)
    errors = subset_errors(model, args.data_root, args.limit)
    result = {"test_images": args.limit, "subset": "class-balanced, seed 0 (visrecur.training.data.decode_folder)",
              "top1_error": {str(t): round(e, 4) for t, e in errors.items()}}
    print(json.dumps(result, indent=1))
    if args.json:
        write_atomically(Path(args.json), lambda tmp: tmp.write_text(json.dumps(result, indent=1) + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
