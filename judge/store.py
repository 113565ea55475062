"""The `verdicts` table: every judgement of a run (rule judge, LLM judges, self-assessments), one row each.

A row is keyed by (run, judge, prompt version): re-judging with the same judge and the same prompt is a cache
hit, and a new prompt or rule version adds rows instead of overwriting history. A `judge_error` row records that
a judge could not produce a valid verdict; it never carries a score (the CHECK constraint enforces it).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kpimcp.servers.runs import FAILED_STATUSES as ERRORED_STATUSES
from kpimcp.servers.runs import SCOREABLE_STATUSES
from kpimcp.servers.store import migrate, now_iso, transaction

from .kit import KIT_VERSION

__all__ = [
    "ERRORED_STATUSES",
    "PRODUCT_SUBMITTED_SQL",
    "RULES_VERSION",
    "RULE_JUDGE",
    "SCOREABLE_STATUSES",
    "Kind",
    "StoredVerdict",
    "current_sql",
    "ensure_schema",
    "get_verdict",
    "rule_version",
    "run_filter_sql",
    "save_verdicts",
    "scoreable_sql",
    "verdicts_for_run",
]


# A run served to an external agent product (`kpimcp serve`, no bench) is never closed by a harness; it counts
# as completed once the product submitted its deliverable (the task's end, also what reveals the review form).
PRODUCT_SUBMITTED_SQL = (
    "({a}.status = 'open' AND {a}.bench_id IS NULL AND EXISTS (SELECT 1 FROM audit s WHERE s.run_id = {a}.run_id"
    " AND s.tool = 'submit_deliverable' AND s.status = 'ok'))"
)

RULE_JUDGE = "rules"
# Bump when the rule judge's own code changes meaning; scenario rules are versioned by the scenario version.
RULES_VERSION = f"kit-{KIT_VERSION}"  # a new kit decides anew: older rule verdicts are not current

Kind = Literal["rule", "llm", "self", "product"]

def rule_version(scenario_version: int) -> str:
    """The `prompt_version` of a rule verdict: the rule judge's version and the scenario version it applied."""
    return f"{RULES_VERSION}/s{scenario_version}"


@dataclass
class StoredVerdict:
    """One row of `verdicts`, with `evidence` decoded (audit `seq` numbers, or other JSON the judge cited)."""

    run_id: str
    judge: str
    kind: Kind
    prompt_version: str
    status: Literal["ok", "judge_error"]
    score: int | None = None
    rule: str | None = None
    explanation: str | None = None
    evidence: list[Any] = field(default_factory=list)
    raw: str | None = None
    created_at: str = ""

    def __post_init__(self) -> None:
        if self.status == "judge_error" and self.score is not None:
            raise ValueError("a judge_error verdict never carries a score")
        if self.status == "ok" and (self.score is None or not 0 <= self.score <= 5):
            raise ValueError(f"an ok verdict needs a score 0..5, got {self.score!r}")

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredVerdict:
        data = dict(row)
        data["evidence"] = json.loads(data["evidence"] or "[]")
        return cls(**data)


def ensure_schema(conn: sqlite3.Connection) -> None:
    """The verdicts table is a schema step of the results database (`kpimcp.servers.migrations`); this applies any
    pending step (a no-op read when the file is current)."""
    migrate(conn)


def save_verdicts(conn: sqlite3.Connection, verdicts: Iterable[StoredVerdict]) -> int:
    """Insert or replace verdicts in one transaction; returns how many were written."""
    rows = [
        (v.run_id, v.judge, v.kind, v.prompt_version, v.status, v.score, v.rule, v.explanation,
         json.dumps(v.evidence, ensure_ascii=False, default=str), v.raw, v.created_at or now_iso())
        for v in verdicts
    ]  # fmt: skip
    if not rows:
        return 0
    ensure_schema(conn)
    with transaction(conn):
        conn.executemany(
            "INSERT OR REPLACE INTO verdicts (run_id, judge, kind, prompt_version, status, score, rule, explanation,"
            " evidence, raw, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def get_verdict(conn: sqlite3.Connection, run_id: str, judge: str, prompt_version: str) -> StoredVerdict | None:
    """The cached verdict of one judge on one run under one prompt version, if any."""
    row = conn.execute(
        "SELECT * FROM verdicts WHERE run_id = ? AND judge = ? AND prompt_version = ?", (run_id, judge, prompt_version)
    ).fetchone()
    return None if row is None else StoredVerdict.from_row(row)


def verdicts_for_run(conn: sqlite3.Connection, run_id: str) -> list[StoredVerdict]:
    """Every verdict ever recorded for a run (all judges, all versions), oldest first."""
    rows = conn.execute("SELECT * FROM verdicts WHERE run_id = ? ORDER BY created_at, judge", (run_id,)).fetchall()
    return [StoredVerdict.from_row(r) for r in rows]


def scoreable_sql(alias: str = "r") -> str:
    """SQL condition: the run may be scored (completed, max_turns, or a product run that submitted)."""
    statuses = ", ".join(f"'{s}'" for s in SCOREABLE_STATUSES)
    return f"({alias}.status IN ({statuses}) OR {PRODUCT_SUBMITTED_SQL.format(a=alias)})"


def current_sql(conn: sqlite3.Connection, alias: str = "r") -> str:
    """' AND <alias>.superseded_by IS NULL' when the harness's retry column exists: a cell retried by the bench
    counts once, with its latest attempt (the earlier, failed attempts stay in the database)."""
    cols = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    return f" AND {alias}.superseded_by IS NULL" if "superseded_by" in cols else ""


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [v for v in value if v]


def run_filter_sql(
    *,
    scenario: str | Sequence[str] | None = None,
    variant: str | Sequence[str] | None = None,
    model: str | Sequence[str] | None = None,
    bench: str | None = None,
    alias: str = "r",
) -> tuple[str, list[str]]:
    """A `WHERE`-fragment (starting with ' AND', or empty) selecting runs like the bench's filters do.

    `bench` keeps one campaign: the runs of the cells its plan held (whichever later invocation resumed them),
    or, for benches recorded before plans listed their cells, the runs it started itself.
    """
    sql, args = "", []
    for col, values in (("scenario", _as_list(scenario)), ("variant", _as_list(variant)), ("model", _as_list(model))):
        if values:
            sql += f" AND {alias}.{col} IN ({', '.join('?' * len(values))})"
            args += values
    if bench:
        sql += (f" AND ({alias}.cell IN (SELECT c.value FROM benches b, json_each(b.manifest, '$.cells') c"
                f" WHERE b.bench_id = ?) OR {alias}.bench_id = ?)")  # fmt: skip
        args += [bench, bench]
    return sql, args
