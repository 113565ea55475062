"""The results database: one SQLite file holding runs, their audit trails and their virtual worlds.

Two ways in. Writers (`connect`) create the file if needed, switch it to WAL and apply pending schema steps
(`kpimcp.servers.migrations`). Readers (`open_readonly`) open an existing file read-only and change nothing —
no WAL switch, no schema, no trigger — so they also work on read-only media. Both refuse, with one sentence
(`UnusableDatabase`), a file that is not a kpimcp results database, a damaged one, or one from a newer kpimcp.

WAL mode and an explicit busy timeout let many server processes (and the harness) share one file; without the
timeout concurrent writers lose rows to "database is locked" (see docs/audit.md).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .migrations import SCHEMA_VERSION, STEPS, applied_steps, pending_steps

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DEFAULT_DB",
    "SCHEMA_VERSION",
    "UnusableDatabase",
    "connect",
    "database_info",
    "default_db_path",
    "migrate",
    "now_iso",
    "open_readonly",
    "read_snapshot",
    "schema_version",
    "transaction",
    "upgrade",
]

DEFAULT_DB = "kpimcp.db"
BUSY_TIMEOUT_MS = 30_000
# Smaller WAL after checkpoints: a large call's pages are not kept a second time in an idle WAL file.
_JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024


class UnusableDatabase(LookupError):
    """The file cannot be used as a results database; the message is one sentence naming it and why."""


def default_db_path() -> Path:
    """`$KPIMCP_DB` if set, else `./kpimcp.db`."""
    return Path(os.environ.get("KPIMCP_DB") or DEFAULT_DB)


_SECOND: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """UTC timestamp with microseconds, the format of every time column (`datetime.isoformat`'s, `+00:00`)."""
    # Two per audited call, on the path the reply waits for: the date and time of day are formatted once a second.
    global _SECOND
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    cached, text = _SECOND
    if second != cached:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _SECOND = (second, text)
    return f"{text}.{micro:06d}+00:00"


# ---- what a file is, before SQLite touches it -------------------------------------------------------------------
def _check_file(path: Path, *, must_exist: bool) -> bool:
    """Raise `UnusableDatabase` for a path that cannot hold a results database; True if the file exists.

    Only `stat`: opening and closing the file here would drop the POSIX locks SQLite connections of this process
    hold on it (another process could then delete the WAL under them).
    """
    if path.is_dir():
        raise UnusableDatabase(f"{path} is a directory, not a results database file")
    if not path.exists():
        if not path.parent.is_dir():
            raise UnusableDatabase(f"no results database at {path}: the directory {path.parent} does not exist")
        if must_exist:
            raise UnusableDatabase(f"no results database at {path}; run `kpimcp bench` or `kpimcp serve` first, "
                                   "or pass --db")  # fmt: skip
        return False
    if must_exist and path.stat().st_size == 0:
        raise UnusableDatabase(f"{path} is an empty file, not a kpimcp results database")
    return True


def _check_size(conn: sqlite3.Connection, path: object) -> None:
    """A file shorter than the pages its header counts was truncated (checked only without a WAL beside it:
    while a checkpoint copies pages back, the header may run ahead of the size)."""
    if str(path) == ":memory:":
        return
    file = Path(str(path))
    wal = Path(f"{file}-wal")
    if wal.exists() and wal.stat().st_size:
        return
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    if pages and file.stat().st_size < pages * size:
        raise UnusableDatabase(f"{file} is damaged: it is shorter than its header says (truncated?)")


def _kind(conn: sqlite3.Connection, path: object) -> str:
    """'kpimcp', 'legacy' (a kpimcp file from before versioning) or 'empty'; refuses anything else."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        _check_size(conn, path)
        if applied_steps(conn):
            return "kpimcp"
    except sqlite3.OperationalError as exc:
        raise UnusableDatabase(f"cannot open {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise _unusable(path, exc) from None
    if {"runs", "audit"} <= tables:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
        if {"head_seq", "head_hash"} <= cols:
            return "legacy"
    if not tables:
        return "empty"
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    raise UnusableDatabase(f"{path} is not a kpimcp results database (it holds other tables: {shown}); "
                           "pass another --db")  # fmt: skip


def _unusable(path: object, exc: sqlite3.DatabaseError) -> UnusableDatabase:
    if "not a database" in str(exc):
        return UnusableDatabase(f"{path} is not a kpimcp results database (not an SQLite file)")
    return UnusableDatabase(f"{path} is damaged ({exc})")


def _pragmas(conn: sqlite3.Connection) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")


# ---- writers --------------------------------------------------------------------------------------------------
def connect(path: str | os.PathLike[str] | None = None) -> sqlite3.Connection:
    """Open for writing (creating it, and its directory, if needed) a results database: WAL, busy timeout, and
    every pending schema step applied. `UnusableDatabase` for a file that is not one.

    The connection is in autocommit mode; writes group themselves with `transaction()`.
    """
    conn = _open_writer(str(path) if path is not None else str(default_db_path()), must_exist=False)
    _guarded(migrate, conn)
    return conn


def upgrade(path: str | os.PathLike[str]) -> list[str]:
    """Apply pending schema steps to an existing results database in place; returns the steps applied."""
    conn = _open_writer(str(path), must_exist=True)
    try:
        return _guarded(migrate, conn)
    finally:
        conn.close()


def _guarded(fn: Any, conn: sqlite3.Connection) -> Any:
    try:
        return fn(conn)
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc) or "unable to open" in str(exc):
            raise UnusableDatabase(f"cannot write the results database {_db_name(conn)}: {exc}") from None
        raise


def _open_writer(target: str, *, must_exist: bool) -> sqlite3.Connection:
    if target != ":memory:":
        file = Path(target)
        if not must_exist and not file.exists() and not file.parent.exists():
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UnusableDatabase(f"cannot create the directory {file.parent}: {exc.strerror or exc}") from None
        if _check_file(file, must_exist=must_exist) and not (os.access(file, os.W_OK)
                                                             and os.access(file.parent, os.W_OK)):  # fmt: skip
            raise UnusableDatabase(f"cannot write the results database {file}: it (or its directory) is read-only; "
                                   "reading commands still work")  # fmt: skip
    try:
        conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        _pragmas(conn)
        if _kind(conn, target) == "empty" and must_exist:
            raise UnusableDatabase(f"{target} is an empty SQLite database, not a kpimcp results database")
        _switch_to_wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA journal_size_limit={_JOURNAL_SIZE_LIMIT}")
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc) or "unable to open" in str(exc):
            raise UnusableDatabase(f"cannot write the results database {target}: {exc}") from None
        raise
    except sqlite3.DatabaseError as exc:
        raise _unusable(target, exc) from None
    return conn


def _switch_to_wal(conn: Any, *, timeout: float = BUSY_TIMEOUT_MS / 1000) -> None:
    """Put the file in WAL mode (an in-memory database stays in memory mode).

    Writers opening a new file together race to switch it, and SQLite can then answer "database is locked" at
    once, without calling the busy handler (measured: 2 of 3,000 openings by 12 threads starting together), so
    the switch is retried until the busy timeout like every other lock wait.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] in ("wal", "memory"):
                return
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
        else:  # the mode could not change (SQLite then reports the old one): as busy
            if time.monotonic() >= deadline:
                raise sqlite3.OperationalError("database is locked (could not switch it to WAL mode)")
        time.sleep(0.005)


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending schema steps (none: a single read). Returns the steps applied.

    Runs them in one `BEGIN IMMEDIATE` transaction, re-checked under the lock, so concurrent writers opening
    one file apply each step once. `UnusableDatabase` if the file is newer than this code.
    """
    todo = _pending(conn)
    if not todo:
        return []
    with transaction(conn):
        todo = _pending(conn)
        if todo:
            STEPS.apply(conn)
    return todo


def _pending(conn: sqlite3.Connection) -> list[str]:
    try:
        return pending_steps(applied_steps(conn))
    except ValueError as exc:
        raise UnusableDatabase(f"{_db_name(conn)}: {exc}") from None


def _db_name(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return row[2] if row is not None and row[2] else "the results database"


def schema_version(conn: sqlite3.Connection) -> int:
    """How many schema steps the file has applied (0: unversioned or new)."""
    return len(applied_steps(conn))


# ---- readers --------------------------------------------------------------------------------------------------
def open_readonly(path: str | os.PathLike[str], *, allow_older: bool = False) -> sqlite3.Connection:
    """Open an existing results database read-only, changing nothing (read-only media included).

    `UnusableDatabase` (one sentence) if the file is missing, not a kpimcp results database, damaged, newer
    than this code, or older (a writer — `kpimcp db upgrade` — upgrades it in place) unless `allow_older`.
    """
    file = Path(path)
    _check_file(file, must_exist=True)
    conn = _open_ro(file)
    try:
        kind = _kind(conn, file)
        if kind == "empty":
            raise UnusableDatabase(f"{file} is an empty SQLite database, not a kpimcp results database")
        todo = _pending(conn)
    except BaseException:
        conn.close()
        raise
    if todo and not allow_older:
        conn.close()
        raise UnusableDatabase(f"{file} has an older schema (version {SCHEMA_VERSION - len(todo)}, this kpimcp "
                               f"reads {SCHEMA_VERSION}); upgrade it in place with `kpimcp db upgrade --db {file}`")
    return conn


def _open_ro(file: Path) -> sqlite3.Connection:
    uri = f"file:{quote(str(file.resolve()))}"
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)  # fmt: skip
    _pragmas(conn)
    conn.execute("PRAGMA query_only=ON")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        # A WAL file on read-only media with no -shm beside it: nobody can be writing it, so read it as immutable.
        conn.close()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _unusable(file, exc) from None
    conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None, check_same_thread=False)
    _pragmas(conn)
    return conn


def database_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Schema version (of the file, and what this code reads) and row counts per table, read-only."""
    conn = open_readonly(path, allow_older=True)
    try:
        with read_snapshot(conn):
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE"
                                                 " 'sqlite_%' ORDER BY name")]  # fmt: skip
            counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
            return {"schema_version": schema_version(conn), "supported": SCHEMA_VERSION, "steps": applied_steps(conn),
                    "tables": counts}  # fmt: skip
    finally:
        conn.close()


@contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One consistent view for several queries: a read transaction, ended without writing anything."""
    if conn.in_transaction:  # already inside the caller's transaction: that is the snapshot
        yield conn
        return
    conn.execute("BEGIN DEFERRED")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # starts the read: the snapshot is fixed here
        yield conn
    finally:
        conn.execute("ROLLBACK")


class transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT`, or `ROLLBACK` on error.

    IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading a read lock.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
