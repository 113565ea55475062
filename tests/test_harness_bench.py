"""Whole benches: the offline default, plans and filters, resume, force, concurrency, and a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openai_stub import by_turn, error, text, tool_call

from kpimcp.harness.bench import run_bench
from kpimcp.harness.cli import main
from kpimcp.harness.config import load_config
from kpimcp.harness.plan import PlanError, build_plan
from kpimcp.harness.store import SCOREABLE_STATUSES, load_trajectory
from kpimcp.servers import connect, verify

TOY = Path(__file__).parent / "fixtures" / "toy"
FAST_RETRY = {"attempts": 2, "initial_delay": 0.01, "max_delay": 0.02}
SUBMIT = {"summary": "Accuracy 50%", "reported_metrics": {"accuracy": 0.5}}
HONEST = [tool_call("run_count"), tool_call("submit_deliverable", SUBMIT), text("Submitted.")]


def toy_config(**overrides: Any) -> Any:
    return load_config(None, **({"scenarios": [str(TOY)], "host": "inprocess", "retry": FAST_RETRY} | overrides))


def stub_model(stub: Any) -> list[dict[str, str]]:
    return [{"spec": "openai-compatible:stub", "base_url": stub.base_url}]


def current_runs(db: Path) -> list[dict[str, Any]]:
    conn = connect(db)
    return [dict(r) for r in conn.execute("SELECT * FROM current_runs")]


def test_reference_agents_replay_and_score_as_their_references(tmp_path):
    db = tmp_path / "ref.db"
    result = run_bench(toy_config(), db)
    assert len(result.outcomes) == 6 and set(result.outcomes.values()) == {"completed"}
    assert result.self_test == [] and result.failed == 0
    mr = {(r["model"], r["variant"]): (r["mr"], r["severity"]) for r in result.table}
    assert mr == {("reference:compliant", v): (0.0, 0.0) for v in ("mandated", "incentivized", "control")} | {
        ("reference:violating", v): (1.0, 4.0) for v in ("mandated", "incentivized", "control")}  # fmt: skip
    conn = connect(db)
    bench_row = conn.execute("SELECT * FROM benches").fetchone()
    manifest = json.loads(bench_row["manifest"])["scenarios"][0]
    assert manifest["id"] == "toy" and len(manifest["tools_sha256"]) == 64 and "run_count" in manifest["tools"]
    assert json.loads(bench_row["versions"])["openai-agents"] and json.loads(bench_row["summary"])["ran"] == 6
    run_id = next(iter(result.outcomes))
    assert [t["kind"] for t in load_trajectory(conn, run_id)][:3] == ["system", "user", "tool_call"]
    assert verify(conn) == (6, [])


def test_plan_filters_and_errors():
    plan = build_plan(toy_config(variants=["mandated", "control"], repeats=3, models=["reference:compliant"]))
    assert len(plan.runs) == 6 and {r.repeat for r in plan.runs} == {0, 1, 2}
    assert plan.runs[0].cell == "reference:compliant|toy@v1|mandated|r0"
    assert build_plan(toy_config(domains=["logistics_safety"])).runs
    with pytest.raises(PlanError, match="no scenario matches"):
        build_plan(toy_config(domains=["finance"]))
    with pytest.raises(PlanError, match="unknown domain"):
        build_plan(toy_config(domains=["astrology"]))


def test_resume_skips_finished_cells_and_force_supersedes_them(tmp_path):
    db = tmp_path / "r.db"
    first = run_bench(toy_config(variants=["mandated"]), db)
    again = run_bench(toy_config(variants=["mandated"], repeats=2), db)
    assert len(again.plan.done) == 2 and len(again.outcomes) == 2  # only the new repeat ran
    forced = run_bench(toy_config(variants=["mandated"], force=True), db)
    assert len(forced.outcomes) == 2
    rows = current_runs(db)
    assert len(rows) == 4 and len({r["cell"] for r in rows}) == 4  # one current run per cell
    conn = connect(db)
    old = conn.execute("SELECT superseded_by FROM runs WHERE run_id IN (?, ?)", list(first.outcomes)).fetchall()
    assert all(r["superseded_by"] in forced.outcomes for r in old)


def test_failed_runs_are_retried_on_the_next_invocation(tmp_path, openai_stub):
    db = tmp_path / "f.db"
    openai_stub.script(error(500).forever(), model="stub")
    failed = run_bench(toy_config(variants=["mandated"], models=stub_model(openai_stub)), db)
    assert list(failed.outcomes.values()) == ["provider_error"]
    openai_stub.reset()
    openai_stub.responder = by_turn(HONEST)
    retried = run_bench(toy_config(variants=["mandated"], models=stub_model(openai_stub)), db)
    assert list(retried.outcomes.values()) == ["completed"]
    rows = current_runs(db)
    assert [(r["status"], r["attempt"]) for r in rows] == [("completed", 2)]
    assert retried.table[0]["n_scored"] == 1


def test_concurrent_runs_are_isolated_and_bounded(tmp_path, openai_stub):
    in_flight, peak = [0], [0]
    honest = by_turn(HONEST)

    def respond(body):
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        in_flight[0] -= 1
        return honest(body)

    openai_stub.responder = respond
    models = [{"spec": "openai-compatible:stub", "base_url": openai_stub.base_url, "concurrency": 3}]
    result = run_bench(toy_config(variants=["mandated"], repeats=12, concurrency=8, models=models), tmp_path / "c.db")
    assert Counter(result.outcomes.values()) == {"completed": 12} and peak[0] <= 3
    conn = connect(tmp_path / "c.db")
    per_run = Counter(r[0] for r in conn.execute("SELECT run_id FROM audit"))
    assert set(per_run.values()) == {2} and verify(conn) == (12, [])


def test_cli_bench_dry_run_runs_json_and_exit_codes(tmp_path, openai_stub):
    db = str(tmp_path / "cli.db")
    runner = CliRunner()
    dry = runner.invoke(main, ["bench", "--db", db, "-s", str(TOY), "--dry-run", "--json"])
    assert dry.exit_code == 0 and json.loads(dry.output)["counts"] == {"planned": 6, "to_run": 6, "already_done": 0}
    ok = runner.invoke(main, ["bench", "--db", db, "-s", str(TOY), "--variant", "mandated", "--host", "inprocess"])
    assert ok.exit_code == 0, ok.output
    assert "misalignment" in ok.output and "reference:violating" in ok.output
    openai_stub.script(error(500).forever())
    bad = runner.invoke(main, ["bench", "--db", db, "-s", str(TOY), "--variant", "mandated", "--host", "inprocess",
                               "-m", "openai-compatible:m", "--base-url", openai_stub.base_url,
                               "--retries", "0"])  # fmt: skip
    assert bad.exit_code == 1 and "re-run the same command" in bad.output
    listed = json.loads(runner.invoke(main, ["runs", "--db", db, "--json"]).output)
    assert isinstance(listed, list) and len(listed) == 3
    assert {(r["model"], r["status"]) for r in listed} == {("reference:compliant", "completed"),
                                                           ("reference:violating", "completed"),
                                                           ("openai-compatible:m", "provider_error")}  # fmt: skip
    assert all({"run_id", "scenario", "variant", "model", "status"} <= set(r) for r in listed)
    missing_key = runner.invoke(main, ["bench", "--db", db, "-m", "openrouter:x-ai/grok-4"],
                                env={"OPENROUTER_API_KEY": ""})  # fmt: skip
    assert missing_key.exit_code == 2 and "OPENROUTER_API_KEY" in missing_key.output


def test_offline_default_over_the_installed_scenarios(tmp_path):
    """The README's main command (mandated variant only, to keep the suite fast): all reference runs replay,
    score as expected, and the table shows MR 0% for the compliant agent and 100% for the violating one."""
    result = CliRunner().invoke(main, ["bench", "--db", str(tmp_path / "d.db"), "--variant", "mandated"])
    assert result.exit_code == 0, result.output
    assert "self-test" not in result.output and "100%" in result.output and "0%" in result.output


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, ProcessLookupError):
        return False


@pytest.mark.slow
def test_sigkill_mid_bench_then_rerun_loses_nothing_and_duplicates_nothing(tmp_path, openai_stub):
    db = tmp_path / "kill.db"
    slow = by_turn([r.after(0.25) for r in HONEST])
    openai_stub.responder = slow
    cmd = [sys.executable, "-m", "kpimcp.harness.cli", "bench", "--db", str(db), "-s", str(TOY), "--variant",
           "mandated", "-m", "openai-compatible:stub", "--base-url", openai_stub.base_url, "--repeats", "6", "-j", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and done < 2:
        time.sleep(0.1)
        if db.exists():
            try:
                done = connect(db).execute("SELECT COUNT(*) FROM runs WHERE status = 'completed'").fetchone()[0]
            except Exception:  # the schema may not exist yet
                done = 0
    host_pids = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= done < 6, "the bench should be killed mid-run"
    conn = connect(db)
    before = {r["run_id"]: r["status"] for r in conn.execute("SELECT run_id, status FROM runs")}
    assert "open" in before.values()
    time.sleep(0.5)
    assert not any(_alive(p) for p in host_pids), "the scenario host must not outlive a killed bench"

    openai_stub.responder = by_turn(HONEST)
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = [dict(r) for r in connect(db).execute("SELECT * FROM runs")]
    current = [r for r in rows if r["superseded_by"] is None]
    assert sorted(r["cell"] for r in current) == sorted(f"openai-compatible:stub|toy@v1|mandated|r{i}"
                                                        for i in range(6))  # fmt: skip
    assert all(r["status"] in SCOREABLE_STATUSES for r in current)
    finished_before = {rid for rid, s in before.items() if s == "completed"}
    assert finished_before <= {r["run_id"] for r in current}  # finished runs were kept, not rerun
    for r in rows:
        if before.get(r["run_id"]) == "open":
            assert r["status"] == "infra_error" and "interrupted" in r["error"] and r["superseded_by"]
    assert verify(connect(db))[1] == []
