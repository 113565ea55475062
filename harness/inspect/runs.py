"""kpimcp runs for Inspect samples: opened in setup, closed with the Inspect messages as their trajectory and a
status that says honestly how the sample ended.

| how the sample ended                                   | status           | scoreable |
|--------------------------------------------------------|------------------|-----------|
| the agent finished                                     | `completed`      | yes       |
| message, turn, token or cost limit                     | `max_turns`      | yes       |
| the last answer was cut off (stop reason `max_tokens`) | `truncated`      | no        |
| no tool call at all, or tool calls written as text     | `no_action`      | no (apart)|
| time or working limit                                  | `timeout`        | no        |
| the model API failed (provider exception)              | `provider_error` | no        |
| operator interruption, custom limit, any other error   | `infra_error`    | no        |

A limit is never `completed`: the error column names the limit and its value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kpimcp.harness.agent import text_tool_call
from kpimcp.harness.store import TrajectoryRow, ensure_schema, finish_run, start_run_attempt
from kpimcp.scenarios import Scenario
from kpimcp.servers import connect, create_run
from kpimcp.servers.store import transaction

__all__ = ["Outcome", "close_run", "inaction", "open_run", "outcome_from", "trajectory_rows"]

_BUDGET_LIMITS = {"message", "turn", "token", "cost"}
_TIME_LIMITS = {"time", "working"}
# Exceptions raised by model SDKs (after Inspect's own retries) mean the provider failed, not the agent.
_PROVIDER_MODULES = ("openai", "anthropic", "google", "mistralai", "groq", "httpx", "httpcore", "botocore",
                     "aiohttp", "litellm", "together", "inspect_ai.model")  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """A run's closing status and its one-sentence error (None when it completed)."""

    status: str
    error: str | None = None


def open_run(db: str, scenario: Scenario, variant: str, *, model: str, epoch: int, transport: str,
             eval_id: str) -> str:  # fmt: skip
    """Create the run row of one sample × epoch (before any tool call, so a run with no call still exists)."""
    conn = connect(db)
    try:
        ensure_schema(conn)
        run_id = create_run(conn, scenario, variant, transport=transport, model=model, bench_id=f"inspect:{eval_id}")
        cell = f"inspect|{model}|{scenario.id}@v{scenario.version}|{variant}|r{epoch - 1}"
        start_run_attempt(conn, run_id, cell=cell, repeat=epoch - 1)
        return run_id
    finally:
        conn.close()


def outcome_from(limits: Iterable[Any], error: BaseException | str | None = None) -> Outcome:
    """The status from Inspect's `SampleLimitEvent`s (type, limit, message) and the sample's error, if any."""
    if error is not None:
        return _error_outcome(error)
    for event in limits:
        kind, value = getattr(event, "type", "custom"), getattr(event, "limit", None)
        what = f"the Inspect {kind} limit" + (f" ({value:g})" if isinstance(value, int | float) else "")
        if kind in _BUDGET_LIMITS:
            return Outcome("max_turns", f"{what} was reached")
        if kind in _TIME_LIMITS:
            return Outcome("timeout", f"{what} was reached")
        return Outcome("infra_error", f"{what} stopped the sample: {getattr(event, 'message', '')}".strip())
    return Outcome("completed")


def inaction(outcome: Outcome, messages: Sequence[Any], last_stop_reason: str | None) -> Outcome:
    """`truncated` for a last answer cut off by the model's token limit; `no_action` for a run whose model never
    called a tool (or wrote its calls as text the provider did not parse), as `kpimcp bench` does."""
    if outcome.status == "completed" and last_stop_reason == "max_tokens":
        return Outcome("truncated", "the model's last answer was cut off by its token limit (stop reason max_tokens)")
    if outcome.status not in ("completed", "max_turns"):
        return outcome
    answers = [m for m in messages if m.role == "assistant"]
    written = text_tool_call(_text(answers[-1].content)[0]) if answers and not answers[-1].tool_calls else None
    if written:
        return Outcome("no_action", f"the model wrote a tool call as text that the provider did not parse: {written}")
    if not any(m.tool_calls for m in answers):
        return Outcome("no_action", "the model made no tool call")
    return outcome


def _error_outcome(error: BaseException | str) -> Outcome:
    if isinstance(error, str):
        return Outcome("infra_error", error[:500])
    text = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"[:500]
    if isinstance(error, TimeoutError):
        return Outcome("timeout", text)
    if type(error).__module__.startswith(_PROVIDER_MODULES):
        return Outcome("provider_error", text)
    return Outcome("infra_error", text)


def _text(content: Any) -> tuple[str, list[str]]:
    """Plain text and reasoning texts of a message's content (a string or a list of content parts)."""
    if isinstance(content, str):
        return content, []
    texts, reasoning = [], []
    for part in content or []:
        kind = getattr(part, "type", None)
        if kind == "text":
            texts.append(part.text)
        elif kind == "reasoning":
            reasoning.append(part.summary or part.reasoning or "")
    return "\n".join(texts), [r for r in reasoning if r]


def trajectory_rows(messages: Sequence[Any]) -> list[TrajectoryRow]:
    """Inspect chat messages as kpimcp trajectory items (system, user, assistant, reasoning, tool_call/output)."""
    rows: list[TrajectoryRow] = []
    for msg in messages:
        text, reasoning = _text(msg.content)
        if msg.role == "tool":
            out = text if msg.error is None else f"[error] {msg.error.message}"
            rows.append(TrajectoryRow("tool_output", out, role="tool", name=msg.function, call_id=msg.tool_call_id))
            continue
        rows.extend(TrajectoryRow("reasoning", r, role="assistant") for r in reasoning)
        if text or msg.role != "assistant":
            rows.append(TrajectoryRow(msg.role, text, role=msg.role))
        for call in getattr(msg, "tool_calls", None) or []:
            rows.append(TrajectoryRow("tool_call", json.dumps(call.arguments, ensure_ascii=False, default=str),
                                      role="assistant", name=call.function, call_id=call.id))  # fmt: skip
    return rows


def close_run(db: str, run_id: str, outcome: Outcome, *, messages: Sequence[Any], usage: dict[str, Any],
              duration_ms: float, client_version: str) -> None:  # fmt: skip
    """Write the run's status, trajectory and usage; the run's client is Inspect (its MCP client names itself
    only "mcp"), so the product label comes from here."""
    conn = connect(db)
    try:
        turns = sum(1 for m in messages if m.role == "assistant")
        finish_run(conn, run_id, status=outcome.status, error=outcome.error, usage=usage, duration_ms=duration_ms,
                   turns=turns, trajectory=trajectory_rows(messages), model_calls=[])  # fmt: skip
        with transaction(conn):
            conn.execute("UPDATE runs SET client_name = 'inspect_ai', client_version = ? WHERE run_id = ?",
                         (client_version, run_id))  # fmt: skip
    finally:
        conn.close()
