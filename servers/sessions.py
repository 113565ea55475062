"""Operator sessions: product runs that an operator opens, that end, and that then get scored.

A session is a run with no bench: `kpimcp session new` creates it (labelled with the product, e.g. "Claude
Desktop 1.x") and says how to connect; it closes when the product submits, when the operator closes it, after
an idle time, or when the server serving it ends. Closing turns `open` into `closed` (scoreable) when the run
made at least one tool call, and into `empty` (no observation; kept out of every report) when it made none.
The `sessions` table holds what the runs table does not: the label, how to connect, when and why it closed.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kpimcp.scenarios import Scenario

from .audit import record_meta
from .runs import CLOSED_STATUS, EMPTY_STATUS, create_run, get_run
from .store import migrate, now_iso, transaction

__all__ = [
    "CLOSE_REASONS",
    "DEFAULT_IDLE_SECONDS",
    "ClosedSessionError",
    "IdleCloser",
    "Session",
    "close_run",
    "ensure_schema",
    "list_sessions",
    "new_session",
    "prepare_stdio_run",
    "stdio_command",
]

DEFAULT_IDLE_SECONDS = 1800.0
CLOSE_REASONS = ("submitted", "operator", "idle", "server_end")

class ClosedSessionError(ValueError):
    """A stdio server was started for a run that has already ended: its evidence must not change."""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """The sessions table is a schema step of the results database (`kpimcp.servers.migrations`); this applies
    any pending step (a no-op read when the file is current, so readers may call it)."""
    migrate(conn)


@dataclass(frozen=True)
class Session:
    """What `kpimcp session new` prints: the run, the task to paste and the two ways to connect."""

    run_id: str
    scenario: str
    variant: str
    agent: str | None
    server_name: str
    db: str
    task: str
    stdio_command: list[str]
    http_serve_command: list[str]
    url: str
    token: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stdio_command(scenario: Scenario, variant: str, db: Path, run_id: str) -> list[str]:
    """The command a client launches to serve this run on stdio: absolute paths, nothing taken from PATH."""
    return [sys.executable, "-m", "kpimcp.harness.cli", "serve", _scenario_ref(scenario), "--variant", variant,
            "--db", str(db.resolve()), "--run-id", run_id]  # fmt: skip


def _scenario_ref(scenario: Scenario) -> str:
    from kpimcp.scenarios import ids
    from kpimcp.scenarios.loader import root

    installed = scenario.id in ids() and Path(scenario.folder).resolve().parent == root().resolve()
    return scenario.id if installed else str(Path(scenario.folder).resolve())


def new_session(
    conn: sqlite3.Connection,
    scenario: Scenario,
    variant: str,
    db: Path,
    *,
    agent: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    run_id: str | None = None,
) -> Session:
    """Create a fresh run for an agent product and return how to connect it (stdio command, HTTP URL)."""
    from .server import prompt_text, workspace_name

    if run_id is not None and conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
        raise ValueError(f"run {run_id} already exists; a session is always a fresh run")
    run_id = create_run(conn, scenario, variant, run_id=run_id, transport="session", model=agent)
    ensure_schema(conn)
    with transaction(conn):
        conn.execute("INSERT INTO sessions (run_id, agent, transport, created_at) VALUES (?, ?, ?, ?)",
                     (run_id, agent, "session", now_iso()))  # fmt: skip
    serve = [*stdio_command(scenario, variant, db, run_id)[:-2], "--http", "--host", host, "--port", str(port)]
    if token:
        serve += ["--token", token]
    return Session(run_id=run_id, scenario=scenario.id, variant=variant, agent=agent,
                   server_name=workspace_name(scenario), db=str(db.resolve()), task=prompt_text(scenario, variant),
                   stdio_command=stdio_command(scenario, variant, db, run_id), http_serve_command=serve,
                   url=f"http://{host}:{port}/mcp/{run_id}", token=token)  # fmt: skip


def close_run(conn: sqlite3.Connection, run_id: str, reason: str, note: str | None = None) -> str | None:
    """Close an open product run: `closed` if it made a tool call, else `empty`. Returns the new status.

    Returns None when the run was not open any more (closing twice, or a concurrent close, changes nothing).
    Raises `ValueError` for a bench run: the harness finishes those, and a crashed bench run must never become
    scoreable by being closed.
    """
    if reason not in CLOSE_REASONS:
        raise ValueError(f"unknown close reason {reason!r}; use one of {', '.join(CLOSE_REASONS)}")
    run = get_run(conn, run_id)
    if run.get("bench_id"):
        raise ValueError(f"run {run_id} belongs to bench {run['bench_id']}; the bench closes its runs itself")
    ensure_schema(conn)
    ts = now_iso()
    with transaction(conn):
        row = conn.execute("SELECT status, head_seq FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row["status"] != "open":
            return None
        status = CLOSED_STATUS if row["head_seq"] > 0 else EMPTY_STATUS
        conn.execute("UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?", (status, ts, run_id))
        record_meta(conn, run_id, event="status")  # the status is run metadata: its chain records the change
        conn.execute("INSERT INTO sessions (run_id, created_at) VALUES (?, ?) ON CONFLICT(run_id) DO NOTHING",
                     (run_id, run["created_at"]))  # fmt: skip
        conn.execute("UPDATE sessions SET closed_at = ?, close_reason = ?, close_note = ? WHERE run_id = ?",
                     (ts, reason, note, run_id))  # fmt: skip
    return status


def prepare_stdio_run(conn: sqlite3.Connection, run_id: str | None) -> None:
    """Before a stdio server serves `run_id`: reopen it if it ended only because its server ended (empty, or a
    client relaunching its server mid-session); refuse it if it ended for good (submitted, closed by the
    operator, idle), so that a new chat never adds its calls to a finished run."""
    if run_id is None:
        return
    ensure_schema(conn)
    row = conn.execute("SELECT r.status, r.bench_id, s.close_reason FROM runs r LEFT JOIN sessions s"
                       " ON s.run_id = r.run_id WHERE r.run_id = ?", (run_id,)).fetchone()  # fmt: skip
    if row is None or row["status"] == "open" or row["bench_id"]:
        return
    if row["status"] == EMPTY_STATUS or (row["status"] == CLOSED_STATUS and row["close_reason"] == "server_end"):
        with transaction(conn):
            conn.execute("UPDATE runs SET status = 'open', updated_at = ? WHERE run_id = ? AND status = ?",
                         (now_iso(), run_id, row["status"]))  # fmt: skip
            record_meta(conn, run_id, event="reopened")
            conn.execute("UPDATE sessions SET closed_at = NULL, close_reason = NULL, close_note = NULL"
                         " WHERE run_id = ?", (run_id,))  # fmt: skip
        return
    how = row["close_reason"] or row["status"]
    raise ClosedSessionError(f"run {run_id} has ended ({row['status']}, {how}); start a new session with "
                             "`kpimcp session new` or `kpimcp install`")  # fmt: skip


def list_sessions(conn: sqlite3.Connection, *, include_closed: bool = True) -> list[dict[str, Any]]:
    """Product runs (no bench), oldest first, with label, status, calls and how they closed."""
    ensure_schema(conn)
    sql = ("SELECT r.run_id, r.scenario, r.variant, r.status, r.head_seq AS calls, r.created_at, r.updated_at,"
           " COALESCE(s.agent, r.model) AS agent, r.client_name, r.client_version, s.closed_at, s.close_reason,"
           " s.close_note FROM runs r LEFT JOIN sessions s ON s.run_id = r.run_id WHERE r.bench_id IS NULL")
    if not include_closed:
        sql += " AND r.status = 'open'"
    return [dict(r) for r in conn.execute(sql + " ORDER BY r.created_at, r.run_id").fetchall()]


def _idle_for(updated_at: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(updated_at)).total_seconds()


class IdleCloser:
    """A daemon thread closing this process's product runs that made calls and then stayed idle too long.

    It has its own connection (sqlite3 connections are not shared across threads here) and only ever touches
    the runs `run_ids()` names, i.e. the ones this server is serving.
    """

    def __init__(self, db_path: Path | str, run_ids: Any, idle_seconds: float, *, interval: float | None = None):
        self.db_path, self.run_ids, self.idle_seconds = db_path, run_ids, idle_seconds
        self.interval = interval if interval is not None else max(0.2, min(30.0, idle_seconds / 4))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kpimcp-idle-close", daemon=True)

    def start(self) -> IdleCloser:
        if self.idle_seconds > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        from .store import connect

        conn = connect(self.db_path)
        try:
            while not self._stop.wait(self.interval):
                self.check(conn)
        finally:
            conn.close()

    def check(self, conn: sqlite3.Connection) -> list[str]:
        """Close every served run idle for longer than the limit; returns the ids closed."""
        closed = []
        for run_id in list(self.run_ids()):
            row = conn.execute("SELECT status, head_seq, updated_at, bench_id FROM runs WHERE run_id = ?",
                               (run_id,)).fetchone()  # fmt: skip
            if row is None or row["status"] != "open" or row["bench_id"] or row["head_seq"] == 0:
                continue
            if _idle_for(row["updated_at"]) >= self.idle_seconds:
                try:
                    if close_run(conn, run_id, "idle", f"no tool call for {self.idle_seconds:g} s"):
                        closed.append(run_id)
                except sqlite3.Error as exc:  # retried at the next tick
                    print(f"kpimcp: could not close idle run {run_id}: {exc}", file=sys.stderr)
        return closed
