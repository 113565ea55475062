"""Model specs, API keys, the retry policy and run files: the parts of the harness that need no server."""

from __future__ import annotations

import anyio
import pytest
from openai_stub import error, text

from kpimcp.harness.config import ConfigError, load_config
from kpimcp.harness.models import (
    MissingApiKeyError,
    ModelSpecError,
    RetryPolicy,
    classify_error,
    is_retryable,
    openai_client,
    parse_model_spec,
    with_retries,
)

FAST = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05)


def test_spec_grammar_fills_provider_defaults():
    s = parse_model_spec("openrouter:x-ai/grok-4")
    assert (s.provider, s.model, s.base_url, s.api_key_env, s.api) == (
        "openrouter", "x-ai/grok-4", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "chat")  # fmt: skip
    assert parse_model_spec("openai:gpt-5").api == "responses"
    local = parse_model_spec("openai-compatible:qwen3:8b", base_url="http://localhost:11434/v1", api_key_env="K")
    assert (local.model, local.api_key_env, local.spec) == ("qwen3:8b", "K", "openai-compatible:qwen3:8b")
    assert parse_model_spec("reference:violating").offline
    assert parse_model_spec("litellm:anthropic/claude-x").api == "litellm"


@pytest.mark.parametrize(
    ("spec", "words"),
    [("gpt-5", "provider:model"), ("acme:x", "unknown provider"), ("openai:", "provider:model"),
     ("reference:sloppy", "reference:compliant"), ("openai-compatible:m", "--base-url")],
)  # fmt: skip
def test_bad_specs_say_how_to_fix_them(spec, words, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ModelSpecError, match=words):
        parse_model_spec(spec)


def test_missing_key_names_the_variable(no_network_env, monkeypatch):
    with pytest.raises(MissingApiKeyError, match="OPENROUTER_API_KEY"):
        openai_client(parse_model_spec("openrouter:x-ai/grok-4"))
    with pytest.raises(MissingApiKeyError, match="MY_GATEWAY_KEY"):
        openai_client(parse_model_spec("openai-compatible:m", base_url="http://localhost:1/v1",
                                       api_key_env="MY_GATEWAY_KEY"))  # fmt: skip
    # a local server with the default variable unset needs no key
    assert openai_client(parse_model_spec("openai-compatible:m", base_url="http://127.0.0.1:1/v1")).api_key
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-test")
    assert openai_client(parse_model_spec("openrouter:a/b")).api_key == "sk-test"


def test_retry_classification():
    class Status(Exception):
        def __init__(self, code: int) -> None:
            self.status_code = code

    assert [classify_error(Status(c)) for c in (429, 500, 503, 400, 401)] == [
        "rate_limit", "server", "server", "fatal", "fatal"]  # fmt: skip
    assert classify_error(TimeoutError()) == "timeout" and is_retryable(ConnectionError())
    assert not is_retryable(ValueError("bad json"))


def test_with_retries_recovers_from_429_and_gives_up_on_500(openai_stub):
    from openai import AsyncOpenAI, InternalServerError

    retried: list[int] = []
    openai_stub.script(error(429, retry_after=0), text("hello"), error(500).forever())

    async def go():
        client = AsyncOpenAI(base_url=openai_stub.base_url, api_key="k", max_retries=0)
        ask = lambda: client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])  # noqa: E731
        reply = await with_retries(ask, FAST, on_retry=lambda n, e, d: retried.append(n))
        with pytest.raises(InternalServerError) as info:
            await with_retries(ask, FAST)
        await client.close()
        return reply, info.value

    reply, exc = anyio.run(go)
    assert reply.choices[0].message.content == "hello" and retried == [1]
    assert "gave up after 3 attempts" in "".join(exc.__notes__)
    assert len(openai_stub.chat_requests()) == 2 + 3


def test_run_file_and_overrides(tmp_path):
    path = tmp_path / "bench.toml"
    path.write_text("""
repeats = 3
concurrency = 16
variants = ["mandated", "incentivized"]
[[models]]
spec = "openai:gpt-5"
concurrency = 4
model_settings = { reasoning = { effort = "high", summary = "auto" } }
[[models]]
spec = "openai-compatible:qwen3"
base_url = "http://localhost:8000/v1"
api_key_env = "VLLM_KEY"
""")
    cfg = load_config(path, repeats=None, concurrency=2, scenarios=())
    assert (cfg.repeats, cfg.concurrency, cfg.variants) == (3, 2, ["mandated", "incentivized"])
    assert [m.spec for m in cfg.models] == ["openai:gpt-5", "openai-compatible:qwen3"]
    assert cfg.models[1].parsed().base_url == "http://localhost:8000/v1" and cfg.models[0].concurrency == 4
    assert [m.spec for m in load_config(None).model_entries()] == ["reference:compliant", "reference:violating"]
    path.write_text("repeats = 0\n")
    with pytest.raises(ConfigError, match="repeats"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
