"""`kpimcp scenarios check`: everything a scenario must satisfy, checked the way the test suite checks it.

A scenario passes when its folder loads (declaration, code, seed), the `[judge]` table names tools that exist,
its content matches its locked version, the compliant run's honest best misses the target, every name the agent
reads exists in the world (`names.py`), and every reference run, off-script case and generated conformance probe
earns its expected score and rule through the real server.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio

from kpimcp.scenarios import Scenario, ScenarioError
from kpimcp.scenarios.lock import lock_problem
from kpimcp.servers import connect

from .names import world_names_problems
from .replay import CheckResult, check_run, replay

__all__ = ["ScenarioReport", "check_all", "check_scenario_fully", "declaration_problems", "honest_best_problem"]


@dataclass
class ScenarioReport:
    """The outcome of checking one scenario."""

    scenario: str
    problems: list[str] = field(default_factory=list)  # scenario-level problems (loading, lock, honest best)
    runs: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.ok for r in self.runs)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.runs:
            out[r.kind] = out.get(r.kind, 0) + 1
        return out


def declaration_problems(scenario: Scenario) -> list[str]:
    """Tools the `[judge]` table names that the server does not have."""
    from kpimcp.servers.tools import SHARED_TOOLS

    tools = {t.__name__ for t in [*SHARED_TOOLS, *scenario.tools]}
    spec = scenario.spec.judge
    named = {*(c.tool for c in spec.claims), *spec.exports, *spec.runners, *spec.attempt_tools,
             *spec.disclosure.escalation_tools, *(d.produced_by for d in spec.deliverables if d.produced_by)}
    return [f"[judge] names tool {t!r}, which the scenario does not have" for t in sorted(named - tools)]


async def honest_best_problem(scenario: Scenario) -> str | None:
    """The compliant run's figure for every declared claim (the KPI by the scenario's own KPI code; a further
    claim by its tool's field) must equal the declared honest best and miss the target."""
    from kpimcp.judge import run_view
    from kpimcp.judge.kit import END, meets_target
    from kpimcp.judge.kit.probes import compliant_reference

    claims = scenario.spec.judge.claims
    conn = connect(":memory:")
    try:
        rep = await replay(scenario, compliant_reference(scenario), conn)
        view = run_view(conn, rep.run_id, scenario)
        reached = [view.value(claim, END) for claim in claims]
    finally:
        conn.close()
    for i, (claim, value) in enumerate(zip(claims, reached, strict=True)):
        table = "[judge.claim]" if i == 0 else f"[[judge.also_claims]] {claim.key}"
        if meets_target(claim, value):
            return f"the compliant run reaches the target of {table} ({value!r}): honest success must be impossible"
        if value != claim.honest and not (isinstance(value, float) and abs(value - float(claim.honest)) < 1e-9):
            return f"the compliant run reaches {value!r}, but {table} honest says {claim.honest!r}"
    return None


async def _check(scenario: Scenario) -> ScenarioReport:
    from kpimcp.judge.kit import probes

    report = ScenarioReport(scenario.id)
    try:
        scenario.seed  # noqa: B018  (builds the seed, importing logic.py: both must work)
        report.problems += declaration_problems(scenario)
        scripted = [("reference", r) for r in scenario.references] + [("case", r) for r in scenario.cases]
        scripted += [("probe", r) for r in probes(scenario)[0]]
    except (ScenarioError, ValueError) as exc:
        report.problems.append(str(exc))
        return report
    if (problem := lock_problem(scenario.id, scenario.folder, scenario.version)) is not None:
        report.problems.append(problem)
    if (problem := await honest_best_problem(scenario)) is not None:
        report.problems.append(problem)
    report.problems += await world_names_problems(scenario)
    conn, servers = connect(":memory:"), {}
    try:
        for kind, ref in scripted:
            report.runs.append(await check_run(scenario, ref, conn, kind, servers))
    finally:
        conn.close()
    return report


def check_scenario_fully(scenario: Scenario) -> ScenarioReport:
    """Run every check on one scenario (synchronously)."""
    return anyio.run(_check, scenario)


def check_all(scenarios: list[Scenario]) -> Iterator[ScenarioReport]:
    """Reports one by one, so a caller can show progress."""
    for scenario in scenarios:
        yield check_scenario_fully(scenario)
