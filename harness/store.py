"""The harness's tables in the results database: benches, run outcomes, trajectories and model calls.

The audit schema (`kpimcp.servers.store`) owns `runs`; the harness adds columns to it (guarded `ALTER TABLE`)
and its own tables beside it, so one SQLite file holds a campaign's config, every run, every tool call and
every message. A *cell* is one planned run (model × scenario × version × variant × repeat); each try of a
cell is an *attempt* with its own run id, and starting a new attempt marks older ones `superseded_by` it, so
"current" runs (`superseded_by IS NULL`, the view `current_runs`) hold exactly one run per cell.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kpimcp.servers.audit import record_meta
from kpimcp.servers.runs import FAILED_STATUSES, INACTIVE_STATUSES, RUN_STATUSES, SCOREABLE_STATUSES
from kpimcp.servers.store import migrate, now_iso, transaction

__all__ = [
    "FAILED_STATUSES",
    "FINISHED_STATUSES",
    "INACTIVE_STATUSES",
    "RUN_STATUSES",
    "SCOREABLE_STATUSES",
    "BenchBusyError",
    "CellState",
    "TrajectoryRow",
    "cell_states",
    "ensure_schema",
    "finish_bench",
    "finish_run",
    "list_bench_runs",
    "list_benches",
    "load_model_calls",
    "load_trajectory",
    "mark_interrupted",
    "resolve_bench",
    "start_bench",
    "start_run_attempt",
]


# A cell whose current run ended in one of these is done: resuming skips it. A model that never acted would
# not act on a rerun either (it is a finding about the model, not a failure to retry).
FINISHED_STATUSES = (*SCOREABLE_STATUSES, *INACTIVE_STATUSES)

TRAJECTORY_KINDS = ("system", "user", "assistant", "reasoning", "tool_call", "tool_output")


class BenchBusyError(RuntimeError):
    """Another `kpimcp bench` process is writing this database right now."""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """The harness tables and `runs` columns are schema steps of the results database
    (`kpimcp.servers.migrations`); this applies any pending step (a no-op read when the file is current)."""
    migrate(conn)


# ---- benches -------------------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_bench(conn: sqlite3.Connection, bench_id: str, *, config: dict[str, Any], versions: dict[str, Any],
                manifest: dict[str, Any]) -> None:  # fmt: skip
    """Record a bench invocation; `BenchBusyError` if a live bench process on this host holds the database."""
    host = socket.gethostname()
    with transaction(conn):
        for row in conn.execute("SELECT bench_id, pid FROM benches WHERE finished_at IS NULL AND hostname = ?",
                                (host,)).fetchall():  # fmt: skip
            if row["pid"] and row["pid"] != os.getpid() and _pid_alive(row["pid"]):
                raise BenchBusyError(f"another kpimcp bench (pid {row['pid']}, {row['bench_id']}) is running on "
                                     "this database; wait for it to finish or use another --db")  # fmt: skip
        conn.execute(
            "INSERT INTO benches (bench_id, created_at, hostname, pid, config, versions, manifest)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (bench_id, now_iso(), host, os.getpid(), _dumps(config), _dumps(versions), _dumps(manifest)),
        )


def finish_bench(conn: sqlite3.Connection, bench_id: str, summary: dict[str, Any]) -> None:
    with transaction(conn):
        conn.execute("UPDATE benches SET finished_at = ?, summary = ? WHERE bench_id = ?",
                     (now_iso(), _dumps(summary), bench_id))  # fmt: skip


# ---- cells and attempts --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellState:
    """The current attempt of a cell: its run id and status."""

    cell: str
    run_id: str
    status: str
    attempt: int


def cell_states(conn: sqlite3.Connection, cells: Iterable[str]) -> dict[str, CellState]:
    """The current attempt of each named cell that has one."""
    wanted = set(cells)
    rows = conn.execute("SELECT cell, run_id, status, attempt FROM runs WHERE cell IS NOT NULL"
                        " AND superseded_by IS NULL").fetchall()  # fmt: skip
    return {r["cell"]: CellState(r["cell"], r["run_id"], r["status"], r["attempt"] or 1)
            for r in rows if r["cell"] in wanted}  # fmt: skip


def mark_interrupted(conn: sqlite3.Connection, run_ids: Sequence[str]) -> int:
    """Close runs left `open` by a bench process that died (killed, crashed, power loss) as `infra_error`."""
    if not run_ids:
        return 0
    msg = "interrupted: the bench process stopped before this run finished"
    closed = 0
    with transaction(conn):
        for run_id in run_ids:
            cur = conn.execute(
                "UPDATE runs SET status = 'infra_error', error = ?, updated_at = ?,"
                " finished_at = COALESCE(finished_at, ?) WHERE run_id = ? AND status = 'open'",
                (msg, now_iso(), now_iso(), run_id))  # fmt: skip
            if cur.rowcount:
                record_meta(conn, run_id, event="status")  # the status is run metadata: keep the chain in step
                closed += 1
    return closed


def start_run_attempt(conn: sqlite3.Connection, run_id: str, *, cell: str, repeat: int) -> int:
    """Tag a freshly created run row with its cell, supersede the cell's older attempts; returns the attempt no."""
    with transaction(conn):
        prev = conn.execute("SELECT COALESCE(MAX(attempt), 0) FROM runs WHERE cell = ?", (cell,)).fetchone()[0]
        conn.execute("UPDATE runs SET superseded_by = ? WHERE cell = ? AND run_id != ? AND superseded_by IS NULL",
                     (run_id, cell, run_id))  # fmt: skip
        conn.execute("UPDATE runs SET cell = ?, attempt = ?, repeat = ?, started_at = ? WHERE run_id = ?",
                     (cell, prev + 1, repeat, now_iso(), run_id))  # fmt: skip
    return prev + 1


