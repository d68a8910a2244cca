"""python -m docs [--check]: regenerate the docs pages whose numbers come from result files (docs/build.py)."""
import sys

from docs import build
from visrecur.cli import ArgumentParser
from visrecur.errors import report_errors


@report_errors
def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m docs", description=__doc__.split(": ", 1)[1])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming every checked-in page that differs from what it would be")
    args = parser.parse_args(argv)
    if args.check:
        stale = build.stale(build.REPO)
        for page in stale:
            print(f"docs/{page} is out of date: regenerate with python -m docs", file=sys.stderr)
        if not stale:
            print(f"up to date: {', '.join('docs/' + p for p in build.PAGES)}")
        return 1 if stale else 0
    for path in build.write(build.REPO):
        print(f"wrote {path.relative_to(build.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
