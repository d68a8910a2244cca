"""File services every writer and reader uses: atomic writes, content hashes, where the data sets live,
and whether an output can be created.

Atomic write: a file or folder is written under a unique temporary name in the destination's folder
(``.<name>.<random>.tmp``: two runs never share one), flushed to disk (fsync), and renamed onto the
destination only once complete, so a reader sees the old file or the new one, never half of one; a
failure removes the temporary name and leaves the destination as it was.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

DATA_VARIABLE = "VISRECUR_DATA"


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_root() -> Path:
    """Where the real data sets live: ``$VISRECUR_DATA``, else ``../shared/data`` beside the repository
    (or beside the working folder). The one rule every command uses, training included."""
    if os.environ.get(DATA_VARIABLE):
        return Path(os.environ[DATA_VARIABLE])
    repo_sibling = Path(__file__).resolve().parents[3] / "shared" / "data"
    return repo_sibling if repo_sibling.is_dir() else Path.cwd().parent / "shared" / "data"


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _fsync(path: Path) -> None:
    """Flush a finished file (or every file of a finished folder) to disk before it is renamed."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def temporary_path(dest: str | Path, folder: bool = False) -> Path:
    """A new, unique name beside ``dest`` (made empty: a file, or a folder with ``folder``)."""
    dest = Path(dest)
    if folder:
        return Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    return Path(tmp)


def publish(tmp: str | Path, dest: str | Path) -> None:
    """Move a finished temporary file or folder onto ``dest`` (fsync first), with ordinary permissions
    (mkstemp and mkdtemp make them private). A folder replaces an existing ``dest`` folder."""
    tmp, dest = Path(tmp), Path(dest)
    _fsync(tmp)
    os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~_umask())
    if tmp.is_dir() and dest.is_dir():
        old = temporary_path(dest, folder=True)
        os.rmdir(old)
        os.replace(dest, old)  # a folder cannot be renamed onto a non-empty one: move it aside first
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)


@contextmanager
def atomic_path(dest: str | Path, folder: bool = False) -> Iterator[Path]:
    """``with atomic_path(dest) as tmp: write(tmp)``: ``tmp`` is a unique temporary file (or folder) beside
    ``dest``, published onto ``dest`` when the block ends without error and removed otherwise. The
    destination's folder is created if needed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(dest, folder)
    try:
        yield tmp
        publish(tmp, dest)
    finally:
        if tmp.exists():
            remove(tmp)


def write_atomically(dest: str | Path, write: Callable[[Path], object], folder: bool = False) -> Path:
    """``write(tmp)`` then publish onto ``dest``; returns ``dest``."""
    with atomic_path(dest, folder) as tmp:
        write(tmp)
    return Path(dest)


def write_all_atomically(writers: Mapping[str | Path, Callable[[Path], object]]) -> list[Path]:
    """Several files that belong together: every one written to its temporary name first, then each
    published, so an interruption while writing leaves the previous set, never a half-written file."""
    pending = []
    try:
        for dest, write in writers.items():
            dest = Path(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = temporary_path(dest)
            pending.append((tmp, dest))
            write(tmp)
        for tmp, dest in pending:
            publish(tmp, dest)
    finally:
        for tmp, _ in pending:
            if tmp.exists():
                remove(tmp)
    return [dest for _, dest in pending]


def writable_ancestor(path: str | Path) -> tuple[Path, bool]:
    """The nearest existing folder at or above ``path`` and whether a file can be created in it, found
    without creating anything lasting (a temporary file, removed at once: the permission bits alone say
    yes to root even where the file system refuses)."""
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


# --- one writer per output -----------------------------------------------------------------------------
LOCK_SUFFIX = ".lock"


def lock_path(output: str | Path) -> Path:
    """The lock file of ``output``: ``<output>.lock`` beside it (an output may be a folder, e.g. zarr)."""
    output = Path(output)
    return output.with_name(output.name + LOCK_SUFFIX)


def _holder() -> dict:
    import shlex
    import socket
    import sys
    import time

    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name,
                                                         *getattr(sys, "orig_argv", sys.argv)[1:]]).replace("\n", " ")}


def _describe_holder(fd: int) -> str:
    """Who holds a lock, from what it wrote in the lock file (read a few times: the holder writes it just
    after taking the lock)."""
    import json
    import time

    for _ in range(20):
        try:
            holder = json.loads(os.pread(fd, 1 << 16, 0).decode() or "null")
        except (ValueError, OSError):
            holder = None
        if isinstance(holder, dict):
            return (f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}: "
                    f"{holder.get('command')}")
        time.sleep(0.01)
    return "a run that has not said who it is yet"


@contextmanager
def exclusive(output: str | Path, option: str = "--output") -> Iterator[Path]:
    """``with exclusive(output):`` the only writer of ``output`` (and of its partial) while inside, or one
    ``InputError`` naming the run that writes it now.

    An advisory lock (``flock``) on ``<output>.lock``, holding the holder's pid, host, start time and
    command. The kernel releases it when the holder ends, however it ends (a hard kill included), so a
    left-over lock file never blocks a later run; the holder removes the file when it is done, and the
    folders it made for it if they are still empty (a refused run leaves nothing behind)."""
    import fcntl
    import json

    from visrecur.errors import InputError

    output = Path(output)
    path = lock_path(output)
    made = [folder for folder in [path.parent, *path.parent.parents] if not folder.exists()]
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        except OSError as err:
            _remove_empty(made)
            raise InputError(f"cannot write {str(output)!r}: its lock file {str(path)!r} cannot be made "
                             f"({err.strerror}); choose another {option} in a folder you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            _remove_empty(made)
            raise InputError(f"{str(output)!r} is being written by another run ({holder}); wait for it to end "
                             f"or choose another {option}") from None
        except OSError as err:
            os.close(fd)
            _remove_empty(made)
            raise InputError(f"cannot lock {str(path)!r} ({err.strerror}): this file system has no file locks; "
                             f"choose another {option} on a local disk") from None
        # the previous holder removes the file as it lets go: lock the file that is there now, not that one
        try:
            mine, there = os.fstat(fd), os.stat(path)
            if (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(_holder()) + "\n").encode(), 0)
        yield path
    finally:
        try:
            os.unlink(path)  # while still holding the lock: whoever opens it next makes a new one
        except FileNotFoundError:
            pass
        os.close(fd)
        _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # innermost first
        try:
            folder.rmdir()
        except OSError:  # not empty (the output is there), or made again by another run: kept
            return


# --- what --overwrite may replace ----------------------------------------------------------------------
def check_replaceable(path: str | Path, is_ours: Callable[[Path], bool], what: str, overwrite: bool,
                      option: str = "--output") -> None:
    """The one rule for every command that writes ``path``: nothing there, or a ``what`` visrecur made
    (``is_ours(path)``, recognised by its format and schema) and ``overwrite`` given. Anything else (a
    folder of other files, another program's file) is never replaced: one ``InputError``."""
    from visrecur.errors import InputError

    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    try:
        ours = is_ours(path)  # a link is judged by what it points to (replacing it removes only the link)
    except Exception:  # noqa: BLE001 (unreadable: not recognisably ours)
        ours = False
    if not ours:
        kind = "a folder" if path.is_dir() else "a file"
        raise InputError(f"{str(path)!r} is {kind} that is not a {what} made by visrecur; it is never replaced, "
                         f"not even with --overwrite: move it away or choose another {option}")
    if not overwrite:
        raise InputError(f"{str(path)!r} already exists; pass --overwrite to replace it or choose another {option}")
