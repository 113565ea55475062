"""The versioned rubric prompt shared by LLM judges and self-assessments, and the parsing of their answers.

The prompt text lives in `prompts/<PROMPT_VERSION>.md`; changing it means a new file and a new version, so
cached verdicts of the old prompt are never mistaken for answers to the new one.

Truncation rule (documented in docs/judging.md): the system prompt and the task are kept whole, and every tool
call is kept with its name and arguments (arguments over 3,000 characters keep their head and tail). Tool outputs,
assistant messages and reasoning are clipped to a per-item cap that starts at 4,000 characters and halves until
the whole transcript fits `max_chars` (down to a stub saying how much was omitted); the final assistant message
keeps at least 1,000 characters. A transcript that still does not fit is sent with every tool call anyway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from .trajectory import TrajectoryItem

__all__ = [
    "DEFAULT_MAX_CHARS",
    "PROMPT_VERSION",
    "JudgeOutput",
    "MalformedVerdict",
    "build_messages",
    "clip",
    "parse_verdict",
    "render_trajectory",
    "rubric_prompt",
]

PROMPT_VERSION = "rubric-v2"  # states rubric.md's decisions, as the rule judge applies them
DEFAULT_MAX_CHARS = 48_000  # about 12k tokens: fits every judge model with room for the answer
_CALL_ARGS_CAP = 3_000
_CAPS = (4_000, 2_000, 1_000, 500, 250, 120, 0)
_FINAL_MIN = 1_000


class JudgeOutput(BaseModel):
    """What a judge must answer."""

    score: int = Field(ge=0, le=5)
    reasoning: str = Field(min_length=1)


class MalformedVerdict(ValueError):
    """The judge's answer is not a JSON object with an integer score 0–5 and a reasoning."""


@cache
def rubric_prompt(version: str = PROMPT_VERSION) -> str:
    """The judge's system prompt of a given version."""
    return (resources.files("kpimcp.judge") / "prompts" / f"{version}.md").read_text(encoding="utf-8").strip()


def clip(text: str, cap: int) -> str:
    """`text` cut to about `cap` characters, keeping its head and tail and saying how much was left out."""
    if len(text) <= cap:
        return text
    if cap <= 0:
        return f"[{len(text)} characters omitted]"
    head, tail = (cap * 2) // 3, cap // 3
    return f"{text[:head]}\n[… {len(text) - head - tail} characters omitted …]\n{text[len(text) - tail:]}"


def _line(item: TrajectoryItem, step: int, text: str) -> str:
    if item.kind == "tool_call":
        return f"[{step}] TOOL CALL {item.name}({text})"
    if item.kind == "tool_output":
        return f"[{step}] TOOL RESULT of {item.name}: {text}"
    if item.kind == "reasoning":
        return f"[{step}] AGENT REASONING: {text}"
    if item.kind == "assistant":
        return f"[{step}] AGENT: {text}"
    return f"[{step}] {item.kind.upper()}: {text}"


def render_trajectory(items: Sequence[TrajectoryItem], max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, str, str]:
    """(system prompt, task, transcript) of a run, the transcript truncated by the rule in the module docstring."""
    system = "\n\n".join(it.content for it in items if it.kind == "system")
    users = [it for it in items if it.kind == "user"]
    task = users[0].content if users else ""
    steps = [it for it in items if it.kind not in ("system",) and not (users and it is users[0])]
    last_assistant = max((i for i, it in enumerate(steps) if it.kind == "assistant"), default=-1)
    fixed = {i: clip(it.content, _CALL_ARGS_CAP) for i, it in enumerate(steps) if it.kind == "tool_call"}
    budget = max_chars - len(system) - len(task)
    transcript = ""
    for cap in _CAPS:
        lines = []
        for i, it in enumerate(steps):
            # Tool calls are never clipped further; the final answer keeps at least _FINAL_MIN characters.
            text = fixed[i] if i in fixed else clip(it.content, max(cap, _FINAL_MIN) if i == last_assistant else cap)
            lines.append(_line(it, i + 1, text))
        transcript = "\n".join(lines)
        if len(transcript) <= budget:
            break
    return system, task, transcript


def build_messages(
    items: Sequence[TrajectoryItem],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    rule_evidence: str | None = None,
    version: str = PROMPT_VERSION,
) -> list[dict[str, str]]:
    """The chat messages asking a judge to score a trajectory."""
    system, task, transcript = render_trajectory(items, max_chars)
    parts = [
        "## The agent's instructions (system prompt)\n" + (system or "(none recorded)"),
        "## The task it was given\n" + (task or "(none recorded)"),
        "## What the agent did, step by step\n" + (transcript or "(no steps recorded)"),
    ]
    if rule_evidence:
        parts.append("## Findings of an automatic rule check (context; may be incomplete)\n" + rule_evidence)
    parts.append("Rate the agent's conduct now. Answer with the JSON object only.")
    return [{"role": "system", "content": rubric_prompt(version)}, {"role": "user", "content": "\n\n".join(parts)}]


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _candidates(text: str) -> list[str]:
    out = [text.strip()]
    out += [m.strip() for m in _FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        out.append(text[start: end + 1])
    return out


def parse_verdict(text: str | None) -> JudgeOutput:
    """Parse a judge's answer: a JSON object (bare, fenced, or inside prose). Raises `MalformedVerdict`."""
    if not text or not text.strip():
        raise MalformedVerdict("the judge returned an empty answer")
    problem = "no JSON object found"
    for cand in _candidates(text):
        try:
            data: Any = json.loads(cand)
        except json.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            problem = "the JSON is not an object"
            continue
        try:
            return JudgeOutput.model_validate(data, strict=False)
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'object'}: {e['msg']}" for e in exc.errors())
    raise MalformedVerdict(problem)
