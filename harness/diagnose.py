"""Saying why a model endpoint failed: error sentences, response bodies, and the pre-flight check.

A campaign against a wrong URL, a closed port, a bad key or an unknown model used to run for minutes and end
in `provider_error` with no reason on screen. `preflight` sends one small request to each endpoint before the
first run and turns what went wrong into one sentence; `describe_error` and `error_body` give every later
failure its reason and keep the server's full answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse

__all__ = ["PreflightError", "describe_error", "error_body", "is_schema_rejection", "preflight", "url_problem"]

BODY_LIMIT = 64_000  # characters of a failed response kept with the run
_SCHEMA_REJECTION = re.compile(r"validation error|input should be a valid|valid string|extra_forbidden|"
                               r"unexpected (?:type|value)|expected (?:a )?string", re.IGNORECASE)  # fmt: skip


class PreflightError(ValueError):
    """An endpoint that cannot serve the campaign; the message has one sentence per failing endpoint."""


def url_problem(url: str | None) -> str | None:
    """Why a base URL cannot work (no scheme, no host), or None if it looks usable."""
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return (f"the base URL {url!r} has no http:// or https:// scheme; write it in full, e.g. "
                f"http://{url.split('://')[-1].strip('/')}")  # fmt: skip
    return None


def error_body(exc: BaseException) -> str:
    """The server's full response body for an HTTP error (empty when there was no response)."""
    response = getattr(exc, "response", None)
    text = ""
    if response is not None:
        try:
            text = response.text
        except Exception:  # a streamed or closed response: fall back to the parsed body
            text = ""
    if not text:
        body = getattr(exc, "body", None)
        if body is not None:
            text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, default=str)
    return text[:BODY_LIMIT]


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        msg = inner.get("message") if isinstance(inner, dict) else inner
        if msg:
            return str(msg)
    return str(getattr(exc, "message", None) or exc)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes/contexts (anyio's connect keeps the real errno three levels down)."""
    out: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and node not in out and len(out) < 12:
        out.append(node)
        node = node.__cause__ or node.__context__
    return out


def _root_cause(exc: BaseException) -> BaseException:
    return _chain(exc)[-1]


def describe_error(exc: BaseException, limit: int = 400) -> str:
    """One line: `HTTP 500: 16 validation errors: ...` or `connection refused (APIConnectionError)`."""
    status = getattr(exc, "status_code", None)
    if status:
        text = " ".join(_message(exc).split())
        return f"HTTP {status}: {text[:limit]}" if text else f"HTTP {status}"
    root = _root_cause(exc)
    name = type(exc).__name__
    chain = _chain(exc)
    low = " ".join(str(e) for e in chain).lower()
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in low:
        return f"connection refused ({name})"
    if "name or service not known" in low or "nodename nor servname" in low or "getaddrinfo" in low:
        return f"unknown host ({name})"
    if "timeout" in name.lower() or "timed out" in low:
        return f"no answer in time ({name})"
    text = " ".join(str(root if root is not exc else exc).split())
    return f"{name}: {text[:limit]}" if text else name


def is_schema_rejection(exc: BaseException) -> bool:
    """A request the server refused for its *shape* (a strict schema: list contents, null content): resending
    the same request can never succeed, so it is not retried; the compatibility mode may fix it."""
    status = getattr(exc, "status_code", None)
    if status not in (400, 422, 500):
        return False
    return bool(_SCHEMA_REJECTION.search(error_body(exc) or _message(exc)))


# ---- pre-flight --------------------------------------------------------------------------------------------
def _diagnose(spec: Any, exc: BaseException, env: str | None) -> str:
    """One sentence for a failed pre-flight request."""
    where = spec.base_url or "the provider"
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return (f"{spec.spec}: {where} refused the API key (HTTP {status}); check the key in ${env or 'OPENAI_API_KEY'}"
                " or name another variable with --api-key-env")  # fmt: skip
    if status == 404:
        return (f"{spec.spec}: {where} does not serve the model {spec.model!r} (HTTP 404: "
                f"{describe_error(exc, 160)[10:]}); check the model name (its /models list shows what it serves)")
    if status is not None:
        return f"{spec.spec}: {where} answered a one-token test request with {describe_error(exc, 240)}"
    detail = describe_error(exc)
    if detail.startswith("connection refused"):
        return f"{spec.spec}: nothing is listening at {where} (connection refused); is the server running on that port?"
    if detail.startswith("unknown host"):
        return f"{spec.spec}: the host of {where} cannot be resolved; check the base URL"
    if detail.startswith("no answer"):
        return f"{spec.spec}: {where} did not answer a one-token test request in time; is it overloaded or loading?"
    return f"{spec.spec}: the test request to {where} failed: {detail}"


def _fatal(exc: BaseException) -> bool:
    """Failures that every run would meet too (no listener, bad key, unknown model); a 5xx or a slow answer may
    pass, so it is only noted."""
    status = getattr(exc, "status_code", None)
    if status is not None:
        return status in (401, 403, 404)
    return describe_error(exc).startswith(("connection refused", "unknown host"))


async def _ping(spec: Any, timeout: float) -> tuple[bool, str] | None:
    """One tiny request to the spec's endpoint; None when it answers (a 400 about parameters counts as an answer:
    the endpoint, key and model are fine, and the real requests carry their own settings)."""
    from .models import MissingApiKeyError, openai_client

    problem = url_problem(spec.base_url)
    if problem:
        return True, f"{spec.spec}: {problem}"
    try:
        client = openai_client(spec, timeout=timeout)
    except MissingApiKeyError as exc:
        return True, str(exc)
    try:
        if spec.api == "responses":
            await client.models.retrieve(spec.model)
        else:
            await client.chat.completions.create(model=spec.model, max_tokens=1,
                                                 messages=[{"role": "user", "content": "Reply with OK."}])  # fmt: skip
    except Exception as exc:
        if getattr(exc, "status_code", None) in (400, 422) and not is_schema_rejection(exc):
            return None
        return _fatal(exc), _diagnose(spec, exc, spec.api_key_env)
    finally:
        await client.close()
    return None


async def preflight(specs: Iterable[Any], *, timeout: float = 30.0) -> tuple[list[str], list[str]]:
    """Check each network spec's endpoint with one small request (concurrently).

    Returns (problems, warnings), one sentence each: problems stop a campaign (nothing listening, unknown host,
    no scheme, missing or refused key, unknown model), warnings do not (a 5xx or a slow answer may be passing).
    Offline reference agents and LiteLLM specs (their own routing) are not checked.
    """
    import anyio

    unique = {s.spec: s for s in specs if not s.offline and s.api != "litellm"}
    found: dict[str, tuple[bool, str]] = {}

    async def one(spec: Any) -> None:
        answer = await _ping(spec, timeout)
        if answer:
            found[spec.spec] = answer

    async with anyio.create_task_group() as tg:
        for spec in unique.values():
            tg.start_soon(one, spec)
    ordered = [found[k] for k in unique if k in found]
    return [t for fatal, t in ordered if fatal], [t for fatal, t in ordered if not fatal]
