"""Bench configuration: command-line options and TOML run files become one validated `BenchConfig`.

A run file (`kpimcp bench --config bench.toml`) holds a campaign: several models, each with its own endpoint,
key variable, concurrency and settings, plus the shared plan and limits. Command-line options override it.
See docs/harness.md for the format.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .models import ModelSpec, parse_model_spec
from .retry import RetryPolicy

__all__ = ["DEFAULT_MODELS", "BenchConfig", "ConfigError", "ModelEntry", "load_config"]

DEFAULT_MODELS = ("reference:compliant", "reference:violating")


class ConfigError(ValueError):
    """A run file or option that cannot be used; the message names the file and the field."""


class ModelEntry(BaseModel):
    """One model of a campaign. `spec` is the label its runs carry (`openrouter:x-ai/grok-4`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str
    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    model_settings: dict[str, Any] = Field(default_factory=dict)
    compat: Literal["auto", "strict", "off"] = Field(
        default="auto", description="Message format for strict local servers: string contents, never null.")

    def parsed(self) -> ModelSpec:
        return parse_model_spec(self.spec, base_url=self.base_url, api_key_env=self.api_key_env)


class BenchConfig(BaseModel):
    """Everything a bench needs. Empty `models` = the two offline reference agents; empty filters = all."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelEntry] = Field(default_factory=list)
    scenarios: list[str] = Field(default_factory=list)
    variants: list[str] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)
    repeats: int = Field(default=1, ge=1)
    concurrency: int = Field(default=8, ge=1)
    temperature: float | None = None
    max_turns: int = Field(default=50, ge=1)
    run_timeout: float = Field(default=1800.0, gt=0, description="Per-run wall-clock limit, seconds.")
    request_timeout: float = Field(default=300.0, gt=0, description="Per model request, seconds.")
    mcp_timeout: float = Field(default=30.0, gt=0, description="Per MCP request (tool call), seconds.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    tracing: bool = False
    force: bool = False
    judge: bool = True
    host: Literal["subprocess", "inprocess"] = "subprocess"
    nudges: int = Field(default=3, ge=0, description="Neutral nudges for replies without a tool call, per run.")
    limit: int | None = Field(default=None, ge=1, description="Run only this many cells, drawn with `seed`.")
    seed: int = Field(default=0, description="Seed of the --limit draw (same seed, same cells).")
    preflight: bool = Field(default=True, description="Test each endpoint with one small request first.")
    preflight_timeout: float = Field(default=30.0, gt=0)

    @field_validator("models", mode="before")
    @classmethod
    def _strings_are_specs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"spec": v} if isinstance(v, str) else v for v in value]
        return value

    def model_entries(self) -> list[ModelEntry]:
        """The configured models, or the reference agents when none is given."""
        return self.models or [ModelEntry(spec=s) for s in DEFAULT_MODELS]

    def public(self) -> dict[str, Any]:
        """The config as recorded in the bench row (no secrets are ever in it: keys stay in the environment)."""
        return self.model_dump(mode="json")


def load_config(path: Path | str | None, **overrides: Any) -> BenchConfig:
    """Read a TOML run file (optional) and apply command-line overrides (`None` values are ignored)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"run file {path} does not exist; pass an existing TOML file to --config") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc}); fix the file") from None
        data = data.get("bench", data)  # allow the settings under a [bench] table too
    for key, value in overrides.items():
        if value is None or (isinstance(value, (list, tuple)) and not value and key in data):
            continue
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            value = data[key] | value  # e.g. --retries changes attempts, the run file's delays stay
        data[key] = list(value) if isinstance(value, tuple) else value
    try:
        return BenchConfig.model_validate(data)
    except ValidationError as exc:
        where = f"{path}: " if path is not None else ""
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(where + "; ".join(parts)) from None
