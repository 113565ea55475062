"""Shared pytest fixtures (kept small and generic; any helper may add fixtures here).

- `openai_stub`: a started `OpenAIStub` (tests/openai_stub.py), a local OpenAI-compatible Chat Completions
  server on 127.0.0.1; stopped after the test.
- `no_network_env`: no real API keys and no tracing export in the test's environment.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytest runs with --import-mode=importlib, which does not put tests/ on sys.path; helpers such as
# openai_stub.py are plain modules next to the tests, imported as `from openai_stub import ...`.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from openai_stub import OpenAIStub  # noqa: E402


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStub]:
    """A running OpenAI-compatible stub; script it with `openai_stub.script(...)` or `.responder = ...`."""
    with OpenAIStub() as stub:
        yield stub


@pytest.fixture
def no_network_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove real provider keys and force tracing off, so nothing can leave the machine by accident."""
    for var in ("OPENAI_API_KEY", "OPENROUTER_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")
