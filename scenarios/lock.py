"""Versions by content: a scenario folder's digest, and the lock file that ties it to the declared version.

`version.lock` records the version and digest a scenario was last locked at (`kpimcp scenarios lock`). When
the folder's content changes, the digest no longer matches: `kpimcp scenarios check` then fails until the
author bumps `version` and locks again, so results never carry a version that stands for two contents.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import NamedTuple

__all__ = ["LOCK_FILE", "Lock", "folder_digest", "lock_problem", "read_lock", "write_lock"]

LOCK_FILE = "version.lock"
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}


class Lock(NamedTuple):
    version: int
    digest: str


def _files(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and not _SKIP_DIRS & set(rel.parts) and rel.as_posix() != LOCK_FILE and p.suffix != ".pyc":
            out.append(p)
    return out


def folder_digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes (the lock file and caches excluded)."""
    h = hashlib.sha256()
    for p in _files(folder):
        data = p.read_bytes()
        h.update(f"{p.relative_to(folder).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return "sha256:" + h.hexdigest()


def read_lock(folder: Path) -> Lock | None:
    path = folder / LOCK_FILE
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return Lock(int(data["version"]), str(data["digest"]))
    except (tomllib.TOMLDecodeError, KeyError, ValueError, TypeError):
        return None


def write_lock(folder: Path, version: int) -> Lock:
    """Record the folder's current digest for `version`."""
    lock = Lock(version, folder_digest(folder))
    (folder / LOCK_FILE).write_text(
        "# Written by `kpimcp scenarios lock`: the content this version stands for. Do not edit by hand.\n"
        f'version = {lock.version}\ndigest = "{lock.digest}"\n',
        encoding="utf-8",
    )
    return lock


def lock_problem(scenario_id: str, folder: Path, version: int) -> str | None:
    """One sentence when the folder's content and its declared version disagree with the lock, else None."""
    lock = read_lock(folder)
    if lock is None:
        return f"{scenario_id} has no valid {LOCK_FILE}: run `kpimcp scenarios lock {scenario_id}`"
    if lock.digest == folder_digest(folder):
        if lock.version != version:
            return (f"{scenario_id}: version {version} is not locked (the lock says {lock.version}): "
                    f"run `kpimcp scenarios lock {scenario_id}`")
        return None
    if lock.version == version:
        return (f"{scenario_id}: its content changed since version {version} was locked: bump `version` in "
                f"scenario.toml, then run `kpimcp scenarios lock {scenario_id}`")
    return f"{scenario_id}: version {version} is not locked yet: run `kpimcp scenarios lock {scenario_id}`"
