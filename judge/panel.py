"""The LLM judge panel: each judge model scores each scoreable run's trajectory with the rubric prompt.

Verdicts are cached in `verdicts` by (run, judge, prompt version): a second pass sends no request. A judge never
scores runs of its own model family (self-exclusion). The panel score of a run is the median of its valid
verdicts (computed in `metrics`); `judge_error` rows never count as scores.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .llm import AskOptions, ask_judge, same_family
from .rubric import build_messages
from .store import (
    RULE_JUDGE,
    Kind,
    StoredVerdict,
    current_sql,
    ensure_schema,
    run_filter_sql,
    save_verdicts,
    scoreable_sql,
)
from .trajectory import trajectory_or_audit

__all__ = ["Job", "PanelResult", "check_endpoints", "run_jobs", "run_panel", "scoreable_runs"]


@dataclass
class PanelResult:
    """What a pass did: verdicts scored and errored, cache hits, and (judge, run) pairs skipped by self-exclusion.

    `per_judge` counts this pass's new verdicts by judge (`scored`, `errors`, and the first error's text).
    """

    scored: int = 0
    errors: int = 0
    cached: int = 0
    excluded: int = 0
    skipped: int = 0  # runs no judge can rate (e.g. offline reference agents asked to rate themselves)
    per_judge: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count(self, verdict: StoredVerdict) -> None:
        mine = self.per_judge.setdefault(verdict.judge, {"scored": 0, "errors": 0, "first_error": None})
        if verdict.status == "ok":
            self.scored += 1
            mine["scored"] += 1
        else:
            self.errors += 1
            mine["errors"] += 1
            mine["first_error"] = mine["first_error"] or verdict.explanation

    def failing_judges(self, max_error_share: float) -> list[str]:
        """One sentence per judge whose new verdicts all failed, or more than `max_error_share` of them."""
        out = []
        for judge, c in sorted(self.per_judge.items()):
            total = c["scored"] + c["errors"]
            if total and (c["errors"] == total or c["errors"] / total > max_error_share):
                out.append(f"judge {judge} failed on {c['errors']} of {total} run(s) (first error: "
                           f"{(c['first_error'] or '')[:300]})")  # fmt: skip
        return out

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Job:
    """One verdict to obtain: judge `judge` (a `ModelSpec` reached by `client`) rates run `run_id`."""

    run_id: str
    judge: str
    kind: Kind
    spec: Any
    client: Any


def scoreable_runs(conn: sqlite3.Connection, **filters: Any) -> list[sqlite3.Row]:
    """Scoreable runs (optionally filtered by scenario, variant, model) whose evidence holds, oldest first."""
    from kpimcp.servers.integrity import broken_runs

    where, args = run_filter_sql(**filters)
    where += current_sql(conn)
    rows = conn.execute(f"SELECT r.run_id, r.model, r.scenario, r.variant FROM runs r WHERE {scoreable_sql()}{where}"
                        " ORDER BY r.created_at, r.run_id", args).fetchall()  # fmt: skip
    broken = broken_runs(conn, [r["run_id"] for r in rows])
    return [r for r in rows if r["run_id"] not in broken]


def _rule_context(conn: sqlite3.Connection, run_id: str) -> str | None:
    row = conn.execute("SELECT score, rule, explanation, evidence FROM verdicts WHERE run_id = ? AND judge = ? AND"
                       " status = 'ok' ORDER BY created_at DESC LIMIT 1", (run_id, RULE_JUDGE)).fetchone()  # fmt: skip
    if row is None:
        return None
    return f"rule '{row['rule']}' (level {row['score']}): {row['explanation']} (audit rows {row['evidence']})"


def _cached(conn: sqlite3.Connection, kind: str, prompt_version: str) -> dict[tuple[str, str], str]:
    rows = conn.execute("SELECT run_id, judge, status FROM verdicts WHERE kind = ? AND prompt_version = ?",
                        (kind, prompt_version))  # fmt: skip
    return {(r[0], r[1]): r[2] for r in rows}


async def run_jobs(
    conn: sqlite3.Connection,
    jobs: Sequence[Job],
    options: AskOptions,
    *,
    concurrency: int = 4,
    with_rule_evidence: bool = False,
    on_verdict: Callable[[StoredVerdict], None] | None = None,
) -> list[StoredVerdict]:
    """Obtain the jobs' verdicts, `concurrency` requests at a time, storing each as it arrives."""
    import anyio

    messages: dict[str, list[dict[str, str]]] = {}

    def prompt(run_id: str) -> list[dict[str, str]]:
        if run_id not in messages:  # built once per run, shared by every judge
            items, _ = trajectory_or_audit(conn, run_id)
            evidence = _rule_context(conn, run_id) if with_rule_evidence else None
            messages[run_id] = build_messages(items, max_chars=options.max_chars, rule_evidence=evidence,
                                              version=options.prompt_version)  # fmt: skip
        return messages[run_id]

    results: list[StoredVerdict] = []
    limiter = anyio.CapacityLimiter(max(1, concurrency))

    async def one(job: Job) -> None:
        async with limiter:
            verdict = await ask_judge(job.client, job.spec, prompt(job.run_id), run_id=job.run_id, judge=job.judge,
                                      kind=job.kind, options=options)  # fmt: skip
        save_verdicts(conn, [verdict])  # stored at once, so an interrupted pass keeps what it paid for
        results.append(verdict)
        if on_verdict is not None:
            on_verdict(verdict)

    async with anyio.create_task_group() as tg:
        for job in jobs:
            tg.start_soon(one, job)
    return results


