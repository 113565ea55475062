"""`kpimcp runs` and `kpimcp benches` as library calls: runs filtered, with their score, rule and reason.

The score is the run's reference score as the report counts it (panel median, else the rule verdict; none for
runs that are not scoreable or superseded); the rule is the rule judge's current verdict (level and rule name).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .store import ensure_schema, list_bench_runs, resolve_bench

__all__ = ["runs_overview"]


def _rule_verdicts(conn: sqlite3.Connection) -> dict[str, tuple[int | None, str | None]]:
    """run_id -> (level, rule name) of its current rule verdict (rule judge version and the run's scenario)."""
    from kpimcp.judge.store import RULE_JUDGE, RULES_VERSION
    from kpimcp.judge.store import ensure_schema as ensure_verdicts

    ensure_verdicts(conn)
    rows = conn.execute(
        "SELECT v.run_id, v.score, v.rule, v.status FROM verdicts v JOIN runs r ON r.run_id = v.run_id"
        " WHERE v.judge = ? AND v.prompt_version = ? || '/s' || r.scenario_version", (RULE_JUDGE, RULES_VERSION)
    ).fetchall()  # fmt: skip
    return {r[0]: (r[1], r[2] if r[3] == "ok" else "judge_error") for r in rows}


def _wanted(row: dict[str, Any], field: str, values: Sequence[str]) -> bool:
    return not values or str(row.get(field)) in values


def runs_overview(
    conn: sqlite3.Connection,
    *,
    status: Sequence[str] = (),
    model: Sequence[str] = (),
    scenario: Sequence[str] = (),
    variant: Sequence[str] = (),
    bench: str | None = None,
    search: str | None = None,
) -> list[dict[str, Any]]:
    """Runs (oldest first) passing every filter, each with `score`, `source`, `rule_score`, `rule` and, with
    `search`, `matches` (where the text occurs: trajectory item, audit seq or verdict, with a snippet)."""
    from kpimcp.judge.metrics import load_records
    from kpimcp.judge.store import run_filter_sql

    ensure_schema(conn)
    bench_id = resolve_bench(conn, bench)
    rows = list_bench_runs(conn)
    if bench_id:
        where, args = run_filter_sql(bench=bench_id)
        keep = {r[0] for r in conn.execute(f"SELECT r.run_id FROM runs r WHERE 1 = 1{where}", args)}
        rows = [r for r in rows if r["run_id"] in keep]
    label = {r["run_id"]: r.get("model") or (f"product:{r['client_name']}" if r.get("client_name") else None)
             for r in rows}  # fmt: skip
    rows = [r for r in rows if _wanted(r, "status", status) and _wanted(r, "scenario", scenario)
            and _wanted(r, "variant", variant) and (not model or label[r["run_id"]] in model)]  # fmt: skip
    hits = None
    if search:
        from .search import search_runs

        hits = search_runs(conn, search)
        rows = [r for r in rows if r["run_id"] in hits]
    records = {rec.run_id: rec for rec in load_records(conn)} if rows else {}
    rules = _rule_verdicts(conn) if rows else {}
    for r in rows:
        rec = records.get(r["run_id"])
        r["model"] = label[r["run_id"]]
        r["score"] = rec.score if rec and not r.get("superseded_by") else None
        r["source"] = rec.source if rec and not r.get("superseded_by") else None
        r["rule_score"], r["rule"] = rules.get(r["run_id"], (None, None))
        if hits is not None:
            r["matches"] = [h.__dict__ for h in hits[r["run_id"]][:5]]
    return rows
