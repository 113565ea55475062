"""Asking one LLM for one verdict: the request, retries on malformed answers, and `judge_error` on failure.

Shared by the judge panel and the self-assessment. Transport failures (429, 5xx, timeouts) are retried by the
harness's retry policy; an answer that is not a valid verdict is asked again, showing the model what was wrong,
up to `attempts` times. Whatever happens, the result is a verdict row: a score, or a `judge_error` that says why
(never a score).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from .rubric import DEFAULT_MAX_CHARS, PROMPT_VERSION, MalformedVerdict, parse_verdict
from .store import Kind, StoredVerdict

__all__ = ["AskOptions", "ask_judge", "complete", "model_family", "same_family"]

# Model families for self-exclusion: a judge never scores runs of a model of its own family. Matched against the
# model name without provider and vendor prefix (`openrouter:x-ai/grok-4` -> `grok-4`). Extend with overrides.
_FAMILIES: tuple[tuple[str, str], ...] = (
    (r"gpt|o[1-9]\b|o[1-9]-|chatgpt|davinci|codex|text-embedding", "openai"),
    (r"claude", "anthropic"),
    (r"gemini|gemma|palm|bard", "google"),
    (r"grok", "xai"),
    (r"llama|meta-llama", "meta"),
    (r"qwen|qwq", "qwen"),
    (r"mistral|mixtral|magistral|codestral|ministral|devstral|pixtral", "mistral"),
    (r"deepseek", "deepseek"),
    (r"kimi|moonshot", "moonshot"),
    (r"glm|chatglm", "zhipu"),
    (r"phi-|phi\d", "microsoft"),
    (r"command|aya", "cohere"),
    (r"nova-|titan", "amazon"),
)
_VENDORS = {"openai": "openai", "anthropic": "anthropic", "google": "google", "x-ai": "xai", "xai": "xai",
            "meta-llama": "meta", "qwen": "qwen", "mistralai": "mistral", "deepseek": "deepseek",
            "moonshotai": "moonshot", "z-ai": "zhipu", "thudm": "zhipu", "microsoft": "microsoft",
            "cohere": "cohere", "amazon": "amazon"}  # fmt: skip


def model_family(spec: str, overrides: Mapping[str, str] | None = None) -> str:
    """The family of a model spec, e.g. 'openai' for `openai:gpt-5` and `openrouter:openai/gpt-4o`.

    `overrides` maps glob patterns over the whole spec to families (`{"openai-compatible:my-ft-*": "openai"}`)
    and wins over the built-in table. Unknown models are their own family (the name up to the first '-').
    """
    low = spec.strip().lower()
    for pattern, fam in (overrides or {}).items():
        if fnmatchcase(low, pattern.lower()):
            return fam.lower()
    name = low.split(":", 1)[-1]
    vendor, _, base = name.rpartition("/")
    vendor = vendor.rsplit("/", 1)[-1]
    for regex, fam in _FAMILIES:
        if re.match(rf"(?:{regex})", base):
            return fam
    if vendor in _VENDORS:
        return _VENDORS[vendor]
    return re.split(r"[-_.:@ ]", base, maxsplit=1)[0] or base


def same_family(judge: str, model: str | None, *, mode: str = "family",
                overrides: Mapping[str, str] | None = None) -> bool:  # fmt: skip
    """Whether `judge` must not score runs of `model`: same spec ('exact') or same family ('family', default)."""
    if not model:
        return False
    if judge.strip().lower() == model.strip().lower():
        return True
    return mode == "family" and model_family(judge, overrides) == model_family(model, overrides)


@dataclass
class AskOptions:
    """How to ask a judge. `attempts` counts answers requested when they come back malformed."""

    attempts: int = 3
    max_chars: int = DEFAULT_MAX_CHARS
    temperature: float | None = None  # not sent by default: some reasoning models reject it
    max_tokens: int | None = None
    prompt_version: str = PROMPT_VERSION
    retry: Any = None  # kpimcp.harness.retry.RetryPolicy; None = the harness default
    request_timeout: float = 120.0  # seconds per request (a local model may read a long transcript for minutes)
    extra: dict[str, Any] = field(default_factory=dict)  # passed to the completion call as is


async def complete(client: Any, spec: Any, messages: list[dict[str, str]], options: AskOptions) -> str | None:
    """One chat completion (with transport retries); returns the answer's text."""
    from kpimcp.harness.retry import with_retries

    kwargs: dict[str, Any] = {"model": spec.model, "messages": messages, **options.extra}
    if options.temperature is not None:
        kwargs["temperature"] = options.temperature
    if options.max_tokens is not None:
        kwargs["max_tokens"] = options.max_tokens
    if spec.provider == "litellm":
        import litellm  # optional extra

        resp = await with_retries(lambda: litellm.acompletion(**kwargs), options.retry)
    else:
        resp = await with_retries(lambda: client.chat.completions.create(**kwargs), options.retry)
    return resp.choices[0].message.content if resp.choices else None


async def ask_judge(
    client: Any,
    spec: Any,
    messages: list[dict[str, str]],
    *,
    run_id: str,
    judge: str,
    kind: Kind,
    options: AskOptions,
) -> StoredVerdict:
    """Ask for a verdict until one parses (at most `options.attempts` answers); never raises for model failures."""
    answers: list[str | None] = []
    problem = ""
    convo = list(messages)
    for _ in range(options.attempts):
        try:
            text = await complete(client, spec, convo, options)
        except Exception as exc:  # transport retries are spent: this judge cannot answer for this run
            from kpimcp.harness.retry import classify_error

            return StoredVerdict(run_id, judge, kind, options.prompt_version, "judge_error",
                                 explanation=f"request failed ({classify_error(exc)}): {type(exc).__name__}: "
                                             f"{str(exc)[:300]}", raw=json.dumps(answers))  # fmt: skip
        answers.append(text)
        try:
            out = parse_verdict(text)
        except MalformedVerdict as exc:
            problem = str(exc)
            # Show the model its own answer and what was wrong: cheaper and more reliable than a blind resend.
            again = (f"That answer is not valid ({problem}). Reply with only a JSON object like "
                     '{"score": 2, "reasoning": "..."} where score is an integer from 0 to 5.')
            convo = [*messages, {"role": "assistant", "content": text or ""}, {"role": "user", "content": again}]
            continue
        return StoredVerdict(run_id, judge, kind, options.prompt_version, "ok", score=out.score,
                             rule=None, explanation=out.reasoning, raw=text)  # fmt: skip
    return StoredVerdict(run_id, judge, kind, options.prompt_version, "judge_error",
                         explanation=f"no valid verdict in {len(answers)} answer(s): {problem}",
                         raw=json.dumps(answers, ensure_ascii=False))  # fmt: skip
