"""`kpimcp bench`: plan the cells, serve the scenarios once, run agents concurrently, store everything, judge.

Guarantees:
- every started run gets a final status in the database, whatever happens to it (errors are classified by
  `kpimcp.harness.agent`; a Ctrl-C closes the runs in flight as `infra_error`; a SIGKILLed bench leaves
  `open` runs that the next invocation closes as interrupted and runs again);
- re-running the same command skips cells whose current run is scoreable and retries the rest (`force`
  reruns everything); a retry is a new attempt that supersedes the old one, so each cell has one current run;
- only `completed` and `max_turns` runs are judged; the others are counted and shown.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio

from kpimcp.servers import connect, create_run
from kpimcp.servers.server import workspace_name

from .agent import AgentSettings, RunOutcome, build_model, run_agent
from .config import BenchConfig
from .host import HostError, ScenarioHost, make_host
from .manifest import scenario_manifest, versions
from .plan import Plan, PlannedRun, build_plan
from .store import (
    FAILED_STATUSES,
    SCOREABLE_STATUSES,
    ensure_schema,
    finish_bench,
    finish_run,
    mark_interrupted,
    start_bench,
    start_run_attempt,
)

__all__ = ["BenchResult", "Reporter", "configure_tracing", "plan_bench", "run_bench", "run_bench_async"]

MAX_HOST_RESTARTS = 3


class Reporter(Protocol):
    """Progress callbacks (the CLI draws a rich progress bar; tests pass nothing)."""

    def planned(self, plan: Plan) -> None: ...
    def started(self, run: PlannedRun, run_id: str) -> None: ...
    def finished(self, run: PlannedRun, run_id: str, status: str) -> None: ...
    def note(self, text: str) -> None: ...


class _Silent:
    def planned(self, plan: Plan) -> None:
        pass

    def started(self, run: PlannedRun, run_id: str) -> None:
        pass

    def finished(self, run: PlannedRun, run_id: str, status: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass
class BenchResult:
    """What a bench did: its id, the plan, per-run outcomes, and (if judged) the misalignment table."""

    bench_id: str
    db: str
    plan: Plan
    outcomes: dict[str, str] = field(default_factory=dict)  # run_id -> status
    errors: dict[str, str] = field(default_factory=dict)  # run_id -> why it failed or never acted
    run_models: dict[str, str] = field(default_factory=dict)  # run_id -> model spec
    run_cells: dict[str, PlannedRun] = field(default_factory=dict)  # run_id -> its cell
    self_test: list[str] = field(default_factory=list)  # reference runs that did not score as expected
    not_started: int = 0
    wall_seconds: float = 0.0
    judged: int = 0
    table: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    host_restarts: int = 0

    def reasons(self) -> list[tuple[str, str, str, int]]:
        """(model, status, reason's first line, runs) for every run that failed or never acted, most frequent first."""
        counts = Counter((self.run_models[rid], self.outcomes[rid], err.splitlines()[0] if err else "")
                         for rid, err in self.errors.items())  # fmt: skip
        return [(m, s, why, n) for (m, s, why), n in counts.most_common()]

    def status_counts(self) -> dict[str, Counter[str]]:
        """Per model spec: how many runs ended in each status this time."""
        out: dict[str, Counter[str]] = {}
        for run_id, status in self.outcomes.items():
            out.setdefault(self.run_models[run_id], Counter())[status] += 1
        return out

    def summary(self) -> dict[str, Any]:
        total = Counter(self.outcomes.values())
        return {"planned": len(self.plan.runs), "already_done": len(self.plan.done), "ran": len(self.outcomes),
                "not_started": self.not_started, "statuses": dict(total), "wall_seconds": round(self.wall_seconds, 3),
                "judged": self.judged, "host_restarts": self.host_restarts}  # fmt: skip

    @property
    def failed(self) -> int:
        return sum(1 for s in self.outcomes.values() if s in FAILED_STATUSES) + self.not_started


def configure_tracing(enabled: bool) -> None:
    """Tracing and telemetry off unless asked: nothing but model requests may leave the machine."""
    if not enabled:
        os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"  # also read by anything that starts later
    from agents import set_tracing_disabled

    set_tracing_disabled(not enabled)


def plan_bench(config: BenchConfig, db: str | Path) -> Plan:
    """The plan, split by what the database already holds (read-only; a missing database means nothing done)."""
    if not Path(db).exists():
        return build_plan(config)
    conn = connect(db)
    try:
        ensure_schema(conn)
        return build_plan(config, conn)
    finally:
        conn.close()


def run_bench(config: BenchConfig, db: str | Path, reporter: Reporter | None = None) -> BenchResult:
    """Run a bench to the end (blocking). See `run_bench_async`."""
    return anyio.run(run_bench_async, config, db, reporter)


class _Runner:
    """Shared state of one bench invocation: connection, host, models, limits, results."""

    def __init__(self, config: BenchConfig, db: str, result: BenchResult, reporter: Reporter) -> None:
        self.config, self.db, self.result, self.reporter = config, db, result, reporter
        self.conn = connect(db)
        self.host: ScenarioHost | None = None
        self.models: dict[str, Any] = {}
        self.limit = anyio.CapacityLimiter(config.concurrency)
        self.model_limits: dict[str, anyio.CapacityLimiter] = {}
        self.host_lock = anyio.Lock()
        self.host_failed: str | None = None

    def settings(self, run: PlannedRun) -> AgentSettings:
        c, e = self.config, run.entry
        return AgentSettings(max_turns=c.max_turns, run_timeout=c.run_timeout, request_timeout=c.request_timeout,
                             mcp_timeout=c.mcp_timeout, retry=c.retry, tracing=c.tracing,
                             nudges=0 if run.model.offline else c.nudges,
                             temperature=e.temperature if e.temperature is not None else c.temperature,
                             model_settings=dict(e.model_settings))  # fmt: skip

    def prepare_models(self, plan: Plan) -> None:
        """Build one client per network model up front: a missing key fails before any run starts."""
        for run in plan.todo:
            spec = run.model.spec
            if spec not in self.models and not run.model.offline:
                self.models[spec] = build_model(run.model, self.settings(run), compat=run.entry.compat)
            if run.entry.concurrency and spec not in self.model_limits:
                self.model_limits[spec] = anyio.CapacityLimiter(run.entry.concurrency)

    def agent_model(self, run: PlannedRun) -> Any:
        if run.model.offline:
            from .reference import ReplayModel

            return ReplayModel(run.reference)  # type: ignore[arg-type]
        return self.models[run.model.spec]

    async def healthy_host(self) -> ScenarioHost | None:
        """The host, restarted if it died (at most MAX_HOST_RESTARTS times); None once it is given up on."""
        async with self.host_lock:
            host = self.host
            if host is None or self.host_failed:
                return None
            if not host.alive():
                if host.restarts >= MAX_HOST_RESTARTS:
                    self.host_failed = f"the scenario host died {host.restarts + 1} times; giving up"
                    self.reporter.note(self.host_failed)
                    return None
                self.reporter.note("the scenario host died; restarting it for the remaining runs")
                try:
                    await host.restart()
                except HostError as exc:
                    self.host_failed = str(exc)
                    return None
            return host

    async def execute(self, run: PlannedRun) -> None:
        limits = [self.limit, *([self.model_limits[run.model.spec]] if run.model.spec in self.model_limits else [])]
        async with limits[0]:
            if len(limits) > 1:
                async with limits[1]:
                    await self._execute(run)
            else:
                await self._execute(run)

    async def _execute(self, run: PlannedRun) -> None:
        host = await self.healthy_host()
        if host is None:
            self.result.not_started += 1
            return
        run_id = create_run(self.conn, run.scenario, run.variant, transport="http", model=run.model.spec,
                            bench_id=self.result.bench_id)  # fmt: skip
        start_run_attempt(self.conn, run_id, cell=run.cell, repeat=run.repeat)
        self.result.run_models[run_id] = run.model.spec
        self.result.run_cells[run_id] = run
        self.reporter.started(run, run_id)
        try:
            outcome = await self._attempt(run, run_id, host)
        except anyio.get_cancelled_exc_class():
            self._finish(run, run_id, _failed("infra_error", "interrupted: the bench was stopped during this run"))
            raise
        self._finish(run, run_id, outcome)

    async def _attempt(self, run: PlannedRun, run_id: str, host: ScenarioHost) -> RunOutcome:
        try:
            outcome = await run_agent(
                self.agent_model(run), system_prompt=run.scenario.spec.system_prompt.strip(),
                task=run.scenario.task(run.variant), mcp_url=host.url(run.scenario.id, run.variant, run_id),
                mcp_headers=host.headers, settings=self.settings(run), name=workspace_name(run.scenario),
            )  # fmt: skip
        except Exception as exc:  # a bug in the harness itself: the run is recorded as such, the bench goes on
            return _failed("infra_error", f"harness error: {type(exc).__name__}: {exc}")
        if outcome.status == "infra_error" and not host.alive():
            outcome.error = f"the scenario host died during the run ({outcome.error})"
        return outcome

    def _finish(self, run: PlannedRun, run_id: str, outcome: RunOutcome) -> None:
        finish_run(self.conn, run_id, status=outcome.status, error=outcome.error, usage=outcome.usage,
                   duration_ms=outcome.duration_ms, turns=outcome.turns, trajectory=outcome.trajectory,
                   model_calls=outcome.model_calls)  # fmt: skip
        self.result.outcomes[run_id] = outcome.status
        if outcome.error and outcome.status not in SCOREABLE_STATUSES:
            self.result.errors[run_id] = outcome.error
        self.reporter.finished(run, run_id, outcome.status)


def _failed(status: str, message: str) -> RunOutcome:
    return RunOutcome(status=status, error=message, trajectory=[], model_calls=[], usage={}, duration_ms=0.0, turns=0)


async def run_bench_async(config: BenchConfig, db: str | Path, reporter: Reporter | None = None) -> BenchResult:
    """Plan, resume, run every cell still to do with bounded concurrency, judge, and record the bench.

    Raises only for problems found before any run starts (bad spec, missing key, unknown scenario, another
    bench on the database, a host that cannot start); afterwards every failure is a run status.
    """
    t0 = time.perf_counter()
    reporter = reporter or _Silent()
    configure_tracing(config.tracing)
    db = str(db)
    bench_id = f"bench-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    state = _Runner(config, db, BenchResult(bench_id=bench_id, db=db, plan=Plan(runs=[])), reporter)
    try:
        ensure_schema(state.conn)
        plan = state.result.plan = build_plan(config, state.conn)
        state.result.notes.extend(plan.notes)
        await _preflight(state, plan)
        state.prepare_models(plan)
        manifest = {"scenarios": await scenario_manifest(plan.scenarios), "cells": [r.cell for r in plan.runs]}
        start_bench(state.conn, bench_id, config=config.public(), versions=versions(), manifest=manifest)
        mark_interrupted(state.conn, [p.run_id for p in plan.previous.values() if p.status == "open"])
        reporter.planned(plan)
        await _run_all(state, plan)
        await _judge(state, plan)
    finally:
        state.result.wall_seconds = time.perf_counter() - t0
        if state.host is not None:
            state.result.host_restarts = state.host.restarts
        _close(state, bench_id)
    return state.result


async def _preflight(state: _Runner, plan: Plan) -> None:
    """One small request per endpoint before any run: a wrong URL, key or model fails now, in a sentence."""
    if not state.config.preflight or not plan.todo:
        return
    from .diagnose import PreflightError, preflight

    problems, warnings = await preflight((r.model for r in plan.todo), timeout=state.config.preflight_timeout)
    state.result.notes.extend(f"pre-flight: {w}" for w in warnings)
    if problems:
        raise PreflightError("; ".join(problems) + " (nothing was run; --no-preflight skips this check)")


def _compat_notes(state: _Runner) -> None:
    for spec, model in state.models.items():
        lean = getattr(getattr(getattr(model, "_client", None), "chat", None), "completions", None)
        reason = getattr(lean, "switched", None)
        if reason:
            state.result.notes.append(f"{spec}: the server rejected the SDK's message format ({reason}); "
                                      "string contents were sent from then on (compat strict)")  # fmt: skip


async def _run_all(state: _Runner, plan: Plan) -> None:
    if not plan.todo:
        return
    state.host = make_host(state.config.host, state.db, plan.mounts())
    await state.host.start()
    try:
        async with anyio.create_task_group() as tg:
            for run in plan.todo:
                tg.start_soon(state.execute, run)
    finally:
        with anyio.CancelScope(shield=True):
            _compat_notes(state)
            await state.host.stop()
            await _close_models(state)
    if state.host_failed:
        state.result.notes.append(f"{state.result.not_started} run(s) not started: {state.host_failed}")


async def _close_models(state: _Runner) -> None:
    """Close the model clients on the loop that opened them (else their sockets warn at garbage collection)."""
    for model in state.models.values():
        client = getattr(model, "_client", None)  # the SDK model's client (our lean wrapper delegates close)
        close = getattr(client, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):  # closing is best effort; the runs are already stored
                await close()


async def _judge(state: _Runner, plan: Plan) -> None:
    """Rule-judge the scoreable runs and build the misalignment table for this plan's models and scenarios."""
    if not state.config.judge:
        return
    from kpimcp.judge import judge_pending
    from kpimcp.judge.metrics import misalignment_table

    scenarios = {s.id: s for s in plan.scenarios}
    models = sorted({r.model.spec for r in plan.runs})
    state.result.judged = judge_pending(state.conn, scenario=list(scenarios), model=models, scenarios=scenarios)
    state.result.table = misalignment_table(state.conn, scenario=list(scenarios), model=models)
    state.result.self_test = _check_references(state)


def _check_references(state: _Runner) -> list[str]:
    """The reference agents are a self-test: each replayed run must be scoreable and get its expected score."""
    from kpimcp.judge.store import RULE_JUDGE, verdicts_for_run

    problems = []
    for run_id, run in state.result.run_cells.items():
        if run.reference is None:
            continue
        status = state.result.outcomes.get(run_id)
        rule = [v for v in verdicts_for_run(state.conn, run_id) if v.judge == RULE_JUDGE]
        score = rule[-1].score if rule else None
        if status not in SCOREABLE_STATUSES or score != run.reference.expected_score:
            problems.append(f"{run.label} ({run_id}) replaying {run.reference.name}: status {status}, rule score "
                            f"{score}, expected {run.reference.expected_score}")  # fmt: skip
    return problems


def _close(state: _Runner, bench_id: str) -> None:
    exists = state.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'benches'").fetchone()
    if exists and state.conn.execute("SELECT 1 FROM benches WHERE bench_id = ?", (bench_id,)).fetchone():
        finish_bench(state.conn, bench_id, state.result.summary())
    state.conn.close()


