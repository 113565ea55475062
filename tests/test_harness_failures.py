"""Runs that never act, strict local servers, cut-off answers and the pre-flight check, against local stubs.

A model that cannot use the tools must never look aligned: it gets the neutral nudge, then its own status, and
no verdict. Every endpoint problem gets a sentence before the campaign starts.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openai_stub import OpenAIStub, by_turn, error, text, tool_call
from test_harness_stub import HONEST, MODEL, bench, only_run, verdicts

from kpimcp.harness.agent import NUDGE, strict_messages, text_tool_call
from kpimcp.harness.cli import main
from kpimcp.harness.diagnose import PreflightError
from kpimcp.harness.models import ModelSpecError, parse_model_spec
from kpimcp.harness.store import load_model_calls, load_trajectory
from kpimcp.servers import connect


def nudges_sent(stub: OpenAIStub) -> list[int]:
    """Per chat request, how many nudge messages its conversation holds."""
    return [sum(1 for m in r.body["messages"] if m.get("role") == "user" and m.get("content") == NUDGE)
            for r in stub.chat_requests()]  # fmt: skip


def test_a_model_answering_only_in_text_is_nudged_then_no_action_and_never_scored(tmp_path, openai_stub):
    openai_stub.responder = lambda body: text("I understand the task and will get to it.")
    result = bench(tmp_path / "b.db", openai_stub, nudges=2)
    conn = connect(tmp_path / "b.db")
    run = only_run(conn)
    assert run["status"] == "no_action"
    assert run["error"] == "the model made no tool call (after 2 nudge(s))"
    assert nudges_sent(openai_stub) == [0, 1, 2]  # the first reply, then one request per nudge
    traj = load_trajectory(conn, run["run_id"])
    assert [t["content"] for t in traj if t["kind"] == "user"][1:] == [NUDGE, NUDGE]
    assert verdicts(conn) == 0 and result.table[0]["n_scored"] == 0
    assert result.failed == 0  # counted apart: not a failure to retry


def test_a_nudged_model_that_then_acts_completes(tmp_path, openai_stub):
    openai_stub.responder = by_turn([text("Let me think about it."), *HONEST])
    bench(tmp_path / "b.db", openai_stub, nudges=3)
    run = only_run(connect(tmp_path / "b.db"))
    assert run["status"] == "completed"
    assert nudges_sent(openai_stub) == [0, 1, 1, 1]  # nudged once; after submitting, no more nudges


def test_no_nudges_means_the_run_ends_at_the_first_text_reply(tmp_path, openai_stub):
    openai_stub.responder = lambda body: text("Nothing to do.")
    bench(tmp_path / "b.db", openai_stub, nudges=0)
    assert only_run(connect(tmp_path / "b.db"))["status"] == "no_action"
    assert len(openai_stub.chat_requests()) == 1


def test_a_tool_call_written_as_text_is_no_action(tmp_path, openai_stub):
    written = '<tool_call>\n{"name": "run_count", "arguments": {}}\n</tool_call>'
    openai_stub.responder = lambda body: text(written)
    bench(tmp_path / "b.db", openai_stub, nudges=1)
    conn = connect(tmp_path / "b.db")
    run = only_run(conn)
    assert run["status"] == "no_action"
    assert run["error"].startswith("the model wrote a tool call as text that the provider did not parse (after 1")
    assert "<tool_call>" in run["error"] and verdicts(conn) == 0


def test_text_tool_call_detection() -> None:
    assert text_tool_call('{"name": "get_record", "arguments": {"id": 1}}')
    assert text_tool_call("[TOOL_CALLS] [{...}]") and text_tool_call("<function=update_record>{}</function>")
    assert text_tool_call("I refuse to backdate these records; it would be fraud.") is None
    assert text_tool_call('The JSON {"name": "Ann"} is a patient.') is None


def test_strict_server_auto_switches_to_string_contents(tmp_path):
    with OpenAIStub(strict=True) as stub:
        stub.responder = by_turn(HONEST)
        result = bench(tmp_path / "b.db", stub)
        run = only_run(connect(tmp_path / "b.db"))
        codes = [r.reply is not None for r in stub.chat_requests()]
    assert run["status"] == "completed"
    assert codes.count(False) == 1  # one rejected request, resent once with strings, then strict for good
    assert any("string contents were sent from then on" in n for n in result.notes)


def test_strict_compat_mode_is_never_rejected(tmp_path):
    with OpenAIStub(strict=True) as stub:
        stub.responder = by_turn(HONEST)
        bench(tmp_path / "b.db", stub, models=[{"spec": MODEL, "base_url": stub.base_url, "compat": "strict"}])
        assert all(r.reply is not None for r in stub.chat_requests())
        assert all(isinstance(m["content"], str) for r in stub.chat_requests() for m in r.body["messages"]
                   if "content" in m)  # fmt: skip
    assert only_run(connect(tmp_path / "b.db"))["status"] == "completed"


def test_strict_rejection_without_compat_keeps_the_body_and_is_not_retried(tmp_path):
    with OpenAIStub(strict=True) as stub:
        stub.responder = by_turn(HONEST)
        bench(tmp_path / "b.db", stub, models=[{"spec": MODEL, "base_url": stub.base_url, "compat": "off"}])
        sent = len(stub.chat_requests())
    conn = connect(tmp_path / "b.db")
    run = only_run(conn)
    assert run["status"] == "provider_error" and sent == 2  # turn 1 ok, turn 2 rejected once, never resent
    first_line = run["error"].splitlines()[0]
    assert "after 1 attempt(s): HTTP 500:" in first_line and "Input should be a valid string" in first_line
    assert "response body:" in run["error"] and "'loc': ('body', 'messages'" in run["error"]
    failed = [c for c in load_model_calls(conn, run["run_id"]) if c["status"] == "error"]
    assert failed[0]["attempts"] == 1 and "validation errors" in failed[0]["error"]


def test_strict_messages_are_strings() -> None:
    sent = [{"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "a"}, {"type": "text",
                                                                                        "text": "b"}]},
            {"role": "user", "content": "hi"}]  # fmt: skip
    assert [m["content"] for m in strict_messages(sent)] == ["", "a\nb", "hi"]


def test_an_answer_cut_off_by_the_token_limit_is_truncated_not_completed(tmp_path, openai_stub):
    openai_stub.responder = by_turn([tool_call("run_count", {}), text("The accuracy is").cut_off()])
    bench(tmp_path / "b.db", openai_stub)
    conn = connect(tmp_path / "b.db")
    run = only_run(conn)
    assert run["status"] == "truncated" and "finish_reason: length" in run["error"]
    assert verdicts(conn) == 0
    assert load_model_calls(conn, run["run_id"])[-1]["finish_reason"] == "length"


# ---- pre-flight ----------------------------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _preflight(tmp_path: Path, base_url: str, **entry: Any) -> str:
    with pytest.raises(PreflightError) as caught:
        endpoint = type("Endpoint", (), {"base_url": base_url})()
        bench(tmp_path / "b.db", endpoint, preflight=True, models=[{"spec": MODEL, "base_url": base_url, **entry}])
    return str(caught.value)


def test_preflight_closed_port(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    assert _preflight(tmp_path, url) == (
        f"{MODEL}: nothing is listening at {url} (connection refused); is the server running on that port? "
        "(nothing was run; --no-preflight skips this check)")
    assert not (tmp_path / "b.db").exists() or connect(tmp_path / "b.db").execute(
        "SELECT COUNT(*) FROM runs").fetchone()[0] == 0


def test_preflight_401_names_the_key_variable(tmp_path, openai_stub, monkeypatch):
    monkeypatch.setenv("MY_KEY", "wrong")
    openai_stub.script(error(401, "Invalid API key"))
    message = _preflight(tmp_path, openai_stub.base_url, api_key_env="MY_KEY")
    assert message.startswith(f"{MODEL}: {openai_stub.base_url} refused the API key (HTTP 401); check the key in "
                              "$MY_KEY")


def test_preflight_unknown_model(tmp_path, openai_stub):
    openai_stub.script(error(404, "model 'stub-model' not found"))
    message = _preflight(tmp_path, openai_stub.base_url)
    assert message.startswith(f"{MODEL}: {openai_stub.base_url} does not serve the model 'stub-model' (HTTP 404: "
                              "model 'stub-model' not found)")


def test_preflight_passes_a_working_endpoint_and_notes_a_5xx(tmp_path, openai_stub):
    openai_stub.script(error(503, "loading"))
    openai_stub.responder = by_turn(HONEST)
    result = bench(tmp_path / "b.db", openai_stub, preflight=True)
    assert only_run(connect(tmp_path / "b.db"))["status"] == "completed"
    assert any(n.startswith(f"pre-flight: {MODEL}:") and "HTTP 503" in n for n in result.notes)


def test_no_scheme_is_said_before_anything_else():
    with pytest.raises(ModelSpecError, match=r"the base URL 'localhost:8000' has no http:// or https:// scheme; "
                                             r"write it in full, e.g. http://localhost:8000"):
        parse_model_spec(MODEL, base_url="localhost:8000")


def test_cli_preflight_failure_is_one_sentence_exit_2(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    out = CliRunner().invoke(main, ["bench", "-m", MODEL, "--base-url", url, "-s", "aml_sar_rate", "--db",
                                    str(tmp_path / "b.db")])  # fmt: skip
    assert out.exit_code == 2
    assert "nothing is listening at" in out.output and "Traceback" not in out.output
