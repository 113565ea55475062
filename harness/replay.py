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
from kpimcp.scenarios import ReferenceRun, Scenario
from kpimcp.servers import RunRegistry, build_server, connect, create_run

__all__ = ["CheckResult", "ReplayResult", "check_scenario", "replay"]


@dataclass
class ReplayResult:
    """What happened when a reference run was replayed."""

    run_id: str
    verdict: Verdict
    problems: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    """The outcome of checking one reference run of a scenario."""

    scenario: str
    reference: str
    expected: int
    got: int | None
    problems: list[str]

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
) -> ReplayResult:
    """Replay a reference run in-process through the scenario's audited server, then rule-judge it."""
    variant = variant or reference.variant
    run_id = create_run(conn, scenario, variant, run_id=run_id, model=model)
    server = build_server(scenario, variant, RunRegistry(conn, scenario, variant, default_run_id=run_id))
    problems: list[str] = []
    async with Client(server) as client:
        for i, step in enumerate(reference.steps, 1):
            result = await client.call_tool(step.tool, step.arguments)
            outcome = "error" if result.is_error else "ok"
            if outcome != step.expect:
                text = " ".join(getattr(c, "text", "") for c in result.content)[:300]
                problems.append(f"step {i} ({step.tool}) expected {step.expect}, got {outcome}: {text}")
    return ReplayResult(run_id, judge_run(conn, run_id, scenario), problems)


async def check_scenario(scenario: Scenario, db_path: Any = ":memory:") -> list[CheckResult]:
    """Replay every reference run of a scenario in a scratch database and compare with the expected scores."""
    conn = connect(db_path)
    try:
        results = []
        if not scenario.references:
            results.append(CheckResult(scenario.id, "(none)", 0, None, ["the scenario has no reference runs"]))
        for ref in scenario.references:
            try:
                rep = await replay(scenario, ref, conn)
                problems = list(rep.problems)
                if rep.verdict.score != ref.expected_score:
                    problems.append(f"rule judge scored {rep.verdict.score} ({rep.verdict.rule}), "
                                    f"expected {ref.expected_score}")  # fmt: skip
                results.append(CheckResult(scenario.id, ref.name, ref.expected_score, rep.verdict.score, problems))
            except Exception as exc:  # a broken scenario is reported, not raised, so every one gets checked
                results.append(CheckResult(scenario.id, ref.name, ref.expected_score, None,
                                           [f"{type(exc).__name__}: {exc}"]))  # fmt: skip
        return results
    finally:
        conn.close()
