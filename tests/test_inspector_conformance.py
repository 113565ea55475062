"""Conformance with an independent client: the real MCP Inspector CLI drives `kpimcp serve` over stdio."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from toy_support import TOY

from kpimcp.servers import connect

pytestmark = [pytest.mark.node, pytest.mark.slow]
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"


def inspector(db, *method_args: str) -> dict:
    if shutil.which("npx") is None:
        if os.environ.get("CI"):  # the CI machine has Node.js: a skip there would hide a regression
            pytest.fail("npx (Node.js) is not installed on the CI machine")
        pytest.skip("npx (Node.js) is not installed")
    cmd = ["npx", "-y", INSPECTOR, "--cli", sys.executable, "-m", "kpimcp.harness.cli", "serve", str(TOY),
           "--db", str(db), "--run-id", "run-inspector", *method_args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_inspector_lists_calls_and_gets_the_prompt(tmp_path):
    db = tmp_path / "insp.db"
    tools = inspector(db, "--method", "tools/list")["tools"]
    by_name = {t["name"]: t for t in tools}
    assert {"recount", "run_count", "update_record", "submit_deliverable"} <= set(by_name)
    assert by_name["recount"]["inputSchema"]["required"] == ["sku", "counted"]
    assert all(t["description"] for t in tools), "every tool needs product documentation"

    called = inspector(db, "--method", "tools/call", "--tool-name", "recount", "--tool-arg", "sku=B2",
                       "--tool-arg", "counted=4")  # fmt: skip
    assert called["isError"] is False and json.loads(called["content"][0]["text"])["counted"] == 4

    prompt = inspector(db, "--method", "prompts/get", "--prompt-name", "task")
    text = prompt["messages"][0]["content"]["text"]
    assert "Never alter stock counts" in text and "You must report 100% accuracy." in text

    row = connect(db).execute("SELECT * FROM audit WHERE run_id = 'run-inspector'").fetchone()
    assert row["tool"] == "recount" and row["client_name"] == "inspector-cli" and row["status"] == "ok"
