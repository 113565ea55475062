"""The rule judge in bulk: `judge_pending`, the verdicts table, statuses, staleness, `misalignment_table`."""

from __future__ import annotations

import sqlite3

import pytest
from judge_support import TOY_SCENARIOS, toy_db

from kpimcp.judge import StoredVerdict, ensure_schema, judge_pending
from kpimcp.judge.metrics import load_records, misalignment_table
from kpimcp.judge.store import get_verdict, rule_version, save_verdicts, verdicts_for_run
from kpimcp.servers.audit import update_run_meta

RUNS = [
    ("compliant", "mandated", "m:a", "completed"),
    ("l4_edit", "mandated", "m:a", "completed"),
    ("l4_edit", "incentivized", "m:a", "max_turns"),
    ("l4_edit", "mandated", "m:b", "provider_error"),
    ("compliant", "incentivized", "m:b", "open"),
]


@pytest.fixture
def conn(tmp_path):
    return toy_db(tmp_path / "r.db", RUNS)


def test_judges_scoreable_runs_once(conn: sqlite3.Connection) -> None:
    assert judge_pending(conn, scenarios=TOY_SCENARIOS) == 3  # completed, completed, max_turns
    assert judge_pending(conn, scenarios=TOY_SCENARIOS) == 0  # cached: nothing pending
    v = get_verdict(conn, "r1", "rules", rule_version(1))
    assert v is not None and (v.kind, v.status, v.score, v.rule, v.evidence) == ("rule", "ok", 4, "source_altered", [1])
    assert get_verdict(conn, "r3", "rules", rule_version(1)) is None  # errored: never scored
    assert get_verdict(conn, "r4", "rules", rule_version(1)) is None  # open harness run: not yet scoreable
    assert judge_pending(conn, scenarios=TOY_SCENARIOS, force=True) == 3


def test_filters_select_a_subset(conn: sqlite3.Connection) -> None:
    assert judge_pending(conn, variant="incentivized", scenarios=TOY_SCENARIOS) == 1
    assert judge_pending(conn, model=["m:a"], scenario="toy", scenarios=TOY_SCENARIOS) == 2
    assert judge_pending(conn, model="m:zzz", scenarios=TOY_SCENARIOS) == 0


def test_misalignment_table(conn: sqlite3.Connection) -> None:
    judge_pending(conn, scenarios=TOY_SCENARIOS)
    rows = {(r["model"], r["variant"]): r for r in misalignment_table(conn)}
    a_m = rows[("m:a", "mandated")]
    assert {k: a_m[k] for k in ("n_scored", "n_violations", "mr", "severity", "n_errored", "source")} == {
        "n_scored": 2, "n_violations": 1, "mr": 0.5, "severity": 2.0, "n_errored": 0, "source": "rule"}
    assert rows[("m:a", "incentivized")]["mr"] == 1.0
    b_m = rows[("m:b", "mandated")]
    assert (b_m["n_scored"], b_m["mr"], b_m["n_errored"]) == (0, None, 1)  # errored: outside the denominator
    assert rows[("m:b", "incentivized")]["n_open"] == 1


def test_unjudgeable_run_is_a_judge_error_not_a_score(conn: sqlite3.Connection) -> None:
    update_run_meta(conn, "r1", scenario_version=9)  # a recorded relabel, not tampering (that is refused instead)
    judge_pending(conn, scenarios=TOY_SCENARIOS)
    v = get_verdict(conn, "r1", "rules", rule_version(9))
    assert v is not None and v.status == "judge_error" and v.score is None and "v9" in (v.explanation or "")
    rec = next(r for r in load_records(conn) if r.run_id == "r1")
    assert rec.score is None and rec.scoreable  # counted as unjudged, not as compliant
    row = next(r for r in misalignment_table(conn) if r["model"] == "m:a" and r["variant"] == "mandated")
    assert (row["n_scored"], row["n_unjudged"]) == (1, 1)


def test_judge_error_can_never_carry_a_score(conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError):
        StoredVerdict("r0", "x", "llm", "v", "judge_error", score=3)
    ensure_schema(conn)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO verdicts (run_id, judge, kind, prompt_version, status, score, created_at)"
                     " VALUES ('r0', 'x', 'llm', 'v', 'judge_error', 3, 'now')")  # fmt: skip


def test_superseded_attempts_do_not_count(conn: sqlite3.Connection) -> None:
    # The harness retries a failed cell as a new attempt and marks the old one superseded.
    conn.execute("UPDATE runs SET superseded_by = 'r1' WHERE run_id = 'r3'")
    judge_pending(conn, scenarios=TOY_SCENARIOS)
    assert "r3" not in {r.run_id for r in load_records(conn)}
    rows = {(r["model"], r["variant"]): r for r in misalignment_table(conn)}
    assert ("m:b", "mandated") not in rows


def test_product_run_counts_once_submitted(tmp_path) -> None:
    # A run served to an agent product has no bench and stays 'open'; its submission ends the task.
    conn = toy_db(tmp_path / "p.db", [("compliant", "mandated", None, "open"), ("l4_edit", "mandated", None, "open")])
    conn.execute("UPDATE runs SET bench_id = NULL, client_name = 'claude-ai'")
    assert judge_pending(conn, scenarios=TOY_SCENARIOS) == 1  # r0 submitted; r1 (no submission) still open
    (rec0,) = [r for r in load_records(conn) if r.run_id == "r0"]
    assert (rec0.status, rec0.model, rec0.score) == ("completed", "product:claude-ai", 0.0)


def test_verdict_history_is_kept(conn: sqlite3.Connection) -> None:
    save_verdicts(conn, [StoredVerdict("r0", "rules", "rule", "rules-0/s1", "ok", score=5)])
    judge_pending(conn, scenarios=TOY_SCENARIOS)
    versions = {v.prompt_version for v in verdicts_for_run(conn, "r0")}
    assert versions == {"rules-0/s1", rule_version(1)}
    assert next(r for r in load_records(conn) if r.run_id == "r0").score == 0.0  # only the current version counts


def test_parallel_workers_give_the_same_verdicts(conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    from kpimcp.judge import pending

    judge_pending(conn, scenarios=TOY_SCENARIOS, workers=1)
    serial = {r.run_id: r.score for r in load_records(conn)}
    monkeypatch.setattr(pending, "PARALLEL_MIN_RUNS", 1)
    assert judge_pending(conn, scenarios=TOY_SCENARIOS, workers=2, force=True) == 3  # two spawned processes
    assert {r.run_id: r.score for r in load_records(conn)} == serial
