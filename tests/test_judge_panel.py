"""The LLM judge panel and self-assessment against a local OpenAI-compatible stub (127.0.0.1 only)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from judge_support import TOY_SCENARIOS, toy_db
from openai_stub import Reply, error, garbage, text

from kpimcp.harness.cli import main
from kpimcp.harness.models import parse_model_spec
from kpimcp.harness.retry import RetryPolicy
from kpimcp.judge import judge_pending
from kpimcp.judge.llm import AskOptions, model_family, same_family
from kpimcp.judge.metrics import load_records
from kpimcp.judge.panel import run_panel
from kpimcp.judge.rubric import PROMPT_VERSION
from kpimcp.judge.selfcheck import self_assess
from kpimcp.judge.store import get_verdict

pytestmark = pytest.mark.usefixtures("no_network_env")

GPT_JUDGE = "openai-compatible:gpt-4o-mini"  # family openai: must skip the gpt-5 run
QWEN_JUDGE = "openai-compatible:qwen3-judge"
FAST = AskOptions(retry=RetryPolicy(attempts=2, initial_delay=0, max_delay=0))


def verdict(score: int, reasoning: str = "because") -> Reply:
    return text(json.dumps({"score": score, "reasoning": reasoning}))


@pytest.fixture
def conn(tmp_path):
    c = toy_db(tmp_path / "r.db", [("compliant", "mandated", "openai:gpt-5", "completed"),
                                   ("l4_edit", "mandated", "openrouter:anthropic/claude-x", "completed")])  # fmt: skip
    judge_pending(c, scenarios=TOY_SCENARIOS)
    return c


def panel(conn, stub, judges=(GPT_JUDGE, QWEN_JUDGE), **kw: Any):
    specs = [parse_model_spec(j, base_url=stub.base_url) for j in judges]
    return anyio.run(lambda: run_panel(conn, specs, options=kw.pop("options", FAST), **kw))


def by_model(scores: dict[str, int]):
    return lambda body: verdict(scores[body["model"]])


def test_panel_scores_with_self_exclusion_and_median(conn, openai_stub) -> None:
    openai_stub.responder = by_model({"gpt-4o-mini": 4, "qwen3-judge": 2})
    res = panel(conn, openai_stub)
    assert (res.scored, res.errors, res.excluded, res.cached) == (3, 0, 1, 0)
    assert [r.body["model"] for r in openai_stub.chat_requests()].count("gpt-4o-mini") == 1  # only the claude run
    recs = {r.run_id: r for r in load_records(conn)}
    assert recs["r0"].judge_scores == {QWEN_JUDGE: 2}  # gpt-4o-mini never scores gpt-5's run
    assert (recs["r1"].panel_score, recs["r1"].score, recs["r1"].source) == (3.0, 3.0, "panel")  # median(4, 2)
    v = get_verdict(conn, "r1", GPT_JUDGE, PROMPT_VERSION)
    assert v is not None and (v.kind, v.status, v.score, v.explanation) == ("llm", "ok", 4, "because")
    # The judge saw the rubric and the whole trajectory, tool calls included.
    body = openai_stub.chat_requests()[0].body
    assert "data falsification" in body["messages"][0]["content"]
    assert "TOOL CALL update_record" in json.dumps(body["messages"]) or "TOOL CALL run_count" in json.dumps(body)


def test_second_pass_is_cached_and_sends_nothing(conn, openai_stub) -> None:
    openai_stub.responder = by_model({"gpt-4o-mini": 4, "qwen3-judge": 2})
    panel(conn, openai_stub)
    sent = len(openai_stub.chat_requests())
    res = panel(conn, openai_stub)
    assert len(openai_stub.chat_requests()) == sent
    assert (res.scored, res.cached, res.excluded) == (0, 3, 1)


def test_malformed_answer_is_asked_again(conn, openai_stub) -> None:
    openai_stub.script(text("Clearly a violation, score four."), text('```json\n{"score": 5, "reasoning": "r"}\n```'),
                       model="qwen3-judge")  # fmt: skip
    openai_stub.default = verdict(1)
    panel(conn, openai_stub, judges=(QWEN_JUDGE,), model="openai:gpt-5")
    v = get_verdict(conn, "r0", QWEN_JUDGE, PROMPT_VERSION)
    assert v is not None and (v.status, v.score) == ("ok", 5)
    second = openai_stub.chat_requests()[1].body["messages"]
    assert second[-2] == {"role": "assistant", "content": "Clearly a violation, score four."}
    assert "not valid" in second[-1]["content"]


@pytest.mark.parametrize("bad", [text("no json at all"), text('{"score": 7, "reasoning": "x"}'),
                                 text('{"score": "high", "reasoning": "x"}'), text('{"reasoning": "x"}')])  # fmt: skip
def test_always_malformed_is_a_judge_error(conn, openai_stub, bad: Reply) -> None:
    openai_stub.default = bad
    res = panel(conn, openai_stub, judges=(QWEN_JUDGE,), model="openai:gpt-5")
    assert (res.scored, res.errors) == (0, 1)
    assert len(openai_stub.chat_requests()) == 3  # AskOptions.attempts
    v = get_verdict(conn, "r0", QWEN_JUDGE, PROMPT_VERSION)
    assert v is not None and v.status == "judge_error" and v.score is None
    assert len(json.loads(v.raw or "[]")) == 3
    (rec,) = [r for r in load_records(conn) if r.run_id == "r0"]
    assert (rec.judge_scores, rec.judge_errors, rec.source, rec.score) == ({}, 1, "rule", 0.0)


@pytest.mark.parametrize("failure", [error(500).forever(), garbage().forever(), error(401, "bad key").forever()])
def test_failing_judge_records_judge_error(conn, openai_stub, failure: Reply) -> None:
    openai_stub.default = failure
    res = panel(conn, openai_stub, judges=(QWEN_JUDGE,))
    assert (res.scored, res.errors) == (0, 2)
    for run_id in ("r0", "r1"):
        v = get_verdict(conn, run_id, QWEN_JUDGE, PROMPT_VERSION)
        assert v is not None and v.status == "judge_error" and v.score is None
        assert "request failed" in (v.explanation or "")
    assert all(r.source == "rule" for r in load_records(conn))
    # Errors are cached too; --retry-errors asks again.
    sent = len(openai_stub.chat_requests())
    assert panel(conn, openai_stub, judges=(QWEN_JUDGE,)).cached == 2 and len(openai_stub.chat_requests()) == sent
    openai_stub.default = verdict(3)
    assert panel(conn, openai_stub, judges=(QWEN_JUDGE,), retry_errors=True).scored == 2


def test_exact_exclusion_and_family_overrides(conn, openai_stub) -> None:
    openai_stub.default = verdict(2)
    assert panel(conn, openai_stub, judges=(GPT_JUDGE,), exclusion="exact").excluded == 0
    res = panel(conn, openai_stub, judges=(QWEN_JUDGE,), families={"*qwen3*": "anthropic"})
    assert res.excluded == 1  # qwen3-judge declared the same family as the claude run


def test_model_families() -> None:
    assert model_family("openai:gpt-5") == model_family("openrouter:openai/gpt-4o") == "openai"
    assert model_family("openai:o3-mini") == "openai"
    assert model_family("openrouter:x-ai/grok-4") == "xai"
    assert model_family("litellm:anthropic/claude-sonnet-4") == "anthropic"
    assert model_family("openrouter:meta-llama/llama-3.1-70b") == "meta"
    assert model_family("openai-compatible:my-ft-model", {"openai-compatible:my-ft-*": "openai"}) == "openai"
    assert same_family("openai:gpt-4o", "openai:gpt-5")
    assert not same_family("openai:gpt-4o", "openai:gpt-5", mode="exact")
    assert not same_family("openrouter:x-ai/grok-4", "openai:gpt-5")
    assert not same_family("openai:gpt-5", None)


def test_self_assessment_uses_the_runs_own_model_and_the_same_prompt(tmp_path, openai_stub) -> None:
    conn = toy_db(tmp_path / "s.db", [("l4_edit", "mandated", "openai-compatible:agent-x", "completed"),
                                      ("compliant", "mandated", "reference:compliant", "completed")])  # fmt: skip
    judge_pending(conn, scenarios=TOY_SCENARIOS)
    openai_stub.responder = by_model({"agent-x": 1, "qwen3-judge": 4})
    res = anyio.run(lambda: self_assess(conn, base_url=openai_stub.base_url, options=FAST))
    assert (res.scored, res.skipped) == (1, 1)  # the offline reference agent has no model to ask
    (req,) = openai_stub.chat_requests()
    assert req.body["model"] == "agent-x"
    v = get_verdict(conn, "r0", "self:openai-compatible:agent-x", PROMPT_VERSION)
    assert v is not None and (v.kind, v.score) == ("self", 1)
    # Same rubric, same transcript, no hint that it is the model's own run.
    panel(conn, openai_stub, judges=(QWEN_JUDGE,), model="openai-compatible:agent-x")
    assert openai_stub.chat_requests()[1].body["messages"] == req.body["messages"]
    assert "your own" not in json.dumps(req.body["messages"]).lower()
    (rec,) = [r for r in load_records(conn) if r.run_id == "r0"]
    assert (rec.score, rec.self_score) == (4.0, 1)  # flagged by the panel, not recognised by itself
    assert anyio.run(lambda: self_assess(conn, base_url=openai_stub.base_url, options=FAST)).cached == 1


def test_cli_judge_with_a_panel(conn, openai_stub, tmp_path) -> None:
    db = conn.execute("PRAGMA database_list").fetchone()[2]
    openai_stub.default = verdict(3)
    args = ["judge", "--db", db, "--judge-model", QWEN_JUDGE, "--base-url", openai_stub.base_url, "--json"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    assert summary["panel"]["scored"] == 2 and summary["prompt_version"] == PROMPT_VERSION
    sent = len(openai_stub.chat_requests())
    out = CliRunner().invoke(main, args)
    assert json.loads(out.output)["panel"]["cached"] == 2 and len(openai_stub.chat_requests()) == sent
    bad = CliRunner().invoke(main, ["judge", "--db", db, "--judge-model", "reference:compliant"])
    assert bad.exit_code == 2 and "cannot judge" in bad.output
    bad = CliRunner().invoke(main, ["judge", "--db", db, "--judge-model", "gpt5"])
    assert bad.exit_code == 2 and "provider:model" in bad.output
