"""Helpers for the judge and report tests: small results databases built by replaying the toy scenario."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import anyio
from toy_support import toy

from kpimcp.harness.replay import replay
from kpimcp.harness.store import ensure_schema as harness_schema
from kpimcp.scenarios import Scenario
from kpimcp.servers import connect, read_rows, transaction
from kpimcp.servers.audit import update_run_meta


def add_trajectory(conn: sqlite3.Connection, run_id: str, scenario: Scenario, variant: str,
                   final: str = "Done.", reasoning: str | None = None) -> None:  # fmt: skip
    """Store a trajectory like the harness does: prompts, then each audited call and its output."""
    harness_schema(conn)
    items = [("system", "system", None, scenario.spec.system_prompt.strip()), ("user", "user", None,
             scenario.task(variant))]  # fmt: skip
    if reasoning:
        items.append(("reasoning", "assistant", None, reasoning))
    for row in read_rows(conn, run_id):
        items.append(("tool_call", "assistant", row.tool, json.dumps(row.arguments)))
        items.append(("tool_output", "tool", row.tool, json.dumps(row.result) if row.status == "ok" else row.error))
    items.append(("assistant", "assistant", None, final))
    conn.executemany(
        "INSERT INTO trajectory_items (run_id, idx, kind, role, name, call_id, content, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, '2026-01-01')",
        [(run_id, i, kind, role, name, f"c{i}" if name else None, content)
         for i, (kind, role, name, content) in enumerate(items)],
    )  # fmt: skip


def toy_db(path: Path | str, runs: list[tuple[str, str, str, str]]) -> sqlite3.Connection:
    """A database with toy runs: (reference name, variant, model, status) each, with trajectories.

    Run ids are `r0`, `r1`, ... in the order given.
    """
    scenario = toy()
    conn = connect(path)
    refs = {r.name: r for r in scenario.references}

    async def go() -> None:
        for i, (ref, variant, model, status) in enumerate(runs):
            rep = await replay(scenario, refs[ref], conn, run_id=f"r{i}", variant=variant, model=model)
            with transaction(conn):  # the status is run metadata: recorded in the run's chain, as the harness does
                conn.execute("UPDATE runs SET bench_id = 'test', created_at = ? WHERE run_id = ?",
                             (f"2026-01-01T00:00:{i:02d}", rep.run_id))  # fmt: skip
                update_run_meta(conn, rep.run_id, event="status", status=status)
            add_trajectory(conn, rep.run_id, scenario, variant)

    anyio.run(go)
    return conn


TOY_SCENARIOS = {"toy": toy()}
