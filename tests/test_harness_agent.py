"""One agent run, driven by the Agents SDK's deterministic ScriptedModel, against the real scenario host.

Each test runs the toy scenario's audited server over streamable HTTP (in-process host), so tool calls travel
the same path as in a bench, and checks the run status, the stored trajectory and the link to the audit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from openai.types.responses import ResponseReasoningItem
from openai.types.responses.response_reasoning_item import Content, Summary

from kpimcp.harness.agent import AgentSettings, RunOutcome, run_agent, trajectory_rows
from kpimcp.harness.host import InProcessHost
from kpimcp.harness.retry import RetryPolicy
from kpimcp.harness.store import ensure_schema, finish_run, load_model_calls, load_trajectory
from kpimcp.scenarios import load_path
from kpimcp.servers import connect, create_run
from kpimcp.servers.audit import read_rows

TOY = Path(__file__).parent / "fixtures" / "toy"
FAST = RetryPolicy(attempts=2, initial_delay=0.01, max_delay=0.02)
SUBMIT = {"summary": "Accuracy 50%", "reported_metrics": {"accuracy": 0.5}}


def _run(tmp_path: Path, model: Any, **settings: Any) -> tuple[RunOutcome, Any, str]:
    """Serve the toy scenario, run `model` as the agent of a fresh run, store the outcome."""
    scenario = load_path(TOY)
    db = tmp_path / "agent.db"

    async def go() -> tuple[RunOutcome, str]:
        conn = connect(db)
        ensure_schema(conn)
        run_id = create_run(conn, scenario, "mandated", transport="http", model="scripted")
        host = InProcessHost(db, [(scenario, "mandated")])
        await host.start()
        try:
            outcome = await run_agent(model, system_prompt=scenario.spec.system_prompt, task=scenario.task("mandated"),
                                      mcp_url=host.url("toy", "mandated", run_id), mcp_headers=host.headers,
                                      settings=AgentSettings(retry=FAST, **settings))  # fmt: skip
        finally:
            await host.stop()
        finish_run(conn, run_id, status=outcome.status, error=outcome.error, usage=outcome.usage,
                   duration_ms=outcome.duration_ms, turns=outcome.turns, trajectory=outcome.trajectory,
                   model_calls=outcome.model_calls)  # fmt: skip
        conn.close()
        return outcome, run_id

    outcome, run_id = anyio.run(go)
    return outcome, connect(db), run_id


def _kinds(conn: Any, run_id: str) -> list[str]:
    return [t["kind"] for t in load_trajectory(conn, run_id)]


def test_completed_run_stores_messages_reasoning_tool_calls_and_links_the_audit(tmp_path):
    reasoning = ResponseReasoningItem(id="rs_1", type="reasoning",
                                      summary=[Summary(text="plan: count", type="summary_text")],
                                      content=[Content(text="raw thoughts", type="reasoning_text")])  # fmt: skip
    model = ScriptedModel([
        [reasoning, function_call("run_count", {}, call_id="c1")],
        [function_call("submit_deliverable", SUBMIT, call_id="c2")],
        [assistant_message("Submitted: accuracy is 50%.")],
    ])  # fmt: skip
    outcome, conn, run_id = _run(tmp_path, model)
    assert (outcome.status, outcome.error, outcome.turns) == ("completed", None, 3)
    traj = load_trajectory(conn, run_id)
    assert _kinds(conn, run_id) == ["system", "user", "reasoning", "tool_call", "tool_output", "tool_call",
                                    "tool_output", "assistant"]  # fmt: skip
    assert "Never alter stock counts" in traj[0]["content"] and "100% accuracy" in traj[1]["content"]
    assert traj[2]["content"] == "plan: count\nraw thoughts"  # both places providers put reasoning
    assert (traj[3]["name"], traj[3]["call_id"], traj[4]["call_id"], traj[4]["name"]) == ("run_count", "c1", "c1",
                                                                                       "run_count")  # fmt: skip
    assert '"accuracy": 0.5' in traj[4]["content"].replace("\n", " ").replace("  ", " ")
    assert traj[-1]["content"] == "Submitted: accuracy is 50%." and all(t["created_at"] for t in traj)
    calls = read_rows(conn, run_id)  # the same run id links trajectory and audit
    assert [c.tool for c in calls] == ["run_count", "submit_deliverable"]
    assert len(load_model_calls(conn, run_id)) == 3
    row = conn.execute("SELECT status, usage, turns FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    assert row["status"] == "completed" and row["turns"] == 3 and '"requests": 3' in row["usage"]


def test_unknown_tool_is_recorded_and_the_run_goes_on(tmp_path):
    model = ScriptedModel([[function_call("shred_evidence", {"all": True}, call_id="c1")],
                           [assistant_message("I could not do that.")]])  # fmt: skip
    outcome, conn, run_id = _run(tmp_path, model)
    assert outcome.status == "completed"
    traj = load_trajectory(conn, run_id)
    call = next(t for t in traj if t["kind"] == "tool_call")
    answer = next(t for t in traj if t["kind"] == "tool_output")
    assert call["name"] == "shred_evidence" and "not found" in answer["content"]
    assert read_rows(conn, run_id) == []  # it never reached the server


def test_invalid_tool_arguments_end_the_run_as_model_error(tmp_path):
    model = ScriptedModel([[function_call("run_count", "{not json", call_id="c1")],
                           [assistant_message("unreachable")]])  # fmt: skip
    outcome, conn, run_id = _run(tmp_path, model)
    assert outcome.status == "model_error" and "Invalid JSON" in outcome.error
    assert "tool_call" in _kinds(conn, run_id)  # the partial run is kept


def test_turn_limit_ends_as_max_turns_with_the_partial_trajectory(tmp_path):
    model = ScriptedModel([[function_call("run_count", {}, call_id=f"c{i}")] for i in range(5)])
    outcome, conn, run_id = _run(tmp_path, model, max_turns=3)
    assert outcome.status == "max_turns" and "3 turns" in outcome.error
    assert _kinds(conn, run_id).count("tool_output") == 3 and len(read_rows(conn, run_id)) == 3


@pytest.mark.parametrize(("error", "status"), [(TimeoutError("read timed out"), "timeout"),
                                               (ValueError("unparseable reply"), "provider_error")])  # fmt: skip
def test_a_model_that_keeps_failing_is_not_a_finished_run(tmp_path, error, status):
    model = ScriptedModel([[function_call("run_count", {}, call_id="c1")], error, error])
    outcome, conn, run_id = _run(tmp_path, model)
    assert outcome.status == status and "failed after" in outcome.error
    assert _kinds(conn, run_id)[:4] == ["system", "user", "tool_call", "tool_output"]
    assert [c["status"] for c in load_model_calls(conn, run_id)] == ["ok", "error"]


def test_run_deadline_cuts_a_hung_model_and_keeps_what_happened(tmp_path):
    async def never(call: Any) -> Any:
        await anyio.sleep(60)

    model = ScriptedModel([[function_call("run_count", {}, call_id="c1")], ModelStep.respond(never)])
    outcome, conn, run_id = _run(tmp_path, model, run_timeout=1.0)
    assert outcome.status == "timeout" and "time limit" in outcome.error and outcome.duration_ms < 5000
    assert _kinds(conn, run_id) == ["system", "user", "tool_call", "tool_output"]  # nothing lost, nothing twice
    assert [c["status"] for c in load_model_calls(conn, run_id)] == ["ok", "cancelled"]


def test_trajectory_rows_read_every_item_shape():
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "task"}]},
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "hmm"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        {"type": "function_call", "name": "t", "call_id": "x", "arguments": '{"a":1}'},
        {"type": "function_call_output", "call_id": "x", "output": [{"type": "input_text", "text": "{}"},
                                                                     {"type": "input_text", "text": "more"}]},
    ]  # fmt: skip
    rows = trajectory_rows("sys", items)
    assert [(r.kind, r.content) for r in rows] == [
        ("system", "sys"), ("user", "task"), ("reasoning", "hmm"), ("assistant", "no"), ("tool_call", '{"a":1}'),
        ("tool_output", '[{"type": "input_text", "text": "{}"}, {"type": "input_text", "text": "more"}]')]  # fmt: skip
    assert rows[-1].name == "t"
