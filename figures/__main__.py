"""Regenerate every result and figure from the shipped models: ``python -m figures`` from the repository
root. Runs each analysis (writing results/), then each notebook in figures/ (writing figures/out/).

    python -m figures                        # analyses on --limit test images, then every notebook
    python -m figures --plots-only           # notebooks only, on the results already in results/
    python -m figures --only latency masking # some analyses (and every notebook)

Needs ``pip install -e ".[notebooks]"``. The analyses are the documented commands (``python -m
analyses.NAME``); what each writes, its notebook and its options here are in ``analyses.registry``.
"""
import sys
import time
from importlib import import_module
from pathlib import Path

from analyses.registry import ANALYSES
from visrecur.cli import ArgumentParser
from visrecur.errors import InputError, report_errors

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run_analysis(name: str, argv: list[str]) -> None:
    print(f"python -m analyses.{name} {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    code = import_module(f"analyses.{name}").main(argv)
    if code not in (None, 0):
        raise InputError(f"python -m analyses.{name} {' '.join(argv)} failed (exit code {code}); "
                         "see its message above")
    print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)


def run_notebooks() -> None:
    try:
        import nbclient
        import nbformat
    except ImportError:
        raise InputError('running the notebooks needs nbclient, nbformat and ipykernel: pip install -e '
                         '".[notebooks]"') from None
    for path in sorted(HERE / a.notebook for a in ANALYSES.values() if a.notebook):
        notebook = nbformat.read(path, as_version=4)
        # run where the notebook lives: it reads ../results and writes out/
        nbclient.NotebookClient(notebook, resources={"metadata": {"path": str(HERE)}}).execute()
        print(f"{path.name}: figures in {HERE / 'out'}", flush=True)


@report_errors
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m figures", description=__doc__.split("\n\n")[0])
    p.add_argument("--plots-only", action="store_true", help="run only the notebooks, on results/ as it is")
    p.add_argument("--only", nargs="+", choices=sorted(ANALYSES), metavar="NAME",
                   help=f"run only these analyses before the notebooks (of: {', '.join(ANALYSES)})")
    p.add_argument("--limit", type=int, default=1000, help="test images per analysis (class-balanced)")
    p.add_argument("--calibration", type=int, default=1000,
                   help="training images that estimate TSBN statistics past the trained steps")
    args = p.parse_args(argv)
    for name in ("limit", "calibration"):
        if getattr(args, name) < 1:
            p.error(f"--{name} {getattr(args, name)} must be at least 1")
    if Path.cwd().resolve() != ROOT:
        raise InputError(f"run python -m figures from the repository root ({ROOT}): the analyses write "
                         "results/ there")
    if not args.plots_only:
        for name in args.only or ANALYSES:
            run_analysis(name, ANALYSES[name].figure_args(args.limit, args.calibration))
    run_notebooks()
    return 0


if __name__ == "__main__":
    sys.exit(main())
