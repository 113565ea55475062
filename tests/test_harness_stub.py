"""Benches against a local OpenAI-compatible server: the real openai client and chat-completions path.

Every failure mode a provider or the infrastructure can produce must end as a recorded, unscoreable run
status, never as a run that looks compliant.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from openai_stub import by_turn, error, garbage, hang, text, tool_call

import kpimcp.harness.host as host_module
from kpimcp.harness.bench import BenchResult, run_bench
from kpimcp.harness.config import load_config
from kpimcp.harness.store import load_model_calls, load_trajectory
from kpimcp.servers import connect

TOY = Path(__file__).parent / "fixtures" / "toy"
MODEL = "openai-compatible:stub-model"
FAST_RETRY = {"attempts": 3, "initial_delay": 0.01, "max_delay": 0.05}
SUBMIT = {"summary": "Accuracy 50%", "reported_metrics": {"accuracy": 0.5}}
HONEST = [tool_call("run_count", {}, reasoning="Let me count first."),
          tool_call("submit_deliverable", SUBMIT, reasoning="Report the truth.", reasoning_field="reasoning"),
          text("Submitted the audit: accuracy 50%.")]  # fmt: skip


def bench(db: Path, stub: Any, **overrides: Any) -> BenchResult:
    """One toy mandated run (or `repeats`) with the stub as the model, in-process host, fast retries."""
    options = {"scenarios": [str(TOY)], "variants": ["mandated"], "host": "inprocess", "retry": FAST_RETRY,
               "preflight": False,  # scripted replies are for the run; the pre-flight has its own tests
               "models": [{"spec": MODEL, "base_url": stub.base_url}]} | overrides  # fmt: skip
    return run_bench(load_config(None, **options), db)


def only_run(conn: Any) -> dict[str, Any]:
    rows = conn.execute("SELECT * FROM runs").fetchall()
    assert len(rows) == 1
    return dict(rows[0])


def verdicts(conn: Any) -> int:
    return conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]


@pytest.fixture
def offline_guard(monkeypatch):
    """Record (and refuse) any connection or DNS lookup that is not loopback, and every trace the Agents SDK
    starts, with a real-looking key set (tracing would export to OpenAI if it were on)."""
    from agents import TracingProcessor, add_trace_processor

    class Collector(TracingProcessor):
        def on_trace_start(self, trace: Any) -> None:
            blocked.append(f"trace started: {trace.name}")

        def on_trace_end(self, trace: Any) -> None: ...
        def on_span_start(self, span: Any) -> None: ...
        def on_span_end(self, span: Any) -> None: ...
        def shutdown(self) -> None: ...
        def force_flush(self) -> None: ...

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    monkeypatch.delenv("OPENAI_AGENTS_DISABLE_TRACING", raising=False)
    blocked: list[Any] = []
    add_trace_processor(Collector())
    real_connect, real_lookup = socket.socket.connect, socket.getaddrinfo

    def connect_guard(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("::1", "localhost") or "/" in host):
            blocked.append(f"connection to {address}")
            raise OSError("blocked by the test")
        return real_connect(self, address)

    def lookup_guard(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1", None):
            blocked.append(f"DNS lookup of {host}")
            raise OSError("blocked by the test")
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect_guard)
    monkeypatch.setattr(socket, "getaddrinfo", lookup_guard)
    return blocked


def test_normal_run_through_the_chat_completions_client(tmp_path, openai_stub, offline_guard):
    openai_stub.responder = by_turn(HONEST)
    result = bench(tmp_path / "b.db", openai_stub, temperature=0.3)
    conn = connect(tmp_path / "b.db")
    run = only_run(conn)
    assert (run["status"], run["model"], run["bench_id"]) == ("completed", MODEL, result.bench_id)
    traj = load_trajectory(conn, run["run_id"])
    assert [t["kind"] for t in traj] == ["system", "user", "reasoning", "tool_call", "tool_output", "reasoning",
                                         "tool_call", "tool_output", "assistant"]  # fmt: skip
    assert traj[2]["content"] == "Let me count first." and traj[5]["content"] == "Report the truth."
    calls = load_model_calls(conn, run["run_id"])
    assert len(calls) == 3 and all(c["input_tokens"] and c["output_tokens"] for c in calls)
    sent = openai_stub.chat_requests()
    assert len(sent) == 3 and sent[0].body["model"] == "stub-model" and sent[0].body["temperature"] == 0.3
    assert {t["function"]["name"] for t in sent[0].body["tools"]} >= {"run_count", "submit_deliverable"}
    assert result.table[0]["n_scored"] == 1 and result.table[0]["mr"] == 0.0  # judged: honest
    assert offline_guard == []  # no trace started, no connection or lookup beyond 127.0.0.1


def test_rate_limit_then_success_is_retried_inside_the_run(tmp_path, openai_stub):
    openai_stub.script(error(429, retry_after=0))
    openai_stub.responder = by_turn(HONEST)
    bench(tmp_path / "b.db", openai_stub)
    conn = connect(tmp_path / "b.db")
    run = only_run(conn)
    assert run["status"] == "completed" and '"retries": 1' in run["usage"]
    assert [c["attempts"] for c in load_model_calls(conn, run["run_id"])] == [2, 1, 1]
    assert len(conn.execute("SELECT * FROM audit").fetchall()) == 2  # the retry did not repeat any tool call


def test_server_error_forever_is_provider_error_and_never_scored(tmp_path, openai_stub):
    openai_stub.script(error(500).forever())
    result = bench(tmp_path / "b.db", openai_stub)
    conn = connect(tmp_path / "b.db")
    run = only_run(conn)
    assert run["status"] == "provider_error" and "HTTP 500" in run["error"] and "3 attempt" in run["error"]
    assert verdicts(conn) == 0 and result.failed == 1
    assert result.table[0]["n_scored"] == 0 and result.table[0]["n_errored"] == 1 and result.table[0]["mr"] is None


def test_garbage_reply_is_provider_error(tmp_path, openai_stub):
    openai_stub.script(garbage().forever())
    bench(tmp_path / "b.db", openai_stub)
    assert only_run(connect(tmp_path / "b.db"))["status"] == "provider_error"


def test_hung_endpoint_times_out(tmp_path, openai_stub):
    openai_stub.script(tool_call("run_count"), hang().forever())
    t0 = time.monotonic()
    bench(tmp_path / "b.db", openai_stub, request_timeout=0.3)
    conn = connect(tmp_path / "b.db")
    run = only_run(conn)
    assert run["status"] == "timeout" and time.monotonic() - t0 < 15
    assert verdicts(conn) == 0
    assert "tool_output" in [t["kind"] for t in load_trajectory(conn, run["run_id"])]


def test_run_wall_clock_limit(tmp_path, openai_stub):
    openai_stub.script(hang().forever())
    bench(tmp_path / "b.db", openai_stub, run_timeout=1)
    run = only_run(connect(tmp_path / "b.db"))
    assert run["status"] == "timeout" and "time limit of 1 s" in run["error"]


def test_unknown_tool_through_the_real_client(tmp_path, openai_stub):
    openai_stub.responder = by_turn([tool_call("delete_all_evidence", {"confirm": True}), *HONEST])
    bench(tmp_path / "b.db", openai_stub)
    conn = connect(tmp_path / "b.db")
    run = only_run(conn)
    assert run["status"] == "completed"
    traj = load_trajectory(conn, run["run_id"])
    assert traj[2]["name"] == "delete_all_evidence" and "not found" in traj[3]["content"]
    second = openai_stub.chat_requests()[1].body["messages"]
    assert any(m["role"] == "tool" and "not found" in str(m["content"]) for m in second)  # the model was told


def test_scenario_host_dying_mid_run_is_infra_error(tmp_path, openai_stub, monkeypatch):
    hosts: list[Any] = []
    real_start = host_module.SubprocessHost.start

    async def remember(self):
        hosts.append(self)
        await real_start(self)

    monkeypatch.setattr(host_module.SubprocessHost, "start", remember)

    def respond(body):
        turn = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if turn == 1 and hosts[0].alive():
            os.kill(hosts[0].pid, signal.SIGKILL)
            time.sleep(0.3)
        return HONEST[min(turn, 2)]

    openai_stub.responder = respond
    result = bench(tmp_path / "b.db", openai_stub, host="subprocess", mcp_timeout=5)
    conn = connect(tmp_path / "b.db")
    run = only_run(conn)
    assert run["status"] == "infra_error" and "host died" in run["error"]
    assert verdicts(conn) == 0 and result.failed == 1
    assert len(conn.execute("SELECT * FROM audit").fetchall()) == 1  # the call made before the crash is kept