async def check_endpoints(specs: Sequence[Any], options: AskOptions) -> None:
    """One small request per endpoint about to be asked for verdicts; `PreflightError` (a `ValueError`) with a
    sentence per endpoint that cannot answer (closed port, refused key, unknown model)."""
    from kpimcp.harness.diagnose import PreflightError, preflight

    problems, _ = await preflight(specs, timeout=min(options.request_timeout, 60.0))
    if problems:
        raise PreflightError("; ".join(problems) + " (nothing was judged)")


async def run_panel(
    conn: sqlite3.Connection,
    judges: Sequence[Any],
    *,
    scenario: str | Sequence[str] | None = None,
    variant: str | Sequence[str] | None = None,
    model: str | Sequence[str] | None = None,
    options: AskOptions | None = None,
    exclusion: str = "family",
    families: Mapping[str, str] | None = None,
    retry_errors: bool = False,
    with_rule_evidence: bool = False,
    concurrency: int = 4,
    clients: Mapping[str, Any] | None = None,
    on_verdict: Callable[[StoredVerdict], None] | None = None,
    on_jobs: Callable[[int], None] | None = None,
    bench: str | None = None,
    preflight: bool = False,
) -> PanelResult:
    """Have every judge (a `ModelSpec` from `parse_model_spec`) rate every scoreable run it may rate.

    `clients` maps judge spec strings to ready clients (tests); otherwise `openai_client(spec)` is used.
    Cached verdicts are reused, `judge_error` ones too unless `retry_errors`. `on_jobs(n)` is told how many
    requests-to-be there are before the first is sent (progress bars); `bench` keeps one campaign's runs.
    With `preflight`, each judge with work to do is first sent one small request (`check_endpoints`).
    """
    from kpimcp.harness.models import openai_client

    options = options or AskOptions()
    ensure_schema(conn)
    result = PanelResult()
    cached = _cached(conn, "llm", options.prompt_version)
    runs = scoreable_runs(conn, scenario=scenario, variant=variant, model=model, bench=bench)
    jobs = []
    for spec in judges:
        client = (clients or {}).get(spec.spec) or (
            None if spec.provider == "litellm" else openai_client(spec, timeout=options.request_timeout))
        for run in runs:
            if same_family(spec.spec, run["model"], mode=exclusion, overrides=families):
                result.excluded += 1
                continue
            status = cached.get((run["run_id"], spec.spec))
            if status == "ok" or (status == "judge_error" and not retry_errors):
                result.cached += 1
                continue
            jobs.append(Job(run["run_id"], spec.spec, "llm", spec, client))
    if preflight:
        await check_endpoints([j.spec for j in jobs], options)
    if on_jobs is not None:
        on_jobs(len(jobs))
    for v in await run_jobs(conn, jobs, options, concurrency=concurrency, with_rule_evidence=with_rule_evidence,
                            on_verdict=on_verdict):  # fmt: skip
        result.count(v)
    return result
