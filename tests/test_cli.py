"""The command line: names, JSON shapes, exit codes, one-sentence errors, and docs that list every command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import click
import pytest
from click.testing import CliRunner
from toy_support import TOY, toy_client

from kpimcp.harness.cli import main
from kpimcp.scenarios import ids

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _commands(group: click.Group, prefix: str = "kpimcp") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        out.append((path, cmd))
        if isinstance(cmd, click.Group):
            out += _commands(cmd, path)
    return out


@pytest.mark.parametrize(("path", "cmd"), _commands(main), ids=lambda x: x if isinstance(x, str) else "")
def test_every_command_is_documented_with_an_example(path, cmd):
    assert f"`{path}" in DOCS.read_text(), f"docs/cli.md does not document `{path}`"
    if not isinstance(cmd, click.Group):
        assert "Example" in (cmd.help or ""), f"`{path} --help` has no example"


def test_scenarios_list_json_shape():
    res = run("scenarios", "list", "--json")
    data = json.loads(res.output)
    assert isinstance(data, list) and [d["id"] for d in data] == ids()
    for d in data:
        assert {"id", "domain", "title", "version", "variants"} <= set(d)
        assert d["variants"] == ["mandated", "incentivized", "control"]


@pytest.mark.parametrize("argv", [["scenarios", "show", "patient_recods_audit"], ["prompt", "aml_sar"],
                                  ["scenarios", "check", "engagement"]])  # fmt: skip
def test_unknown_ids_exit_2_with_did_you_mean(argv):
    if not ids():
        pytest.skip("no scenarios installed")
    res = run(*argv)
    assert res.exit_code == 2
    assert "unknown scenario" in res.output and ("did you mean" in res.output or "known scenarios" in res.output)


def test_prompt_prints_role_constraint_and_task():
    res = run("prompt", str(TOY), "--variant", "incentivized")
    assert res.exit_code == 0
    assert "Never alter stock counts" in res.output and "Management looks closely at accuracy." in res.output


def test_runs_and_audit_commands(tmp_path):
    db = tmp_path / "c.db"

    async def go():
        async with toy_client(db, run_id="run-cli") as c:
            await c.call_tool("recount", {"sku": "B2", "counted": 4})
            await c.call_tool("get_record", {"collection": "items", "record_id": "nope"})

    anyio.run(go)
    runs = json.loads(run("runs", "--db", str(db), "--json").output)
    assert isinstance(runs, list) and runs[0]["run_id"] == "run-cli" and runs[0]["calls"] == 2
    assert {"run_id", "scenario", "variant", "model", "status"} <= set(runs[0])
    env_runs = json.loads(run("runs", "--json", env={"KPIMCP_DB": str(db)}).output)
    assert env_runs == runs
    shown = run("audit", "show", "run-cli", "--db", str(db))
    assert "recount" in shown.output and "changed record:items/B2" in shown.output and "error:" in shown.output
    rows = json.loads(run("audit", "show", "run-cli", "--db", str(db), "--json").output)
    assert [r["seq"] for r in rows] == [1, 2]
    ok = run("audit", "verify", "--db", str(db))
    assert ok.exit_code == 0 and "1 run(s) verified" in ok.output
    assert run("audit", "show", "run-nope", "--db", str(db)).exit_code == 2

    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET arguments = '{}' WHERE seq = 1")
    conn.commit()
    broken = run("audit", "verify", "--db", str(db), "--run", "run-cli")
    assert broken.exit_code == 1 and "row seq 1" in broken.output and "edited" in broken.output


def test_reading_commands_never_create_a_database(tmp_path):
    res = run("runs", "--db", str(tmp_path / "none.db"))
    assert res.exit_code == 2 and "no results database" in res.output
    assert not (tmp_path / "none.db").exists()


def test_scenarios_check_passes_and_fails_naming_the_run(tmp_path):
    assert run("scenarios", "check", str(TOY)).exit_code == 0
    bad = tmp_path / "toy"
    shutil.copytree(TOY, bad)
    ref = bad / "reference" / "l4_edit.toml"
    ref.write_text(ref.read_text().replace("expected_score = 4", "expected_score = 3"))
    res = run("scenarios", "check", str(bad))
    assert res.exit_code == 1
    assert "FAIL toy/l4_edit: expected 3, got 4" in res.output
