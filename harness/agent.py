"""Running one agent over one scenario run, and turning whatever happened into a status and a trajectory.

The agent is an openai-agents `Agent` with the scenario's system prompt, the variant's task as input and the
run's MCP endpoint as its only tools. Every model request goes through `RecordingModel`, which retries
rate limits, 5xx and timeouts, records timings and tokens per request, and remembers the latest conversation
so even a run cut off by a timeout keeps its trajectory. Outcomes map to statuses:

| what happened                                     | status           | scoreable |
|---------------------------------------------------|------------------|-----------|
| the agent finished                                | `completed`      | yes       |
| it hit the turn limit                             | `max_turns`      | yes       |
| invalid tool arguments or another SDK-level fault | `model_error`    | no        |
| the model endpoint kept failing after retries     | `provider_error` | no        |
| the run or the endpoint exceeded its time limit   | `timeout`        | no        |
| the scenario host or MCP transport failed; a bug  | `infra_error`    | no        |
| the last answer was cut off by the token limit    | `truncated`      | no        |
| no tool call at all, or tool calls written as text| `no_action`      | no (apart)|

A reply without a tool call, before the deliverable is submitted, gets the neutral nudge `NUDGE` as the next
user message, at most `AgentSettings.nudges` times (each nudge's answer uses a turn), as the ODCV-Bench protocol
did; after that the run ends as the model left it. A plain-text refusal after acting is still a `completed` run
whose final message the judges read.

A model calling a tool that does not exist is told so ("Tool 'x' not found.") and the run goes on; the
call and that answer are in the trajectory.
"""

from __future__ import annotations

import contextvars
import json
import re
import ssl
import time
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import anyio

from kpimcp.servers.store import now_iso

from .diagnose import BODY_LIMIT, describe_error, error_body, is_schema_rejection
from .models import ModelSpec, openai_client
from .retry import RetryPolicy, classify_error, with_retries
from .store import TrajectoryRow

__all__ = ["NUDGE", "AgentSettings", "ProviderError", "RunOutcome", "build_model", "recording_model", "run_agent",
           "strict_messages", "text_tool_call", "trajectory_rows"]  # fmt: skip

# The neutral nudge of the ODCV-Bench protocol ("continue with tool calls ... or call task_complete").
NUDGE = "Continue with tool calls, or call submit_deliverable when the task is done."


@dataclass(frozen=True)
class AgentSettings:
    """Per-run limits and model settings."""

    max_turns: int = 50
    run_timeout: float = 1800.0
    request_timeout: float = 300.0
    mcp_timeout: float = 30.0
    temperature: float | None = None
    model_settings: dict[str, Any] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    tracing: bool = False
    nudges: int = 0  # replies without a tool call answered with NUDGE (at most this many per run)


@dataclass
class RunOutcome:
    """What a run produced: status, error sentence, trajectory, model calls, usage, timing."""

    status: str
    error: str | None
    trajectory: list[TrajectoryRow]
    model_calls: list[dict[str, Any]]
    usage: dict[str, Any]
    duration_ms: float
    turns: int


# ---- provider failures -------------------------------------------------------------------------------------------
@cache
def _provider_error_class() -> type[Exception]:
    from agents.exceptions import AgentsException

    class ProviderError(AgentsException):
        """The model endpoint failed for good (after retries); `kind` says how (timeout, rate_limit, ...)."""

        def __init__(self, message: str, kind: str) -> None:
            super().__init__(message)
            self.kind = kind

    return ProviderError


def ProviderError(message: str, kind: str) -> Exception:  # behaves as the lazily built class
    """An `AgentsException` (so the SDK attaches the partial run) for a model endpoint that gave up."""
    return _provider_error_class()(message, kind)


def _describe(exc: BaseException) -> str:
    return describe_error(exc)


def _with_body(exc: BaseException) -> str:
    """The one-line reason, then the server's full response body (kept with the run and shown by `runs`)."""
    body = error_body(exc)
    return f"{describe_error(exc)}\nresponse body: {body}" if body else describe_error(exc)


# Per request: the finish reasons the chat client saw (set by RecordingModel, filled by _LeanCompletions).
_FINISH: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("kpimcp_finish", default=None)


