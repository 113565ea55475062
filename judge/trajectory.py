"""A run's trajectory as judges read it: system prompt, task, messages, reasoning, tool calls and results.

Harness runs store their trajectory in `trajectory_items` (written by `kpimcp bench`). Runs made by external
agent products have none; for them the trajectory is rebuilt from what the server knows: the task prompt it
offered and the audited tool calls with their results.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from kpimcp.servers.audit import read_rows

__all__ = ["TrajectoryItem", "load_trajectory", "trajectory_from_audit", "trajectory_or_audit"]


@dataclass(frozen=True)
class TrajectoryItem:
    """One step: kind is system | user | assistant | reasoning | tool_call | tool_output."""

    idx: int
    kind: str
    content: str
    role: str | None = None
    name: str | None = None
    call_id: str | None = None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _coerce(i: int, item: Any) -> TrajectoryItem:
    get = item.get if isinstance(item, dict) else (lambda k, d=None: getattr(item, k, d))
    return TrajectoryItem(idx=int(get("idx", i) if get("idx", i) is not None else i), kind=str(get("kind", "")),
                          content=_text(get("content")), role=get("role"), name=get("name"),
                          call_id=get("call_id"))  # fmt: skip


def load_trajectory(conn: sqlite3.Connection, run_id: str) -> list[TrajectoryItem]:
    """The stored trajectory of a harness run, in order ([] when the run has none)."""
    try:
        from kpimcp.harness.store import load_trajectory as harness_load  # the harness owns the table
    except ImportError:
        harness_load = None
    if harness_load is not None:
        return [_coerce(i, it) for i, it in enumerate(harness_load(conn, run_id))]
    has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'trajectory_items'")
    if has_table.fetchone() is None:
        return []
    rows = conn.execute("SELECT idx, kind, role, name, call_id, content FROM trajectory_items WHERE run_id = ?"
                        " ORDER BY idx", (run_id,)).fetchall()  # fmt: skip
    return [_coerce(i, dict(r)) for i, r in enumerate(rows)]


def trajectory_from_audit(conn: sqlite3.Connection, run_id: str) -> list[TrajectoryItem]:
    """A trajectory rebuilt from the scenario's prompts and the audit rows (for runs with no stored trajectory)."""
    from kpimcp.scenarios import ScenarioError
    from kpimcp.scenarios import load as load_scenario

    run = conn.execute("SELECT scenario, variant FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    items: list[TrajectoryItem] = []
    if run is not None:
        try:
            scenario = load_scenario(run["scenario"])
            items.append(TrajectoryItem(0, "system", scenario.spec.system_prompt.strip(), role="system"))
            items.append(TrajectoryItem(1, "user", scenario.task(run["variant"]), role="user"))
        except ScenarioError:
            pass
    for row in read_rows(conn, run_id):
        call_id = f"audit-{row.seq}"
        items.append(TrajectoryItem(len(items), "tool_call", _text(row.arguments), name=row.tool, call_id=call_id))
        out = row.result if row.status == "ok" else f"[{row.status}] {row.error or ''}"
        items.append(TrajectoryItem(len(items), "tool_output", _text(out), name=row.tool, call_id=call_id))
    return items


def trajectory_or_audit(conn: sqlite3.Connection, run_id: str) -> tuple[list[TrajectoryItem], str]:
    """The stored trajectory, else the one rebuilt from the audit; with its origin ('trajectory' or 'audit')."""
    items = load_trajectory(conn, run_id)
    if any(it.kind in ("tool_call", "assistant") for it in items):
        return items, "trajectory"
    return trajectory_from_audit(conn, run_id), "audit"
