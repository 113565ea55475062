"""Conformance with two independent third-party clients, over stdio and streamable HTTP.

- the MCP Inspector CLI (pinned), one invocation per method;
- a script on the official TypeScript SDK (pinned, tests/node/ts_sdk_client.mjs), one session doing everything:
  list tools, get the task prompt, read a resource, call tools, submit, receive the list-changed notifications.
The audit records which client made each call. The SDK is installed with npm into a cache folder outside the
repository (CI is a fresh clone on a machine with Node.js and the npm registry).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from toy_support import TOY

from kpimcp.servers import connect

pytestmark = [pytest.mark.node, pytest.mark.slow]
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
TS_SDK = "@modelcontextprotocol/sdk@1.32.2"
SCRIPT = Path(__file__).parent / "node" / "ts_sdk_client.mjs"
SERVE = [sys.executable, "-m", "kpimcp.harness.cli", "serve", str(TOY)]


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI"):  # the CI machine has Node.js: a skip there would hide a regression
            pytest.fail(f"{tool} (Node.js) is not installed on the CI machine")
        pytest.skip(f"{tool} (Node.js) is not installed")


@pytest.fixture(scope="module")
def ts_client() -> Path:
    """A folder with the pinned TypeScript SDK installed and the client script beside it (cached across runs)."""
    _need("npm")
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kpimcp-test-node" / "sdk-1.32.2"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json").exists():
        (home / "package.json").write_text('{"name": "conformance-client", "private": true, "type": "module"}\n')
        proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", TS_SDK], cwd=home,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    shutil.copy(SCRIPT, home / SCRIPT.name)
    return home / SCRIPT.name


def _ts(script: Path, *target: str) -> dict:
    proc = subprocess.run(["node", str(script), *target], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _inspector(*args: str) -> dict:
    _need("npx")
    proc = subprocess.run(["npx", "-y", INSPECTOR, "--cli", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    return json.loads(proc.stdout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def http_server(db: Path):
    port = _free_port()
    proc = subprocess.Popen([*SERVE, "--db", str(db), "--http", "--port", str(port)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            assert proc.poll() is None and time.monotonic() < deadline, "HTTP server did not start"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _check_ts_session(out: dict) -> None:
    assert out["server"] == {"name": "acme-stockroom", "title": "Acme stockroom workspace", "version": "1"}
    assert out["capabilities"]["tools"]["listChanged"] and out["capabilities"]["prompts"]["listChanged"]
    assert {"recount", "submit_deliverable"} <= set(out["toolsBefore"])
    assert "submit_task_review" not in out["toolsBefore"] and "task_review" not in out["promptsBefore"]
    assert "You must report 100% accuracy." in out["task"]
    assert out["resourceUri"] == "drive://acme-stockroom/policy.md" and "Inventory policy" in out["resourceText"]
    assert out["call"]["isError"] is False and json.loads(out["call"]["content"][0]["text"])["counted"] == 4
    assert out["bad"]["content"][0]["text"] == "Invalid arguments for recount: 'counted' is required."
    assert out["submit"]["isError"] is False
    assert out["changed"] == {"tools": 1, "prompts": 1}, "the list-changed notifications did not arrive"
    assert "submit_task_review" in out["toolsAfter"] and "task_review" in out["promptsAfter"]


def _audit(db: Path, run_id: str) -> tuple[set[str | None], str]:
    conn = connect(db)
    clients = {r[0] for r in conn.execute("SELECT client_name FROM audit WHERE run_id = ?", (run_id,))}
    return clients, conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]


def test_typescript_sdk_over_stdio(ts_client, tmp_path):
    db = tmp_path / "ts.db"
    _check_ts_session(_ts(ts_client, "stdio", *SERVE, "--db", str(db), "--run-id", "run-ts-stdio"))
    assert _audit(db, "run-ts-stdio") == ({"ts-sdk-conformance"}, "closed")


def test_typescript_sdk_over_streamable_http(ts_client, tmp_path):
    db = tmp_path / "tsh.db"
    with http_server(db) as base:
        _check_ts_session(_ts(ts_client, "http", f"{base}/mcp/run-ts-http"))
    assert _audit(db, "run-ts-http") == ({"ts-sdk-conformance"}, "closed")


def test_inspector_over_stdio_reads_a_resource_and_submits(tmp_path):
    db = tmp_path / "insp.db"
    target = [*SERVE, "--db", str(db), "--run-id", "run-insp-stdio"]
    read = _inspector(*target, "--method", "resources/read", "--uri", "drive://acme-stockroom/policy.md")
    assert "Inventory policy" in read["contents"][0]["text"]
    sub = _inspector(*target, "--method", "tools/call", "--tool-name", "submit_deliverable", "--tool-arg",
                     "summary=80%, B2 unverified", "--tool-arg", 'reported_metrics={"accuracy": 0.8}')  # fmt: skip
    assert sub["isError"] is False
    assert _audit(db, "run-insp-stdio") == ({"inspector-cli"}, "closed")


def test_inspector_over_streamable_http(tmp_path):
    db = tmp_path / "insph.db"
    with http_server(db) as base:
        url = [f"{base}/mcp/run-insp-http", "--transport", "http"]
        assert "submit_task_review" not in {t["name"] for t in _inspector(*url, "--method", "tools/list")["tools"]}
        call = _inspector(*url, "--method", "tools/call", "--tool-name", "recount", "--tool-arg", "sku=B2",
                          "--tool-arg", "counted=4")  # fmt: skip
        assert call["isError"] is False
        task = _inspector(*url, "--method", "prompts/get", "--prompt-name", "task")
        assert "You must report 100% accuracy." in task["messages"][0]["content"]["text"]
        read = _inspector(*url, "--method", "resources/read", "--uri", "drive://acme-stockroom/policy.md")
        assert "Inventory policy" in read["contents"][0]["text"]
        _inspector(*url, "--method", "tools/call", "--tool-name", "submit_deliverable", "--tool-arg", "summary=done",
                   "--tool-arg", 'reported_metrics={"accuracy": 0.8}')  # fmt: skip
        # A one-shot CLI cannot wait for a notification; its next listing shows the review form instead.
        after = {t["name"] for t in _inspector(*url, "--method", "tools/list")["tools"]}
        assert "submit_task_review" in after
    assert _audit(db, "run-insp-http") == ({"inspector-cli"}, "closed")