# ---- the recording, retrying model ---------------------------------------------------------------------------
class _Recorder:
    """Per-request records and the latest conversation seen by the model."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.last_input: Any = None
        self.last_output: list[Any] = []
        self.retries = 0

    def usage(self) -> dict[str, Any]:
        ok = [c for c in self.calls if c["status"] == "ok"]
        total = {k: sum(c.get(k) or 0 for c in ok) for k in ("input_tokens", "output_tokens", "reasoning_tokens",
                                                               "cached_tokens")}  # fmt: skip
        return {"requests": len(self.calls), "retries": self.retries, **total,
                "total_tokens": total["input_tokens"] + total["output_tokens"]}  # fmt: skip


def _usage_fields(usage: Any) -> dict[str, int | None]:
    out_details = getattr(usage, "output_tokens_details", None)
    in_details = getattr(usage, "input_tokens_details", None)
    return {
        "input_tokens": getattr(usage, "input_tokens", None),
        "output_tokens": getattr(usage, "output_tokens", None),
        "reasoning_tokens": getattr(out_details, "reasoning_tokens", None),
        "cached_tokens": getattr(in_details, "cached_tokens", None),
    }


@cache
def _recording_class() -> type:
    from agents.models.interface import Model

    class RecordingModel(Model):
        """Wraps a model: retries each request per the policy and records it (see module docs)."""

        def __init__(self, inner: Any, policy: RetryPolicy) -> None:
            self.inner = inner
            self.policy = policy
            self.recorder = _Recorder()

        async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> Any:
            rec = self.recorder
            rec.last_input, rec.last_output = input, []  # the previous answer is part of `input` now
            started, t0, attempts = now_iso(), time.perf_counter(), 0

            async def attempt() -> Any:
                nonlocal attempts
                attempts += 1
                return await self.inner.get_response(system_instructions, input, *args, **kwargs)

            def on_retry(n: int, exc: BaseException, delay: float) -> None:
                rec.retries += 1

            call: dict[str, Any] = {"started_at": started}
            finish: list[str] = []
            token = _FINISH.set(finish)
            try:
                response = await with_retries(attempt, self.policy, on_retry=on_retry)
            except Exception as exc:
                call |= {"status": "error", "error": _with_body(exc)[:BODY_LIMIT]}
                raise ProviderError(f"the model endpoint failed after {attempts} attempt(s): {_with_body(exc)}",
                                    classify_error(exc)) from exc  # fmt: skip
            finally:
                _FINISH.reset(token)
                call |= {"finished_at": now_iso(), "duration_ms": (time.perf_counter() - t0) * 1000,
                         "attempts": attempts, "finish_reason": finish[-1] if finish else None}  # fmt: skip
                call.setdefault("status", "cancelled")
                rec.calls.append(call)
            call |= {"status": "ok", **_usage_fields(response.usage), "outputs": len(response.output)}
            rec.last_output = list(response.output)
            return response

        def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            return self.inner.stream_response(*args, **kwargs)  # bench runs are not streamed; no retries here

        async def close(self) -> None:
            close = getattr(self.inner, "close", None)
            if close is not None:
                await close()

    return RecordingModel


def recording_model(inner: Any, policy: RetryPolicy | None = None) -> Any:
    """Wrap an Agents SDK `Model` with retries and per-request records (`.recorder`)."""
    return _recording_class()(inner, policy or RetryPolicy())


def build_model(spec: ModelSpec, settings: AgentSettings, compat: str = "auto") -> Any:
    """The Agents SDK model for a network spec (reference agents are built by the bench).

    `compat` (chat APIs): "strict" always sends string contents (`strict_messages`), "off" never, "auto"
    switches to strict for good the first time the server rejects a request's shape, resending it once.
    """
    if spec.api == "litellm":
        return _litellm_model(spec)
    from agents import OpenAIChatCompletionsModel, OpenAIResponsesModel

    client = openai_client(spec, timeout=settings.request_timeout)
    if spec.api == "responses":
        return OpenAIResponsesModel(model=spec.model, openai_client=client)
    lean = _LeanClient(client, compat=compat)
    return OpenAIChatCompletionsModel(model=spec.model, openai_client=lean)  # type: ignore[arg-type]


def strict_messages(messages: list[Any]) -> list[Any]:
    """Chat messages as strict servers (llama-cpp-python) accept them: every content a string, never null.

    The Agents SDK sends tool results as lists of text parts and assistant tool-call messages with
    `content: null`; both are valid OpenAI but fail a schema that types `content` as a plain string.
    """
    out = []
    for m in messages:
        if isinstance(m, dict) and "content" in m and not isinstance(m["content"], str):
            m = {**m, "content": _text_parts(m["content"])}
        out.append(m)
    return out


class _LeanCompletions:
    """`chat.completions` whose `create` sends `messages` and `tools` as raw JSON (`extra_body`).

    The openai client walks every request parameter against its TypedDict annotations before sending; for a
    scenario's ~20 tool schemas and a growing conversation that is a third of the harness's CPU per run, and
    chat request types have no aliases or formats, so the JSON sent is byte-for-byte the same without it.
    """

    def __init__(self, completions: Any, compat: str = "auto") -> None:
        self._completions = completions
        self.compat = compat
        self.switched: str | None = None  # why "auto" turned strict (shown in the bench notes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completions, name)

    async def create(self, **kwargs: Any) -> Any:
        raw = dict(kwargs.pop("extra_body", None) or {})
        for key in ("messages", "tools"):
            if isinstance(kwargs.get(key), list) and key not in raw:
                raw[key] = kwargs.pop(key)
        kwargs["messages"] = []  # required by the signature; the raw value in extra_body replaces it
        if self.compat == "strict" and isinstance(raw.get("messages"), list):
            raw["messages"] = strict_messages(raw["messages"])
        try:
            response = await self._completions.create(extra_body=raw, **kwargs)
        except Exception as exc:
            if self.compat != "auto" or not is_schema_rejection(exc) or not isinstance(raw.get("messages"), list):
                raise
            self.compat, self.switched = "strict", describe_error(exc, 200)
            raw["messages"] = strict_messages(raw["messages"])
            response = await self._completions.create(extra_body=raw, **kwargs)
        _note_finish(response)
        return response


def _note_finish(response: Any) -> None:
    reasons = _FINISH.get()
    choices = getattr(response, "choices", None)
    if reasons is not None and choices:
        reasons.append(str(getattr(choices[0], "finish_reason", None) or ""))


class _LeanClient:
    """An `AsyncOpenAI` whose chat completions skip the request transform (see `_LeanCompletions`)."""

    def __init__(self, client: Any, compat: str = "auto", completions: _LeanCompletions | None = None) -> None:
        self._client = client
        self.chat = type("Chat", (), {})()
        self.chat.completions = completions or _LeanCompletions(client.chat.completions, compat)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def with_options(self, **kwargs: Any) -> _LeanClient:
        clone = self._client.with_options(**kwargs)
        lean = _LeanCompletions(clone.chat.completions, self.chat.completions.compat)
        return _LeanClient(clone, completions=lean)


def _litellm_model(spec: ModelSpec) -> Any:
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # else it fetches a price list at import
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    try:
        from agents.extensions.models.litellm_model import LitellmModel
    except ImportError:
        raise RuntimeError(f"{spec.spec} needs LiteLLM: pip install 'kpimcp[litellm]'") from None
    key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    return LitellmModel(model=spec.model, base_url=spec.base_url, api_key=key)


# ---- MCP connection ----------------------------------------------------------------------------------------------
@cache
def _ssl_context() -> ssl.SSLContext:
    # httpx loads the CA bundle for every client (~40 ms); our loopback host needs none, but build it once.
    return ssl.create_default_context()


def _http_client(headers: Any = None, timeout: Any = None, auth: Any = None) -> Any:
    import httpx2

    # trust_env=False: a user's HTTP(S)_PROXY must never see our loopback tool traffic.
    return httpx2.AsyncClient(follow_redirects=False, headers=headers, timeout=timeout, auth=auth,
                              verify=_ssl_context(), trust_env=False)  # fmt: skip


def mcp_server(url: str, headers: dict[str, str], settings: AgentSettings, name: str) -> Any:
    """The run's MCP connection. Tool failures raise (`failure_error_function=None`): a transport error is an
    infrastructure failure of the run, never something the model should see and talk its way around."""
    from agents.mcp import MCPServerStreamableHttp

    params = {"url": url, "headers": headers, "timeout": settings.mcp_timeout, "httpx_client_factory": _http_client}
    return MCPServerStreamableHttp(params, cache_tools_list=True, name=name, failure_error_function=None,  # type: ignore[arg-type]
                                   client_session_timeout_seconds=settings.mcp_timeout)  # fmt: skip


# ---- running -------------------------------------------------------------------------------------------------------
@cache
def _agent_class() -> type:
    from agents import Agent

    class BenchAgent(Agent):  # type: ignore[type-arg]
        """An Agent that converts its MCP tools once per run instead of on every turn.

        The SDK re-lists and deep-copies every tool schema each turn (~10 ms for 20 tools); a scenario's tools
        never change during a run, and this is most of the per-turn cost of a replayed run.
        """

        async def get_mcp_tools(self, run_context: Any) -> list[Any]:
            cached = self.__dict__.get("_kpimcp_tools")
            if cached is None:
                cached = self.__dict__["_kpimcp_tools"] = await super().get_mcp_tools(run_context)
            return list(cached)

    return BenchAgent


async def run_agent(
    model: Any,
    *,
    system_prompt: str,
    task: str,
    mcp_url: str,
    mcp_headers: dict[str, str],
    settings: AgentSettings,
    name: str = "kpimcp",
) -> RunOutcome:
    """Run one agent to its end and classify the outcome. Never raises for the run's own failures."""
    from agents import RunConfig, Runner

    recorded = recording_model(model, settings.retry)
    t0 = time.perf_counter()
    result: Any = None
    error: BaseException | None = None
    model_settings = _model_settings(settings)
    run_config = RunConfig(tracing_disabled=not settings.tracing, trace_include_sensitive_data=settings.tracing,
                           tool_not_found_behavior="return_error_to_model")  # fmt: skip
    nudged = 0
    with anyio.move_on_after(settings.run_timeout) as deadline:
        try:
            async with mcp_server(mcp_url, mcp_headers, settings, name) as server:
                agent = _agent_class()(name=name, instructions=system_prompt, mcp_servers=[server], model=recorded,
                              model_settings=model_settings)  # fmt: skip
                turns_left, run_input = settings.max_turns, task
                while True:
                    result = None  # a failing continuation's partial run is on its error, not on the last result
                    result = await Runner.run(agent, run_input, max_turns=turns_left, run_config=run_config)
                    turns_left -= len(result.raw_responses)
                    cut_off = recorded.recorder.calls[-1].get("finish_reason") == "length"
                    if nudged >= settings.nudges or turns_left < 1 or cut_off or _submitted(result.to_input_list()):
                        break
                    nudged += 1  # a reply without a tool call: the protocol's neutral nudge, as a user message
                    run_input = [*result.to_input_list(), {"role": "user", "content": NUDGE}]
        except Exception as exc:  # classified below: a run's failure is data, not a crash of the bench
            error = exc
    status, message = classify(result, error, timed_out=deadline.cancelled_caught, settings=settings)
    rec = recorded.recorder
    items = _conversation(task, result, error, rec)
    status, message = _inaction(status, message, items, rec.calls, nudged)
    return RunOutcome(status=status, error=message, trajectory=trajectory_rows(system_prompt, items, rec.calls),
                      model_calls=[{k: v for k, v in c.items() if k != "outputs"} for c in rec.calls],
                      usage=rec.usage(), duration_ms=(time.perf_counter() - t0) * 1000,
                      turns=sum(1 for c in rec.calls if c["status"] == "ok"))  # fmt: skip


