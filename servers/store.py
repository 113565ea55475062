"""The results database: one SQLite file holding runs, their audit trails and their virtual worlds.

WAL mode and an explicit busy timeout let many server processes (and the harness) share one file; without the
timeout concurrent writers lose rows to "database is locked" (see docs/audit.md).
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["BUSY_TIMEOUT_MS", "DEFAULT_DB", "connect", "default_db_path", "now_iso", "transaction"]

DEFAULT_DB = "kpimcp.db"
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    scenario TEXT NOT NULL,
    scenario_version INTEGER NOT NULL,
    variant TEXT NOT NULL,
    model TEXT,
    bench_id TEXT,
    transport TEXT,
    client_name TEXT,
    client_version TEXT,
    protocol_version TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    head_seq INTEGER NOT NULL DEFAULT 0,
    head_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_scenario ON runs(scenario, variant);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    seq INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT,
    changes TEXT NOT NULL,
    client_name TEXT,
    client_version TEXT,
    protocol_version TEXT,
    transport TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS audit_run_seq ON audit(run_id, seq);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
CREATE TABLE IF NOT EXISTS world_state (
    run_id TEXT NOT NULL,
    space TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (run_id, space, key)
) WITHOUT ROWID;
"""


def default_db_path() -> Path:
    """`$KPIMCP_DB` if set, else `./kpimcp.db`."""
    return Path(os.environ.get("KPIMCP_DB") or DEFAULT_DB)


def now_iso() -> str:
    """UTC timestamp with microseconds, the format of every time column."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def connect(path: str | os.PathLike[str] | None = None) -> sqlite3.Connection:
    """Open (creating if needed) a results database with WAL, a busy timeout and the schema in place.

    The connection is in autocommit mode; writes group themselves with `transaction()`.
    """
    target = str(path) if path is not None else str(default_db_path())
    if target != ":memory:":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(_SCHEMA)
    return conn


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