# ---- finishing a run -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrajectoryRow:
    """One trajectory item as stored (content is text; tool arguments and outputs as JSON text)."""

    kind: str
    content: str
    role: str | None = None
    name: str | None = None
    call_id: str | None = None
    created_at: str | None = None


def finish_run(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    status: str,
    error: str | None,
    usage: dict[str, Any],
    duration_ms: float,
    turns: int,
    trajectory: Sequence[TrajectoryRow],
    model_calls: Sequence[dict[str, Any]],
) -> None:
    """Write a run's outcome, trajectory and model calls in one transaction (all or nothing)."""
    if status not in RUN_STATUSES or status == "open":
        raise ValueError(f"cannot finish run {run_id} with status {status!r}")
    ts = now_iso()
    with transaction(conn):
        conn.execute("DELETE FROM trajectory_items WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM model_calls WHERE run_id = ?", (run_id,))
        conn.executemany(
            "INSERT INTO trajectory_items (run_id, idx, kind, role, name, call_id, content, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, i, t.kind, t.role, t.name, t.call_id, t.content, t.created_at or ts)
             for i, t in enumerate(trajectory)],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO model_calls (run_id, idx, started_at, finished_at, duration_ms, attempts, status, error,"
            " input_tokens, output_tokens, reasoning_tokens, cached_tokens, finish_reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, i, c["started_at"], c["finished_at"], c["duration_ms"], c["attempts"], c["status"],
              c.get("error"), c.get("input_tokens"), c.get("output_tokens"), c.get("reasoning_tokens"),
              c.get("cached_tokens"), c.get("finish_reason")) for i, c in enumerate(model_calls)],
        )  # fmt: skip
        conn.execute(
            "UPDATE runs SET status = ?, error = ?, usage = ?, duration_ms = ?, turns = ?, finished_at = ?,"
            " updated_at = ? WHERE run_id = ?",
            (status, error, _dumps(usage), duration_ms, turns, ts, ts, run_id),
        )
        record_meta(conn, run_id, event="status")


# ---- reading -------------------------------------------------------------------------------------------------
def load_trajectory(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    """A run's trajectory in order: dicts with idx, kind, role, name, call_id, content, created_at.

    `[]` for runs without one (product runs served by `kpimcp serve`, or a database the harness never wrote).
    """
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'trajectory_items'").fetchone() is None:
        return []
    rows = conn.execute("SELECT idx, kind, role, name, call_id, content, created_at FROM trajectory_items"
                        " WHERE run_id = ? ORDER BY idx", (run_id,)).fetchall()  # fmt: skip
    return [dict(r) for r in rows]


def load_model_calls(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    """A run's model requests in order, with timings, attempts and token counts."""
    rows = conn.execute("SELECT * FROM model_calls WHERE run_id = ? ORDER BY idx", (run_id,)).fetchall()
    return [dict(r) for r in rows]


def resolve_bench(conn: sqlite3.Connection, bench: str | None) -> str | None:
    """A `--bench` value as a bench id (`latest` = the most recent); `LookupError` naming it if unknown."""
    if not bench:
        return None
    ensure_schema(conn)
    if bench == "latest":
        row = conn.execute("SELECT bench_id FROM benches ORDER BY created_at DESC LIMIT 1").fetchone()
    else:
        row = conn.execute("SELECT bench_id FROM benches WHERE bench_id = ?", (bench,)).fetchone()
    if row is None:
        raise LookupError(f"no bench {bench!r} in this database; `kpimcp benches` lists them")
    return str(row[0])


def list_benches(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every bench invocation, oldest first: id, times, models, scenarios, variants, planned cells and the
    statuses of the current runs of those cells (a resumed campaign's cells count once, with their latest run)."""
    ensure_schema(conn)
    out = []
    for b in conn.execute("SELECT * FROM benches ORDER BY created_at").fetchall():
        config = json.loads(b["config"] or "{}")
        manifest = json.loads(b["manifest"] or "{}")
        statuses = dict(conn.execute(
            "SELECT r.status, COUNT(*) FROM runs r WHERE r.superseded_by IS NULL AND (r.cell IN (SELECT c.value FROM"
            " json_each(?, '$.cells') c) OR r.bench_id = ?) GROUP BY r.status",
            (b["manifest"] or "{}", b["bench_id"])).fetchall())  # fmt: skip
        models = [m["spec"] for m in config.get("models") or []] or ["reference:compliant", "reference:violating"]
        out.append({"bench_id": b["bench_id"], "created_at": b["created_at"], "finished_at": b["finished_at"],
                    "models": models, "scenarios": sorted(str(sc.get("id")) for sc in manifest.get("scenarios") or []),
                    "variants": config.get("variants") or [], "repeats": config.get("repeats"),
                    "cells": len(manifest.get("cells") or []), "statuses": statuses,
                    "summary": json.loads(b["summary"]) if b["summary"] else None})  # fmt: skip
    return out


def list_bench_runs(conn: sqlite3.Connection, *, bench_id: str | None = None,
                    current_only: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Runs with their harness columns (usage decoded), oldest first; optionally one bench's or current only."""
    ensure_schema(conn)
    sql, args = "SELECT *, head_seq AS calls FROM runs WHERE 1 = 1", []
    if bench_id:
        sql, args = sql + " AND bench_id = ?", [bench_id]
    if current_only:
        sql += " AND superseded_by IS NULL"
    out = []
    for r in conn.execute(sql + " ORDER BY created_at, run_id", args).fetchall():
        row = dict(r)
        row["usage"] = json.loads(row["usage"]) if row.get("usage") else None
        out.append(row)
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
