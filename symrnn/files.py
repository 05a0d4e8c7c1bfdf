"""Writing output files atomically: a failed command leaves no partial file behind.

An output that already exists must be a regular file symrnn may write: a symbolic link, a FIFO,
a device or a read-only file is refused (replacing it would change what the link, pipe or
device is, or override the user's protection).  Errors name the user's path, never the
temporary file's.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import SymrnnError

__all__ = ["write_atomic", "write_all", "check_output"]

# Temporary files are named .symrnn-XXXXXXXX.tmp whatever the output is called, so that an
# output name of up to the file system's limit (255 bytes) still works.
_PREFIX, _SUFFIX = ".symrnn-", ".tmp"


def check_output(path: str | Path) -> Path:
    """``path`` as a Path if it may be written; otherwise a one-line :class:`SymrnnError`.

    >>> check_output("")
    Traceback (most recent call last):
    ...
    symrnn.errors.SymrnnError: the output file name is empty; give a name such as notes.tex
    """
    if str(path) == "":
        raise SymrnnError("the output file name is empty; give a name such as notes.tex")
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise SymrnnError(f"cannot use {str(path)!r} as output: {exc.strerror}") from None
    kind = info.st_mode
    problem = ""
    if stat.S_ISLNK(kind):
        problem = "is a symbolic link (symrnn would replace the link, not write its target)"
    elif stat.S_ISDIR(kind):
        problem = "is a folder"
    elif not stat.S_ISREG(kind):
        problem = "is not a regular file (a pipe, device or socket)"
    elif not kind & stat.S_IWUSR or not os.access(path, os.W_OK):
        problem = "is read-only"
    if problem:
        raise SymrnnError(f"the output {str(path)!r} {problem}; write to another file name")
    return path


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    return write_all([(path, data)])[0]


def write_all(outputs: Sequence[tuple[str | Path, str | bytes]]) -> list[Path]:
    """Write several files, all or none: if one cannot be written, none is left behind.

    Every target is checked first (:func:`check_output`), every file is written to a temporary
    name, and only then are they renamed into place; a failure (or an interrupt) at any point
    removes the temporaries and the files already renamed.
    """
    targets = [check_output(path) for path, _ in outputs]
    staged: list[tuple[str, Path]] = []
    placed: list[Path] = []
    try:
        for target, (_, data) in zip(targets, outputs, strict=True):
            staged.append((_stage(target, data), target))
        for tmp, target in staged:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, str(target)) from None
            placed.append(target)
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        for target in placed:
            target.unlink(missing_ok=True)
        raise
    return targets


def _stage(target: Path, data: str | bytes) -> str:
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=_PREFIX, suffix=_SUFFIX, dir=folder)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror, str(target)) from None
        raise
    return tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