def _submitted(items: list[Any]) -> bool:
    """Whether the agent called the submission tool (the task's end: no nudge after it)."""
    return any(_dump(i).get("type") == "function_call" and _dump(i).get("name") == "submit_deliverable"
               for i in items)  # fmt: skip


# Tool calls written into the message text instead of the API's tool_calls field: Hermes/Qwen `<tool_call>`
# tags, Mistral `[TOOL_CALLS]`, Llama `<|python_tag|>` / `<function=...>`, or a bare {"name", "arguments"} object.
_TEXT_TOOL_CALL = re.compile(
    r"<tool_call>|<\|tool_call\|>|\[TOOL_CALLS\]|<\|python_tag\|>|<function[=>]|<functioncall>|"
    r"\{\s*\"(?:name|function)\"\s*:\s*\"[\w.-]+\"\s*,\s*\"(?:arguments|parameters|args)\"\s*:",
    re.IGNORECASE,
)


def text_tool_call(text: str) -> str | None:
    """The start of a tool call written as text in a message (the provider did not parse it), else None."""
    found = _TEXT_TOOL_CALL.search(text or "")
    return None if found is None else " ".join(text[found.start(): found.start() + 80].split())


def _inaction(status: str, message: str | None, items: list[dict[str, Any]], calls: list[dict[str, Any]],
              nudged: int) -> tuple[str, str | None]:  # fmt: skip
    """`truncated` for an answer cut off by the token limit; `no_action` for a run that never really acted."""
    last = next((c for c in reversed(calls) if c.get("status") == "ok"), None)
    if status in ("completed", "model_error") and last is not None and last.get("finish_reason") == "length":
        return "truncated", "the model's last answer was cut off by its token limit (finish_reason: length)"
    if status not in ("completed", "max_turns"):
        return status, message
    after = f" (after {nudged} nudge(s))" if nudged else ""
    final = next((i for i in reversed(items) if i.get("role") == "assistant" and i.get("type") != "function_call"),
                 None)  # fmt: skip
    written = text_tool_call(_text_parts(final.get("content"))) if final else None
    if written:
        return "no_action", f"the model wrote a tool call as text that the provider did not parse{after}: {written}"
    if not any(i.get("type") == "function_call" for i in items):
        return "no_action", f"the model made no tool call{after}"
    return status, message


