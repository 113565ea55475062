"""Model specs (`openai:gpt-5`, `openrouter:x-ai/grok-4`, ...) and the clients that reach them.

Grammar: `<provider>:<model>` where provider is
- `openai` — OpenAI's Responses API (key `OPENAI_API_KEY`);
- `openrouter` — OpenRouter's Chat Completions API (key `OPENROUTER_API_KEY`), model `vendor/model`;
- `openai-compatible` — any Chat Completions server (vLLM, Ollama, llama.cpp, gateways) at `--base-url`
  (or `$OPENAI_BASE_URL`), key from `OPENAI_API_KEY` or the variable `--api-key-env` names; a loopback server
  that needs no key works without one;
- `litellm` — LiteLLM's provider routing (`litellm:anthropic/claude-...`), an optional extra;
- `reference` — `reference:compliant` / `reference:violating`, offline agents replaying reference runs.

Heavy clients (openai, agents, litellm) are imported inside functions.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict

from .diagnose import url_problem
from .retry import RetryPolicy, classify_error, is_retryable, with_retries

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = [
    "PROVIDERS",
    "REFERENCE_AGENTS",
    "MissingApiKeyError",
    "ModelSpec",
    "ModelSpecError",
    "RetryPolicy",
    "api_key",
    "classify_error",
    "is_retryable",
    "openai_client",
    "parse_model_spec",
    "with_retries",
]

Provider = Literal["openai", "openrouter", "openai-compatible", "litellm", "reference"]
PROVIDERS: tuple[str, ...] = ("openai", "openrouter", "openai-compatible", "litellm", "reference")
REFERENCE_AGENTS = ("compliant", "violating")
OPENROUTER_URL = "https://openrouter.ai/api/v1"
_DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "openrouter": "OPENROUTER_API_KEY",
                    "openai-compatible": "OPENAI_API_KEY"}  # fmt: skip
_NO_KEY = "sk-no-key-needed"  # local servers ignore the key, but the client insists on one


class ModelSpecError(ValueError):
    """A `--model` value that cannot be used; the message says how to write it."""


class MissingApiKeyError(ModelSpecError):
    """The environment variable holding a provider's key is not set."""


class ModelSpec(BaseModel):
    """A parsed `--model`. `spec` is the string as given: runs are labelled with it."""

    model_config = ConfigDict(frozen=True)

    spec: str
    provider: Provider
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    api: Literal["responses", "chat", "litellm", "reference"] = "chat"

    @property
    def offline(self) -> bool:
        """True for the reference agents, which need no key and no network."""
        return self.provider == "reference"


def _is_loopback_url(url: str | None) -> bool:
    host = (urlparse(url).hostname or "") if url else ""
    return host in ("localhost", "::1") or host.startswith("127.")


def parse_model_spec(spec: str, *, base_url: str | None = None, api_key_env: str | None = None) -> ModelSpec:
    """Parse `provider:model` into a `ModelSpec`, filling the provider's default URL and key variable.

    Raises `ModelSpecError` with a one-sentence fix for an unknown provider, an empty model, a missing
    `--base-url` for `openai-compatible`, or an unknown reference agent.
    """
    provider, sep, model = spec.strip().partition(":")
    if not sep or not model:
        raise ModelSpecError(f"model {spec!r} must look like provider:model, e.g. openai:gpt-5 or "
                             f"openrouter:x-ai/grok-4 (providers: {', '.join(PROVIDERS)})")  # fmt: skip
    if provider not in PROVIDERS:
        raise ModelSpecError(f"unknown provider {provider!r} in {spec!r}; use one of {', '.join(PROVIDERS)}")
    if provider == "reference":
        if model not in REFERENCE_AGENTS:
            raise ModelSpecError(f"unknown reference agent {model!r}; use reference:compliant or reference:violating")
        return ModelSpec(spec=spec, provider="reference", model=model, api="reference")
    if provider == "litellm":
        return ModelSpec(spec=spec, provider="litellm", model=model, base_url=base_url, api_key_env=api_key_env,
                         api="litellm")  # fmt: skip
    if provider == "openrouter":
        base_url = base_url or OPENROUTER_URL
    if provider == "openai-compatible":
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ModelSpecError(f"{spec} needs --base-url, e.g. http://localhost:8000/v1 (vLLM) or "
                                 "http://localhost:11434/v1 (Ollama)")  # fmt: skip
    problem = url_problem(base_url)
    if problem:
        raise ModelSpecError(f"{spec}: {problem}")
    return ModelSpec(spec=spec, provider=provider, model=model, base_url=base_url,  # type: ignore[arg-type]
                     api_key_env=api_key_env or _DEFAULT_KEY_ENV[provider],
                     api="responses" if provider == "openai" else "chat")  # fmt: skip


def api_key(spec: ModelSpec, *, explicit_env: bool = False) -> str:
    """The key for a spec from its environment variable; `MissingApiKeyError` naming the variable if unset.

    A loopback `openai-compatible` server with the default variable unset gets a placeholder key (local
    vLLM/Ollama servers need none) unless `explicit_env` says the user named the variable on purpose.
    """
    env = spec.api_key_env or _DEFAULT_KEY_ENV.get(spec.provider, "OPENAI_API_KEY")
    value = os.environ.get(env)
    if value:
        return value
    if spec.provider == "openai-compatible" and _is_loopback_url(spec.base_url) and not explicit_env:
        return _NO_KEY
    raise MissingApiKeyError(f"{spec.spec} needs an API key: set the environment variable {env}"
                             + " (or name another with --api-key-env)")


def openai_client(spec: ModelSpec, *, timeout: float = 120.0, max_retries: int = 0) -> AsyncOpenAI:
    """An `AsyncOpenAI` client for an openai / openrouter / openai-compatible spec.

    `max_retries=0` by default: retry with `with_retries` (one policy, counted in run records) rather than
    the client's hidden retries. `timeout` bounds each request. Raises `MissingApiKeyError` naming the variable.
    """
    from openai import AsyncOpenAI

    if spec.provider not in _DEFAULT_KEY_ENV:
        raise ModelSpecError(f"{spec.spec} is not reached through an OpenAI client")
    headers = {"X-Title": "kpimcp"} if spec.provider == "openrouter" else None
    return AsyncOpenAI(api_key=api_key(spec, explicit_env=spec.api_key_env != _DEFAULT_KEY_ENV[spec.provider]),
                       base_url=spec.base_url, timeout=timeout, max_retries=max_retries,
                       default_headers=headers)  # fmt: skip
