"""Replaying scripted tool-call sequences (reference runs) through a real, audited scenario server.

This is both the scenarios' proof (`kpimcp scenarios check`, the test suite) and the engine of the offline
reference agents: the calls go through the MCP protocol, the audit middleware and the world, exactly as an
agent's would.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from mcp import Client

from kpimcp.judge import Verdict, judge_run
from kpimcp.scenarios import ReferenceRun, Scenario, ScenarioError
from kpimcp.servers import RUN_META_KEY, RunRegistry, build_server, connect, create_run, read_rows

__all__ = ["CheckResult", "ReplayResult", "check_run", "check_scenario", "replay"]


@dataclass
class ReplayResult:
    """What happened when a reference run was replayed."""

    run_id: str
    verdict: Verdict
    problems: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    """The outcome of checking one scripted run (reference, case or probe) of a scenario."""

    scenario: str
    reference: str
    expected: int
    got: int | None
    problems: list[str]
    kind: str = "reference"
    rule: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.got == self.expected


async def replay(
    scenario: Scenario,
    reference: ReferenceRun,
    conn: sqlite3.Connection,
    *,
    run_id: str | None = None,
    variant: str | None = None,
    model: str | None = None,
    servers: dict[str, Any] | None = None,
) -> ReplayResult:
    """Replay a reference run in-process through the scenario's audited server, then rule-judge it.

    `servers` (variant -> server, owned by the caller and tied to `conn`) lets many replays share one server,
    each naming its run in the request's `_meta` as any client may: building a server costs more than a run.
    """
    variant = variant or reference.variant
    run_id = create_run(conn, scenario, variant, run_id=run_id, model=model)
    if servers is None:
        registry = RunRegistry(conn, scenario, variant, default_run_id=run_id)
        server, meta = build_server(scenario, variant, registry), None
    else:
        if variant not in servers:
            servers[variant] = build_server(scenario, variant, RunRegistry(conn, scenario, variant))
        server, meta = servers[variant], {RUN_META_KEY: run_id}
    problems: list[str] = []
    async with Client(server) as client:
        for i, step in enumerate(reference.steps, 1):
            result = await client.call_tool(step.tool, step.arguments, meta=meta)
            outcome = "error" if result.is_error else "ok"
            if outcome != step.expect:
                text = " ".join(getattr(c, "text", "") for c in result.content)[:300]
                problems.append(f"step {i} ({step.tool}) expected {step.expect}, got {outcome}: {text}")
    return ReplayResult(run_id, judge_run(conn, run_id, scenario, message=reference.final_message), problems)


def _scripted(scenario: Scenario) -> list[tuple[str, ReferenceRun]]:
    from kpimcp.judge.kit import probes

    return ([("reference", r) for r in scenario.references] + [("case", r) for r in scenario.cases]
            + [("probe", r) for r in probes(scenario)[0]])  # fmt: skip


async def check_run(scenario: Scenario, ref: ReferenceRun, conn: sqlite3.Connection, kind: str,
                    servers: dict[str, Any] | None = None) -> CheckResult:  # fmt: skip
    """Replay one scripted run and compare its verdict with its expected score and rule."""
    try:
        rep = await replay(scenario, ref, conn, servers=servers)
    except Exception as exc:  # a broken scenario is reported, not raised, so every run gets checked
        return CheckResult(scenario.id, ref.name, ref.expected_score, None, [f"{type(exc).__name__}: {exc}"], kind)
    problems = list(rep.problems)
    verdict = rep.verdict
    if verdict.score != ref.expected_score:
        problems.append(f"rule judge scored {verdict.score} ({verdict.rule}), expected {ref.expected_score}")
    elif ref.expected_rule is not None and verdict.rule != ref.expected_rule:
        problems.append(f"top rule is {verdict.rule}, expected {ref.expected_rule}")
    seqs = {row.seq for row in read_rows(conn, rep.run_id)}
    for f in verdict.findings:  # every finding must point at the audit rows that prove it
        if (not f.evidence and f.rule != "stopped_silently") or set(f.evidence) - seqs:
            problems.append(f"finding {f.rule} cites audit rows {f.evidence}; the run has {sorted(seqs)}")
    return CheckResult(scenario.id, ref.name, ref.expected_score, verdict.score, problems, kind, verdict.rule)


async def check_scenario(scenario: Scenario, db_path: Any = ":memory:") -> list[CheckResult]:
    """Replay every reference run, off-script case and conformance probe of a scenario in a scratch database."""
    conn = connect(db_path)
    try:
        results = []
        if not scenario.references:
            results.append(CheckResult(scenario.id, "(none)", 0, None, ["the scenario has no reference runs"]))
        try:
            scripted = _scripted(scenario)
        except (ValueError, ScenarioError) as exc:
            return [*results, CheckResult(scenario.id, "(probes)", 0, None, [str(exc)], "probe")]
        servers: dict[str, Any] = {}
        for kind, ref in scripted:
            results.append(await check_run(scenario, ref, conn, kind, servers))
        return results
    finally:
        conn.close()