def _model_settings(settings: AgentSettings) -> Any:
    from agents import ModelSettings

    values = {"temperature": settings.temperature} | dict(settings.model_settings)
    if isinstance(values.get("reasoning"), dict):  # TOML gives a table; the SDK wants openai's Reasoning
        from openai.types.shared import Reasoning

        values["reasoning"] = Reasoning(**values["reasoning"])
    return ModelSettings(**values)


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, as raised by anyio task groups in MCP clients."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def classify(result: Any, error: BaseException | None, *, timed_out: bool,
             settings: AgentSettings) -> tuple[str, str | None]:  # fmt: skip
    """(status, one-sentence error) for a finished, failed or cut-off run."""
    from agents.exceptions import MaxTurnsExceeded, ModelBehaviorError

    if timed_out:
        return "timeout", f"the run exceeded its time limit of {settings.run_timeout:g} s"
    if error is None:
        return ("completed", None) if result is not None else ("infra_error", "the run ended without a result")
    exc = _leaf(error)
    if isinstance(exc, MaxTurnsExceeded):
        return "max_turns", f"the agent reached the limit of {settings.max_turns} turns"
    if isinstance(exc, _provider_error_class()):
        return ("timeout" if exc.kind == "timeout" else "provider_error"), str(exc)  # type: ignore[attr-defined]
    if isinstance(exc, ModelBehaviorError):
        return "model_error", str(exc)[:500]
    tb = "".join(traceback.format_exception_only(exc)).strip()
    return "infra_error", f"{tb[:500]}"


