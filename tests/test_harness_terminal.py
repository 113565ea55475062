"""What a person at a terminal sees: tables that stay readable at 80 columns, Ctrl-C that says how to resume."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openai_stub import by_turn
from rich.console import Console
from test_harness_stub import HONEST, TOY

from kpimcp.harness.bench import run_bench
from kpimcp.harness.config import load_config
from kpimcp.harness.display import misalignment_table, reasons_table, summary_table
from kpimcp.servers import connect


def _render(*tables) -> list[str]:
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115 - closed with the console
    for t in tables:
        console.print(t)
    return console.export_text().splitlines()


def test_bench_tables_fit_80_columns_and_keep_model_names_apart(tmp_path):
    models = ["reference:compliant", "reference:violating"]
    result = run_bench(load_config(None, scenarios=["aml_sar_rate"], host="inprocess"), tmp_path / "b.db")
    rid = next(iter(result.outcomes))
    result.outcomes[rid], result.errors[rid] = "provider_error", "the model endpoint failed: connection refused"
    lines = _render(summary_table(result), reasons_table(result), misalignment_table(result.table))
    assert max(len(line) for line in lines) <= 80
    for name in models:  # each full name on a line of its own table rows: never cut to a common prefix
        assert sum(name in line for line in lines) >= 2, name
    assert any("connection refused" in line for line in lines)
    assert any("incentivized" in line for line in lines)


@pytest.mark.slow
def test_ctrl_c_exits_130_and_prints_the_command_that_resumes(tmp_path, openai_stub):
    openai_stub.responder = by_turn([r.after(0.4) for r in HONEST])
    db = tmp_path / "c.db"
    cmd = [sys.executable, "-m", "kpimcp.harness.cli", "bench", "--db", str(db), "-s", str(TOY), "--variant",
           "mandated", "-m", "openai-compatible:stub", "--base-url", openai_stub.base_url, "--repeats", "4", "-j", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if db.exists() and Path(str(db) + "-wal").exists():
            try:
                if connect(db).execute("SELECT COUNT(*) FROM runs WHERE status = 'completed'").fetchone()[0]:
                    break
            except Exception:  # schema not there yet
                continue
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted:" in err and "Resume with:" in err and "Aborted" not in err
    assert f"kpimcp bench --db {db}" in " ".join(err.split())
    statuses = [r[0] for r in connect(db).execute("SELECT status FROM runs")]
    assert "open" not in statuses and "completed" in statuses


@pytest.mark.slow
def test_serve_on_a_terminal_stops_on_ctrl_c(tmp_path):
    import os
    import pty

    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "kpimcp.harness.cli", "serve", "aml_sar_rate", "--db",
                             str(tmp_path / "s.db")], stdin=secondary, stdout=secondary, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (tmp_path / "s.db").exists():
            time.sleep(0.1)
        time.sleep(1.0)  # the server is reading its terminal by now
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 130
        assert b"stopped (Ctrl-C)" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
        os.close(secondary)


def test_runs_table_fits_80_columns_without_merging_model_names():
    from kpimcp.harness.cli_runs import _runs_table

    rows = [{"run_id": f"run-{i:016x}", "model": m, "scenario": "patient_records_audit", "variant": "incentivized",
             "status": "provider_error", "score": None, "rule": None, "rule_score": None, "calls": 3,
             "error": "the model endpoint failed after 6 attempt(s): connection refused (APIConnectionError)"}
            for i, m in enumerate(["reference:compliant", "reference:violating"])]  # fmt: skip
    lines = _render(_runs_table(rows, with_matches=False))
    assert max(len(line) for line in lines) <= 80
    assert all(any(m in line for line in lines) for m in ("reference:compliant", "reference:violating"))


def test_litellm_judge_without_the_extra_says_which_extra(tmp_path, monkeypatch):
    import importlib.util

    from click.testing import CliRunner
    from judge_support import toy_db

    from kpimcp.harness.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "litellm" else real(name, *a))
    toy_db(tmp_path / "j.db", [("compliant", "mandated", "openai:gpt-5", "completed")])
    out = CliRunner().invoke(main, ["judge", "--db", str(tmp_path / "j.db"), "--judge-model", "litellm:x/y"])
    assert out.exit_code == 2 and "pip install 'kpimcp[litellm]'" in out.output
