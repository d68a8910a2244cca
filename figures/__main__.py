"""Redraw every figure: ``python -m figures`` from the repository root (after the analyses have written
results/). Runs each notebook in figures/ with nbclient; needs ``pip install -e ".[notebooks]"``."""
import sys
from pathlib import Path

from visrecur.errors import ArgumentParser, InputError, report_errors

HERE = Path(__file__).resolve().parent


@report_errors
def main(argv=None) -> int:
    ArgumentParser(prog="python -m figures", description=__doc__.split("\n\n")[0]).parse_args(argv)
    try:
        import nbclient
        import nbformat
    except ImportError:
        raise InputError('running the notebooks needs nbclient, nbformat and ipykernel: pip install -e '
                         '".[notebooks]"') from None
    for path in sorted(HERE.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        # run where the notebook lives: it reads ../results and writes out/
        nbclient.NotebookClient(notebook, resources={"metadata": {"path": str(HERE)}}).execute()
        print(f"{path.name}: figures in {HERE / 'out'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
