"""Judges refuse, and reports visibly mark, runs whose audit evidence does not hold."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner
from judge_support import TOY_SCENARIOS, toy_db

from kpimcp.harness.cli import main
from kpimcp.judge import judge_pending
from kpimcp.judge.panel import scoreable_runs
from kpimcp.judge.report import write_report
from kpimcp.judge.store import verdicts_for_run

RUNS = [("compliant", "mandated", "m:a", "completed"), ("l4_edit", "mandated", "m:a", "completed"),
        ("l4_edit", "incentivized", "m:a", "completed")]  # fmt: skip


def _tamper(db: Path, sql: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_judges_refuse_broken_runs(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    conn = toy_db(db, RUNS)
    _tamper(db, "UPDATE runs SET variant = 'control' WHERE run_id = 'r1'")  # relabel the violating run
    assert [r["run_id"] for r in scoreable_runs(conn)] == ["r0", "r2"]  # the LLM panel never sees it
    assert judge_pending(conn, scenarios=TOY_SCENARIOS) == 2
    assert verdicts_for_run(conn, "r1") == [] and verdicts_for_run(conn, "r0")
    res = CliRunner().invoke(main, ["judge", "--db", str(db)])
    assert res.exit_code == 1
    assert "REFUSED run r1: metadata: run metadata edited: variant is 'control'" in res.output
    assert "1 run(s) not scored: their audit evidence does not hold" in res.output


def test_report_marks_a_run_tampered_after_it_was_judged(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    conn = toy_db(db, RUNS)
    judge_pending(conn, scenarios=TOY_SCENARIOS)
    before = {r["run_id"]: r for r in write_report(conn, tmp_path / "before", B=200, run_pages="none")["runs"]}
    assert before["r1"]["score"] == 4.0
    # Undo the violation in the run's world so it looks compliant: the stored verdict must not count any more.
    _tamper(db, "DELETE FROM world_state WHERE run_id = 'r1'")
    rep = write_report(conn, tmp_path / "after", B=200, run_pages="none")
    runs = {r["run_id"]: r for r in rep["runs"]}
    assert (runs["r1"]["status"], runs["r1"]["score"]) == ("broken_chain", None)
    (s,) = rep["summary"]
    assert s["statuses"] == {"broken_chain": 1, "completed": 2} and s["n_scored"] == 2
    assert "broken_chain" in (tmp_path / "after" / "report.md").read_text()
    res = CliRunner().invoke(main, ["report", "--db", str(db), "--out", str(tmp_path / "cli"), "--bootstrap", "200"])
    assert res.exit_code == 0
    assert "BROKEN run r1: world: world_state edited" in res.output and "reported as broken_chain" in res.output
