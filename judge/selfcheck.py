"""Self-assessment: does a model (or an agent product) recognise its own violations?

Harness runs: `self_assess` shows each run's own model its trajectory with the same rubric prompt as the panel,
without saying whose it is, and stores the answer as a `self` verdict (judge `self:<model spec>`).
Product runs: the scenario server offers a review form once the task is submitted (servers/review.py); the
product's answer is an audited tool call, turned into a `product` verdict by `ingest_product_reviews`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kpimcp.servers import blobs
from kpimcp.servers.review import REVIEW_TOOL, REVIEW_VERSION

from .llm import AskOptions
from .panel import Job, PanelResult, _cached, check_endpoints, run_jobs, scoreable_runs
from .store import StoredVerdict, ensure_schema, save_verdicts

__all__ = ["SELF_PREFIX", "ingest_product_reviews", "self_assess"]

SELF_PREFIX = "self:"


async def self_assess(
    conn: sqlite3.Connection,
    *,
    scenario: str | Sequence[str] | None = None,
    variant: str | Sequence[str] | None = None,
    model: str | Sequence[str] | None = None,
    options: AskOptions | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
    retry_errors: bool = False,
    concurrency: int = 4,
    clients: Mapping[str, Any] | None = None,
    on_verdict: Callable[[StoredVerdict], None] | None = None,
    on_jobs: Callable[[int], None] | None = None,
    bench: str | None = None,
    preflight: bool = False,
) -> PanelResult:
    """Ask each scoreable run's own model to rate its trajectory. Runs of offline reference agents, and runs whose
    model is unknown or not a valid spec, are skipped (counted in `skipped`)."""
    from kpimcp.harness.models import ModelSpecError, openai_client, parse_model_spec

    options = options or AskOptions()
    ensure_schema(conn)
    result = PanelResult()
    cached = _cached(conn, "self", options.prompt_version)
    specs: dict[str, Any] = {}
    jobs = []
    for run in scoreable_runs(conn, scenario=scenario, variant=variant, model=model, bench=bench):
        name = run["model"]
        if not name:
            result.skipped += 1
            continue
        if name not in specs:
            try:
                spec = parse_model_spec(name, base_url=base_url, api_key_env=api_key_env)
                client = (clients or {}).get(name) or (
                    None if spec.offline or spec.provider == "litellm" else
                    openai_client(spec, timeout=options.request_timeout))
                specs[name] = None if spec.offline else (spec, client)
            except ModelSpecError:
                specs[name] = None
        if specs[name] is None:
            result.skipped += 1
            continue
        judge = SELF_PREFIX + name
        status = cached.get((run["run_id"], judge))
        if status == "ok" or (status == "judge_error" and not retry_errors):
            result.cached += 1
            continue
        spec, client = specs[name]
        jobs.append(Job(run["run_id"], judge, "self", spec, client))
    if preflight:
        await check_endpoints([j.spec for j in jobs if j.client is not None], options)
    if on_jobs is not None:
        on_jobs(len(jobs))
    for v in await run_jobs(conn, jobs, options, concurrency=concurrency, on_verdict=on_verdict):
        result.count(v)
    return result


def ingest_product_reviews(conn: sqlite3.Connection) -> int:
    """Turn the review forms products submitted (audited `submit_task_review` calls) into `product` verdicts.

    The latest valid review of a run counts. Idempotent; returns how many runs have a product verdict now.
    """
    ensure_schema(conn)
    rows = conn.execute(
        "SELECT a.run_id, a.seq, a.arguments, a.client_name, r.client_name AS run_client FROM audit a"
        " JOIN runs r ON r.run_id = a.run_id WHERE a.tool = ? AND a.status = 'ok' ORDER BY a.run_id, a.seq",
        (REVIEW_TOOL,),
    ).fetchall()
    latest: dict[str, sqlite3.Row] = {r["run_id"]: r for r in rows}
    verdicts = []
    for run_id, r in latest.items():
        args = blobs.loads(conn, r["arguments"])  # a reasoning text that spells a marker key is stored wrapped
        score = args.get("score")
        if not isinstance(score, int) or not 0 <= score <= 5:
            continue  # the tool validates its input; this guards against hand-edited databases only
        who = r["client_name"] or r["run_client"] or "unknown"
        verdicts.append(StoredVerdict(run_id, f"product:{who}", "product", REVIEW_VERSION, "ok", score=score,
                                      explanation=str(args.get("comments") or ""), evidence=[r["seq"]]))  # fmt: skip
    save_verdicts(conn, verdicts)
    return len(verdicts)
