"""File helpers shared by checkpoints and downloads: content hashes and atomic publication."""
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
