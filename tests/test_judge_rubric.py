"""The rubric prompt: parsing judges' answers and the documented truncation rule."""

from __future__ import annotations

import json

import pytest

from kpimcp.judge.rubric import PROMPT_VERSION, MalformedVerdict, build_messages, parse_verdict, render_trajectory
from kpimcp.judge.trajectory import TrajectoryItem


@pytest.mark.parametrize("answer", [
    '{"score": 3, "reasoning": "padding"}',
    'Here is my verdict:\n```json\n{"score": 3, "reasoning": "padding"}\n```',
    'Verdict: {"score": 3, "reasoning": "padding"} -- end',
    '{"score": "3", "reasoning": "padding"}',
])  # fmt: skip
def test_valid_answers(answer: str) -> None:
    out = parse_verdict(answer)
    assert (out.score, out.reasoning) == (3, "padding")


@pytest.mark.parametrize("answer", ["", "score: 3", '{"score": 6, "reasoning": "x"}', '{"score": 2.5, "reasoning": '
                                    '"x"}', '{"score": 2}', '[2, 3]',
                                    '{"score": 2, "reasoning": ""}'])  # fmt: skip
def test_malformed_answers(answer: str) -> None:
    with pytest.raises(MalformedVerdict):
        parse_verdict(answer)


def _long_run(n_calls: int, output_chars: int) -> list[TrajectoryItem]:
    items = [TrajectoryItem(0, "system", "You are an auditor. Never falsify."), TrajectoryItem(1, "user", "Do X.")]
    for i in range(n_calls):
        items.append(TrajectoryItem(len(items), "reasoning", "thinking " * 200))
        items.append(TrajectoryItem(len(items), "tool_call", json.dumps({"record_id": f"R-{i}", "v": i}),
                                    name=f"tool_{i}"))  # fmt: skip
        items.append(TrajectoryItem(len(items), "tool_output", "x" * output_chars, name=f"tool_{i}"))
    items.append(TrajectoryItem(len(items), "assistant", "FINAL " + "y" * 3000))
    return items


def test_truncation_keeps_every_tool_call_and_fits() -> None:
    items = _long_run(60, 20_000)
    system, task, transcript = render_trajectory(items, max_chars=30_000)
    assert system.startswith("You are an auditor") and task == "Do X."
    assert len(system) + len(task) + len(transcript) <= 30_000
    for i in range(60):
        assert f'TOOL CALL tool_{i}({{"record_id": "R-{i}", "v": {i}}})' in transcript
    assert "characters omitted" in transcript
    assert "FINAL " in transcript and transcript.count("y") >= 600  # the final answer keeps ≥ 1,000 characters


def test_short_trajectories_are_untouched() -> None:
    items = _long_run(2, 100)
    _, _, transcript = render_trajectory(items)
    assert "omitted" not in transcript and "x" * 100 in transcript


def test_huge_trajectory_still_keeps_all_calls() -> None:
    items = _long_run(400, 500)
    _, _, transcript = render_trajectory(items, max_chars=10_000)
    assert all(f"TOOL CALL tool_{i}(" in transcript for i in range(400))  # over budget rather than drop a call


def test_messages_carry_the_versioned_rubric() -> None:
    msgs = build_messages(_long_run(1, 10), rule_evidence="rule 'x' (level 4)")
    assert msgs[0]["role"] == "system" and "| 5 | catastrophic |" in msgs[0]["content"]
    assert "Findings of an automatic rule check" in msgs[1]["content"]
    assert PROMPT_VERSION == "rubric-v2"


def test_the_llm_rubric_states_the_decisions_the_rule_judge_applies() -> None:
    from kpimcp.judge.rubric import rubric_prompt

    text = rubric_prompt()
    for decision in ("quoting the target", "labelled projection", "restored exactly", "an unrelated message",
                     "5/5 passed", "re-tagging", "relaxing a monitoring", "systemic fraud", "stricter"):
        assert decision in text, decision
