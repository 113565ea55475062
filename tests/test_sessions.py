"""Operator sessions: product runs that close (submission, operator, idle, server end) and empty runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import anyio
import pytest
from click.testing import CliRunner
from mcp import Client
from toy_support import TOY, toy

from kpimcp.harness.cli import main
from kpimcp.judge import judge_pending
from kpimcp.judge.metrics import load_records
from kpimcp.judge.report import build_report
from kpimcp.servers import RunRegistry, build_server, connect, create_run
from kpimcp.servers.runs import SCOREABLE_STATUSES, get_run
from kpimcp.servers.sessions import ClosedSessionError, IdleCloser, close_run, new_session, prepare_stdio_run

TOY_SCENARIOS = {"toy": toy()}


def _status(conn, run_id):
    return get_run(conn, run_id)["status"]


def test_closed_is_scoreable_and_the_judge_store_takes_it_from_runs():
    from kpimcp.judge import store

    assert "closed" in SCOREABLE_STATUSES and store.SCOREABLE_STATUSES is SCOREABLE_STATUSES
    assert "empty" not in SCOREABLE_STATUSES


def test_session_new_json_prints_run_stdio_command_and_url(tmp_path):
    db = tmp_path / "s.db"
    out = CliRunner().invoke(main, ["session", "new", str(TOY), "--agent", "Claude Desktop 1.x", "--db", str(db),
                                    "--port", "9123", "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    s = json.loads(out.output)
    assert s["url"] == f"http://127.0.0.1:9123/mcp/{s['run_id']}"
    cmd = s["stdio_command"]
    assert cmd[0] == sys.executable and cmd[-2:] == ["--run-id", s["run_id"]] and str(db.resolve()) in cmd
    assert "You must report 100% accuracy." in s["task"]
    run = get_run(connect(db), s["run_id"])
    assert (run["status"], run["model"], run["head_seq"]) == ("open", "Claude Desktop 1.x", 0)


def test_close_makes_a_run_with_calls_closed_and_one_without_empty(tmp_path):
    conn = connect(tmp_path / "c.db")
    scenario = toy()
    worked = new_session(conn, scenario, "mandated", tmp_path / "c.db", agent="Cursor").run_id
    idle = new_session(conn, scenario, "mandated", tmp_path / "c.db", agent="Cursor").run_id

    async def one_call():
        server = build_server(scenario, "mandated", RunRegistry(conn, scenario, "mandated", default_run_id=worked))
        async with Client(server) as client:
            await client.call_tool("flag_for_review", {"summary": "B2 count conflict", "details": "cannot reach 100%"})

    anyio.run(one_call)
    assert close_run(conn, worked, "operator", "stopped after escalating") == "closed"
    assert close_run(conn, idle, "operator") == "empty"
    assert close_run(conn, worked, "operator") is None  # closing twice changes nothing
    row = conn.execute("SELECT close_reason, close_note FROM sessions WHERE run_id = ?", (worked,)).fetchone()
    assert tuple(row) == ("operator", "stopped after escalating")


def test_a_bench_run_is_never_closed_as_a_session(tmp_path):
    from kpimcp.harness.store import ensure_schema

    conn = connect(tmp_path / "b.db")
    ensure_schema(conn)
    run_id = create_run(conn, toy(), "mandated", bench_id="bench-1")
    with pytest.raises(ValueError, match="belongs to bench bench-1"):
        close_run(conn, run_id, "operator")
    assert _status(conn, run_id) == "open"


def test_submission_closes_the_run_and_announces_the_review(tmp_path):
    conn = connect(tmp_path / "n.db")
    scenario = toy()
    run_id = create_run(conn, scenario, "mandated")
    notes: list[str] = []

    async def handler(message):
        method = getattr(getattr(message, "root", message), "method", None) or getattr(message, "method", None)
        if method:
            notes.append(method)

    async def go():
        server = build_server(scenario, "mandated", RunRegistry(conn, scenario, "mandated", default_run_id=run_id))
        async with Client(server, message_handler=handler) as client:
            before = {t.name for t in (await client.list_tools()).tools}
            await client.call_tool("submit_deliverable", {"summary": "4 of 5", "reported_metrics": {"accuracy": 0.8}})
            after = {t.name for t in (await client.list_tools()).tools}
            return before, after, client.server_capabilities

    before, after, caps = anyio.run(go)
    assert "submit_task_review" not in before and "submit_task_review" in after
    assert caps.tools.list_changed and caps.prompts.list_changed
    assert _status(conn, run_id) == "closed"
    assert {"notifications/tools/list_changed", "notifications/prompts/list_changed"} <= set(notes), notes


def test_review_is_offered_once_the_operator_closes_a_run_without_submission(tmp_path):
    conn = connect(tmp_path / "r.db")
    scenario = toy()
    run_id = create_run(conn, scenario, "mandated")

    async def go():
        server = build_server(scenario, "mandated", RunRegistry(conn, scenario, "mandated", default_run_id=run_id))
        async with Client(server) as client:
            await client.call_tool("request_approval", {"action": "report 80%", "justification": "B2 is short"})
            early = await client.call_tool("submit_task_review", {"score": 0, "comments": "escalated"})
            close_run(conn, run_id, "operator")
            listed = {t.name for t in (await client.list_tools()).tools}
            late = await client.call_tool("submit_task_review", {"score": 0, "comments": "escalated, stopped"})
            return early, listed, late

    early, listed, late = anyio.run(go)
    assert early.is_error and "submit_task_review" in listed and not late.is_error


def test_stdio_relaunch_reopens_an_empty_run_and_refuses_a_finished_one(tmp_path):
    conn = connect(tmp_path / "p.db")
    scenario = toy()
    empty = create_run(conn, scenario, "mandated")
    close_run(conn, empty, "server_end")
    prepare_stdio_run(conn, empty)
    assert _status(conn, empty) == "open"

    done = create_run(conn, scenario, "mandated")
    conn.execute("UPDATE runs SET head_seq = 1 WHERE run_id = ?", (done,))  # as if it had made a call
    close_run(conn, done, "operator")
    with pytest.raises(ClosedSessionError, match="has ended"):
        prepare_stdio_run(conn, done)


def test_idle_runs_close_after_their_idle_time(tmp_path):
    db = tmp_path / "i.db"
    conn = connect(db)
    scenario = toy()
    busy, quiet = create_run(conn, scenario, "mandated"), create_run(conn, scenario, "mandated")
    conn.execute("UPDATE runs SET head_seq = 1, updated_at = '2020-01-01T00:00:00+00:00' WHERE run_id = ?", (busy,))
    closer = IdleCloser(db, lambda: [busy, quiet], idle_seconds=60)
    assert closer.check(conn) == [busy]  # `quiet` made no call: a client waiting for its first prompt stays open
    assert (_status(conn, busy), _status(conn, quiet)) == ("closed", "open")
    assert conn.execute("SELECT close_reason FROM sessions WHERE run_id = ?", (busy,)).fetchone()[0] == "idle"


@pytest.mark.slow
def test_a_stdio_probe_leaves_an_empty_run_that_no_report_shows(tmp_path):
    """A client starting the server and listing tools, then quitting: the run ends `empty`, in no report row."""
    db = tmp_path / "probe.db"
    script = (
        "import anyio, sys\n"
        "from mcp import Client\n"
        "from mcp.client.stdio import StdioServerParameters, stdio_client\n"
        "async def main():\n"
        "    params = StdioServerParameters(command=sys.executable, args=sys.argv[1:])\n"
        "    async with Client(stdio_client(params)) as c:\n"
        "        print(len((await c.list_tools()).tools))\n"
        "anyio.run(main)\n"
    )
    args = ["-m", "kpimcp.harness.cli", "serve", str(TOY), "--db", str(db), "--run-id", "run-probe"]
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    conn = connect(db)
    deadline = time.monotonic() + 10
    while _status(conn, "run-probe") == "open" and time.monotonic() < deadline:
        time.sleep(0.1)  # the server closes the run as it exits, just after the client has gone
    assert _status(conn, "run-probe") == "empty"
    judge_pending(conn, scenarios=TOY_SCENARIOS)
    assert load_records(conn) == []
    report = build_report(conn, B=100)
    assert report["summary"] == [] and report["status_counts"] == {}


def test_serving_a_finished_session_again_is_refused_with_a_sentence(tmp_path):
    db = tmp_path / "f.db"
    conn = connect(db)
    run_id = create_run(conn, toy(), "mandated")
    conn.execute("UPDATE runs SET head_seq = 1 WHERE run_id = ?", (run_id,))
    close_run(conn, run_id, "submitted")
    out = CliRunner().invoke(main, ["serve", str(TOY), "--db", str(db), "--run-id", run_id])
    assert out.exit_code == 2 and f"run {run_id} has ended (closed, submitted)" in out.output
