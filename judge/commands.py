"""What `kpimcp judge` does, as one library call the CLI (and scripts) can use: rule judge, product reviews,
LLM panel, self-assessment, in that order, each skipping what is already cached."""

from __future__ import annotations

import importlib.util
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .llm import AskOptions
from .pending import judge_pending
from .store import StoredVerdict

__all__ = ["judge_all", "parse_families"]


def parse_families(pairs: Sequence[str]) -> dict[str, str]:
    """`PATTERN=FAMILY` strings (the CLI's --family) as a dict; ValueError naming a malformed one."""
    out = {}
    for pair in pairs:
        pattern, sep, family = pair.partition("=")
        if not sep or not pattern.strip() or not family.strip():
            raise ValueError(f"--family {pair!r} must look like PATTERN=FAMILY, "
                             "e.g. 'openai-compatible:my-ft-*=openai'")
        out[pattern.strip()] = family.strip()
    return out


def judge_all(
    conn: sqlite3.Connection,
    *,
    filters: Mapping[str, Any] | None = None,
    judge_models: Sequence[str] = (),
    base_url: str | None = None,
    api_key_env: str | None = None,
    self_check: bool = False,
    self_base_url: str | None = None,
    self_api_key_env: str | None = None,
    rejudge: bool = False,
    retry_errors: bool = False,
    with_rule_evidence: bool = False,
    exclusion: str = "family",
    families: Mapping[str, str] | None = None,
    options: AskOptions | None = None,
    concurrency: int = 4,
    clients: Mapping[str, Any] | None = None,
    on_verdict: Callable[[StoredVerdict], None] | None = None,
    on_jobs: Callable[[str, int], None] | None = None,
    max_error_share: float = 0.5,
    preflight: bool = True,
) -> dict[str, Any]:
    """Run every requested judge over the filtered runs; returns counts per stage.

    `summary["failing"]` names, in a sentence each, the judges whose new verdicts in this pass all failed or
    more than `max_error_share` of them (the CLI exits 1 on it). `on_jobs(stage, n)` announces each stage's
    request count. Raises `kpimcp.harness.models.ModelSpecError` (a `ValueError`) for an unusable judge spec or
    missing key, and `PreflightError` (a `ValueError`) for an endpoint that cannot answer, before any run is
    judged.
    """
    import anyio

    from kpimcp.harness.models import parse_model_spec

    from .panel import run_panel
    from .rubric import PROMPT_VERSION
    from .selfcheck import ingest_product_reviews, self_assess

    filters = dict(filters or {})
    specs = [parse_model_spec(m, base_url=base_url, api_key_env=api_key_env) for m in judge_models]
    for spec in specs:
        if spec.offline:
            raise ValueError(f"{spec.spec} is an offline reference agent and cannot judge; use an LLM spec")
        if spec.provider == "litellm" and importlib.util.find_spec("litellm") is None:
            raise ValueError(f"{spec.spec} needs LiteLLM, an optional extra: pip install 'kpimcp[litellm]'")
    options = options or AskOptions()
    if with_rule_evidence and "+rules" not in options.prompt_version:
        options.prompt_version = f"{options.prompt_version or PROMPT_VERSION}+rules"
    summary: dict[str, Any] = {"rule": {"judged": judge_pending(conn, force=rejudge, **filters)},
                               "product_reviews": ingest_product_reviews(conn)}  # fmt: skip
    failing: list[str] = []
    if specs:
        panel = anyio.run(lambda: run_panel(
            conn, specs, options=options, exclusion=exclusion, families=families, retry_errors=retry_errors,
            with_rule_evidence=with_rule_evidence, concurrency=concurrency, clients=clients,
            on_verdict=on_verdict, on_jobs=on_jobs and (lambda n: on_jobs("panel", n)),
            preflight=preflight and not clients, **filters))  # fmt: skip
        summary["panel"] = panel.as_dict()
        failing += panel.failing_judges(max_error_share)
    if self_check:
        # The self-assessment always uses the plain rubric prompt: the model sees what the panel saw, nothing more.
        self_options = AskOptions(**{**options.__dict__, "prompt_version": PROMPT_VERSION})
        res = anyio.run(lambda: self_assess(
            conn, options=self_options, base_url=self_base_url or base_url, api_key_env=self_api_key_env,
            retry_errors=retry_errors, concurrency=concurrency, clients=clients, on_verdict=on_verdict,
            on_jobs=on_jobs and (lambda n: on_jobs("self", n)), preflight=preflight and not clients,
            **filters))  # fmt: skip
        summary["self"] = res.as_dict()
        failing += [f"self-assessment: {f}" for f in res.failing_judges(max_error_share)]
    summary["prompt_version"] = options.prompt_version
    summary["failing"] = failing
    return summary