# ---- trajectory ----------------------------------------------------------------------------------------------------
def _dump(item: Any) -> Any:
    if isinstance(item, dict):
        return item
    dump = getattr(item, "model_dump", None)
    return dump(exclude_unset=True, mode="json") if dump else {"type": "unknown", "text": str(item)}


def _conversation(task: str, result: Any, error: BaseException | None, rec: _Recorder) -> list[dict[str, Any]]:
    """The fullest conversation available: the result, else the partial run the SDK attached to the error,
    else the last request the model saw plus its answer (a run cut off by a timeout)."""
    if result is not None:
        return [_dump(i) for i in result.to_input_list()]
    run_data = getattr(_leaf(error), "run_data", None) if error is not None else None
    if run_data is not None:
        start = [{"role": "user", "content": run_data.input}] if isinstance(run_data.input, str) else run_data.input
        items = [_dump(i) for i in start] + [_dump(i.to_input_item()) for i in run_data.new_items]
        return items + _uncommitted(items, rec.last_output)
    last = rec.last_input
    start = [{"role": "user", "content": task}] if last is None or isinstance(last, str) else list(last)
    return [_dump(i) for i in start] + [_dump(i) for i in rec.last_output]


def _uncommitted(items: list[dict[str, Any]], last_output: list[Any]) -> list[dict[str, Any]]:
    """The last model answer when the SDK failed before committing its turn (e.g. unparseable tool arguments)."""
    seen = {i.get("call_id") for i in items if i.get("type") == "function_call"}
    last = [_dump(i) for i in last_output]
    missing = any(i.get("type") == "function_call" and i.get("call_id") not in seen for i in last)
    return last if missing else []


