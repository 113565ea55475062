"""Retrying model requests: rate limits (429), server errors (5xx), timeouts and dropped connections.

One policy for agents and LLM judges. It retries a single *request*, never a whole agent run (a rerun would
repeat audited tool calls). It honours `Retry-After`, backs off exponentially with jitter, and re-raises the
last error when it gives up, with a note saying how many attempts were made.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import anyio
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ErrorKind", "RetryPolicy", "classify_error", "is_retryable", "retry_after_seconds", "with_retries"]

T = TypeVar("T")
ErrorKind = Literal["rate_limit", "server", "timeout", "connection", "fatal"]
_RETRY_STATUSES = {408, 409, 425, 429}


class RetryPolicy(BaseModel):
    """How hard to try. `attempts` counts the first try; delays are in seconds."""

    model_config = ConfigDict(frozen=True)

    attempts: int = Field(default=6, ge=1)
    initial_delay: float = Field(default=1.0, ge=0)
    max_delay: float = Field(default=60.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    jitter: float = Field(default=0.25, ge=0, le=1)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based); a server's Retry-After wins, capped."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        base = min(self.initial_delay * self.multiplier ** (attempt - 1), self.max_delay)
        return base * (1 + random.uniform(-self.jitter, self.jitter))


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def classify_error(exc: BaseException) -> ErrorKind:
    """What kind of failure an exception from a model client is (openai, httpx, litellm or plain timeouts)."""
    from .diagnose import is_schema_rejection

    name = type(exc).__name__
    status = _status(exc)
    if isinstance(exc, TimeoutError) or "Timeout" in name:
        return "timeout"
    if status is not None and is_schema_rejection(exc):
        return "fatal"  # a strict server refusing the request's shape answers the same every time
    if status is not None:
        if status == 429:
            return "rate_limit"
        if status >= 500:
            return "server"
        return "server" if status in _RETRY_STATUSES else "fatal"
    if "Connection" in name or "RateLimit" in name or "ServiceUnavailable" in name:
        return "rate_limit" if "RateLimit" in name else "connection"
    return "fatal"


def is_retryable(exc: BaseException) -> bool:
    """True for 408/409/425/429, 5xx, timeouts and connection errors; false for bad requests, auth, garbage, and
    a server's validation errors about the request's shape (deterministic, even when sent as HTTP 500)."""
    return classify_error(exc) != "fatal"


def retry_after_seconds(exc: BaseException) -> float | None:
    """The server's `Retry-After` (seconds or `retry-after-ms`), if the error carries a response."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    for key, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(key)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                return None  # an HTTP date: fall back to our own backoff
    return None


async def with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy | None = None,
    *,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Await `call()` until it succeeds, retrying retryable errors as `policy` allows.

    `on_retry(attempt, error, delay)` is told about each retry (for logs and run records). The last error is
    re-raised unchanged, with a note "gave up after N attempts" when retries were spent.
    """
    policy = policy or RetryPolicy()
    for attempt in range(1, policy.attempts + 1):
        try:
            return await call()
        except Exception as exc:
            if not is_retryable(exc) or attempt == policy.attempts:
                if attempt > 1:
                    exc.add_note(f"kpimcp: gave up after {attempt} attempts ({classify_error(exc)})")
                raise
            delay = policy.delay(attempt, retry_after_seconds(exc))
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            await anyio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises
