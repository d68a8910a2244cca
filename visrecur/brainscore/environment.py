"""Where Brain-Score comes from and where it may write.

brainscore-vision is an optional extra (``pip install -e ".[brainscore]"``): the core package and its tests
never import it. Importing visrecur (or visrecur.brainscore) changes no environment variable. On first use
of Brain-Score (``require``), visrecur points Brain-Score's caches at a temporary folder and forbids it to
pip-install plugin requirements, so nothing is installed or cached outside the environment, and says so
once (``BrainScoreSetup`` warning); variables already set by the user are kept.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from visrecur.errors import VisrecurError

BRAINSCORE_VERSION = "2.4.2"
INSTALL_HINT = 'pip install -e ".[brainscore]"'
# Brain-Score's own variables: data downloads, result caches, its home (S3 cache, stimuli on screen), model-tools
CACHE_VARIABLES = ("BRAINIO_HOME", "RESULTCACHING_HOME", "BRAINSCORE_HOME", "MT_HOME")
DEFAULT_VISUAL_DEGREES = 8  # the visual angle a model's input covers unless told otherwise (Brain-Score's usual)


class BrainScoreMissing(VisrecurError):
    """brainscore-vision is not installed."""


class BrainScoreSetup(UserWarning):
    """What visrecur set in the environment before Brain-Score's first use."""


def isolate(base: str | Path | None = None, force: bool = False) -> dict:
    """Set ``BS_INSTALL_DEPENDENCIES=no`` and Brain-Score's cache folders to a temporary folder (or
    ``base``) unless they are set already (``force``: set them anyway); return the values this call set."""
    changed = {}
    if force or not os.environ.get("BS_INSTALL_DEPENDENCIES"):
        changed["BS_INSTALL_DEPENDENCIES"] = os.environ["BS_INSTALL_DEPENDENCIES"] = "no"
    root = None
    for name in CACHE_VARIABLES:
        if force or not os.environ.get(name):
            root = root or Path(base or tempfile.mkdtemp(prefix="visrecur-brainscore-"))
            folder = root / name.lower()
            folder.mkdir(parents=True, exist_ok=True)
            changed[name] = os.environ[name] = str(folder)
    return changed


def available() -> bool:
    """Whether brainscore_vision can be imported (without importing it)."""
    from importlib.util import find_spec

    return find_spec("brainscore_vision") is not None


def require():
    """Import brainscore_vision (isolated first), or raise one line naming the extra to install."""
    if not available():
        raise BrainScoreMissing(f"brainscore-vision is not installed; install the Brain-Score extra with "
                                f"{INSTALL_HINT} (brainscore-vision {BRAINSCORE_VERSION}, Python >= 3.11)")
    import warnings

    changed = isolate()
    if changed:  # said once, on first use: importing visrecur set nothing
        warnings.warn("for Brain-Score, visrecur set " + ", ".join(f"{k}={v}" for k, v in changed.items())
                      + " (nothing installed or cached outside this environment; set them yourself to choose)",
                      BrainScoreSetup, stacklevel=2)

    with warnings.catch_warnings():  # brainio's Score subclass warns about __slots__ on every import
        warnings.filterwarnings("ignore", message=".*should explicitly define __slots__", category=FutureWarning)
        import brainscore_vision
        import brainscore_vision.model_interface  # noqa: F401
    return brainscore_vision