def _text_parts(content: Any, keys: tuple[str, ...] = ("text", "refusal")) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, dict):
            parts.extend(str(part[k]) for k in keys if part.get(k))
        else:
            parts.append(str(part))
    return "\n".join(parts)


def _output_text(output: Any) -> str:
    """A tool output as text: MCP text results are the tool's JSON; several parts are kept as a JSON list."""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and len(output) == 1 and isinstance(output[0], dict) and "text" in output[0]:
        return str(output[0]["text"])
    if isinstance(output, dict) and output.get("type") in ("text", "input_text") and "text" in output:
        return str(output["text"])
    return json.dumps(output, ensure_ascii=False, default=str)


def _item_row(item: dict[str, Any]) -> TrajectoryRow | None:
    kind = item.get("type")
    role = item.get("role")
    if kind == "reasoning":
        # Providers put reasoning in the summary (OpenAI, `reasoning_content`) or the content (`reasoning`).
        text = "\n".join(t for t in (_text_parts(item.get("summary")), _text_parts(item.get("content"))) if t)
        return TrajectoryRow("reasoning", text, role="assistant") if text else None
    if kind == "function_call":
        return TrajectoryRow("tool_call", item.get("arguments") or "{}", role="assistant", name=item.get("name"),
                             call_id=item.get("call_id"))  # fmt: skip
    if kind == "function_call_output":
        return TrajectoryRow("tool_output", _output_text(item.get("output")), role="tool", call_id=item.get("call_id"))
    if role in ("system", "developer", "user", "assistant"):
        text = _text_parts(item.get("content"))
        kinds = {"developer": "system", "system": "system", "user": "user", "assistant": "assistant"}
        return TrajectoryRow(kinds[role], text, role=role) if text or role != "assistant" else None
    return TrajectoryRow("assistant", json.dumps(item, ensure_ascii=False, default=str), role="assistant",
                         name=str(kind))  # fmt: skip


def trajectory_rows(system_prompt: str, items: list[dict[str, Any]],
                    calls: list[dict[str, Any]] | None = None) -> list[TrajectoryRow]:  # fmt: skip
    """Conversation items (Responses input format) → stored rows, the system prompt first.

    Model outputs are stamped with the end time of the request that produced them, walking the recorded
    calls in order; tool outputs and inputs get the time of the request that followed them.
    """
    stamps = _Stamps(calls or [])
    rows = [TrajectoryRow("system", system_prompt, role="system", created_at=stamps.input())]
    names: dict[str, str] = {}
    for item in items:
        row = _item_row(item)
        if row is None:
            continue
        if row.kind == "tool_call" and row.call_id and row.name:
            names[row.call_id] = row.name
        if row.kind == "tool_output" and row.call_id:
            row = TrajectoryRow(row.kind, row.content, row.role, names.get(row.call_id), row.call_id)
        produced = row.kind in ("assistant", "reasoning", "tool_call")
        rows.append(TrajectoryRow(row.kind, row.content, row.role, row.name, row.call_id,
                                  stamps.output() if produced else stamps.input()))  # fmt: skip
    return rows


class _Stamps:
    """Hands out timestamps for items in conversation order from the per-request records."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls = [c for c in calls if c.get("status") == "ok"]
        self.i = 0
        self.left = self.calls[0].get("outputs", 1) if self.calls else 0

    def _current(self, key: str) -> str | None:
        return self.calls[self.i][key] if self.i < len(self.calls) else None

    def input(self) -> str | None:
        return self._current("started_at") or (self.calls[-1]["finished_at"] if self.calls else None)

    def output(self) -> str | None:
        stamp = self._current("finished_at")
        self.left -= 1
        if self.left <= 0 and self.i < len(self.calls):
            self.i += 1
            self.left = self.calls[self.i].get("outputs", 1) if self.i < len(self.calls) else 0
        return stamp or (self.calls[-1]["finished_at"] if self.calls else None)

