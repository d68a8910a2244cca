"""Fetch public data sets listed in visrecur/data_manifest.json (shipped in the package), checking every
file's sha256.

    python -m visrecur.download 92images [--dest DIR]

A file is written to a temporary name and renamed only once its sha256 matches, so a failed or
tampered download never leaves a file that looks complete.
"""
from __future__ import annotations

import hashlib
import json
import sys
import urllib.request
from pathlib import Path

from visrecur.cli import ArgumentParser

from visrecur.errors import VisrecurError, report_errors
from visrecur.artifacts.io import atomic_path, sha256 as file_sha256
from visrecur.artifacts.io import data_root

MANIFEST = Path(__file__).resolve().parent / "data_manifest.json"


class DownloadError(VisrecurError):
    """A download that failed or did not match its checksum."""


def fetch(url: str, dest: Path, sha256: str, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` unless a file with the right sha256 is already there."""
    from tqdm.auto import tqdm

    dest = Path(dest)
    if dest.is_file() and file_sha256(dest) == sha256:
        return dest
    digest = hashlib.sha256()
    try:
        with atomic_path(dest) as tmp:  # renamed onto dest only once the sha256 matches
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
            if digest.hexdigest() != sha256:
                raise DownloadError(f"{url} has sha256 {digest.hexdigest()}, expected {sha256}; the file changed "
                                    "at its source or the download was corrupted: nothing was saved")
    except OSError as err:
        raise DownloadError(f"cannot download {url} ({err}); check the network, or download it by hand to "
                            f"{dest}") from None
    return dest


def load_manifest(manifest: Path = MANIFEST) -> dict:
    """{set name: {files: {file name: {url, sha256, ...}}, ...}}."""
    return json.loads(Path(manifest).read_text())["sets"]


def fetch_set(name: str, dest: Path | None = None, manifest: Path = MANIFEST, progress: bool = True) -> Path:
    sets = load_manifest(manifest)
    if name not in sets:
        raise DownloadError(f"unknown data set {name!r}; known: {sorted(sets)}")
    folder = Path(dest) if dest else data_root() / name
    for filename, entry in sets[name]["files"].items():
        if entry.get("url"):
            fetch(entry["url"], folder / filename, entry["sha256"], progress)
        elif not (folder / filename).is_file():
            print(f"{filename}: no direct download; get it from {entry.get('source')} into {folder}",
                  file=sys.stderr)
    return folder


@report_errors
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m visrecur.download", description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="data set in visrecur/data_manifest.json, e.g. 92images")
    p.add_argument("--dest", help="folder (default $VISRECUR_DATA/<name> or ../shared/data/<name>)")
    args = p.parse_args(argv)
    print(fetch_set(args.name, Path(args.dest) if args.dest else None))


if __name__ == "__main__":
    sys.exit(main())
