"""File helpers shared by checkpoints, downloads, recordings and training: content hashes, atomic
publication, and whether an output can be created."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def publish(tmp: str | Path, dest: str | Path) -> None:
    """Rename a finished temporary file onto ``dest`` atomically, with ordinary permissions (mkstemp
    makes files private)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, dest)


def writable_ancestor(path: str | Path) -> tuple[Path, bool]:
    """The nearest existing folder at or above ``path`` and whether a file can be created in it, found
    without creating anything lasting (a temporary file, removed at once: the permission bits alone say
    yes to root even where the file system refuses)."""
    import tempfile

    folder = Path(path).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return folder, False
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".visrecur-write-test"):
            return folder, True
    except OSError:
        return folder, False
