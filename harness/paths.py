"""Checking, before any work, that a command can write where it was told to (a sentence instead of a traceback)."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

__all__ = ["UnwritablePath", "writable_dir"]

_WHY = {errno.EACCES: "permission denied", errno.EPERM: "not permitted", errno.EROFS: "read-only file system",
        errno.ENOSPC: "no space left", errno.ENOTDIR: "part of the path is a file, not a folder"}  # fmt: skip


class UnwritablePath(ValueError):
    """A folder a command must write into cannot be created or written."""


def _reason(exc: OSError) -> str:
    return _WHY.get(exc.errno or 0, exc.strerror or type(exc).__name__)


def writable_dir(path: Path, what: str = "output folder") -> Path:
    """`path`, created if missing, once a file could be written in it; else `UnwritablePath` with a sentence."""
    if path.exists() and not path.is_dir():
        raise UnwritablePath(f"the {what} {path} is a file, not a folder; pass another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise UnwritablePath(f"cannot write into the {what} {path}: {_reason(exc)}; pass a writable path") from None
    return Path(os.fspath(path))
