"""The rule judge: a scenario's deterministic rules over a run's audit rows and final world.

Scenario authors write `judge(run: RunView) -> list[Finding]` in their `logic.py`; this module builds the
`RunView` and turns the findings into a `Verdict`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kpimcp.scenarios import Scenario
from kpimcp.scenarios import load as load_scenario
from kpimcp.servers.audit import AuditRow, read_rows
from kpimcp.servers.world import Change, World

from .verdict import Finding, Verdict

__all__ = ["ESCALATION_TOOLS", "RunView", "StaleScenarioError", "judge_run", "rule_judge"]

ESCALATION_TOOLS = ("flag_for_review", "send_message", "request_approval")


class StaleScenarioError(Exception):
    """The run was made with another version of its scenario than the one installed."""


@dataclass
class RunView:
    """Everything the rules may look at: the audit trail and the final world (and, through it, the seed)."""

    run_id: str
    scenario: Scenario
    variant: str
    calls: list[AuditRow]
    world: World

    def ok_calls(self, *tools: str) -> list[AuditRow]:
        """Successful calls, optionally only of the named tools, in order."""
        return [c for c in self.calls if c.status == "ok" and (not tools or c.tool in tools)]

    def changes(self, space_prefix: str = "") -> Iterable[tuple[AuditRow, dict[str, Any]]]:
        """(call, change) for every committed change whose space starts with `space_prefix`."""
        for call in self.ok_calls():
            for ch in call.changes:
                if ch["space"].startswith(space_prefix):
                    yield call, ch

    def world_at(self, seq: int) -> World:
        """The world as it was just before call `seq`, rebuilt from the audited changes (e.g. what was live
        when a deliverable was submitted, even if the agent changed things afterwards)."""
        overlay: dict[tuple[str, str], Any] = {}
        for call in self.ok_calls():
            if call.seq >= seq:
                break
            for ch in call.changes:
                overlay[(ch["space"], ch["key"])] = ch["after"]
        return World(self.scenario, self.run_id, overlay)

    def final_changes(self) -> list[Change]:
        """What differs from the seed at the end of the run."""
        return self.world.diff_from_seed()

    def submissions(self) -> list[AuditRow]:
        return self.ok_calls("submit_deliverable")

    def last_submission(self) -> AuditRow | None:
        subs = self.submissions()
        return subs[-1] if subs else None

    def escalations(self) -> list[AuditRow]:
        """Calls that raised the issue with a human: review flags, messages, approval requests."""
        return self.ok_calls(*ESCALATION_TOOLS)

    def calls_before(self, call: AuditRow, *tools: str) -> list[AuditRow]:
        return [c for c in self.ok_calls(*tools) if c.seq < call.seq]

    def last_result_before(self, call: AuditRow, tool: str) -> AuditRow | None:
        before = self.calls_before(call, tool)
        return before[-1] if before else None


def rule_judge(run: RunView) -> Verdict:
    """Apply the scenario's rules to an already assembled run."""
    findings = run.scenario.judge(run)
    if isinstance(findings, Verdict):
        return findings
    return Verdict.from_findings(list[Finding](findings))


def judge_run(conn: sqlite3.Connection, run_id: str, scenario: Scenario | None = None) -> Verdict:
    """Load a run from the results database and score it with its scenario's rules.

    `scenario` defaults to the installed scenario the run names (pass one to judge a scenario under authoring).
    """
    row = conn.execute("SELECT scenario, scenario_version, variant FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise LookupError(f"no run {run_id!r} in this database")
    scenario = scenario or load_scenario(row["scenario"])
    if scenario.version != row["scenario_version"]:
        raise StaleScenarioError(
            f"run {run_id} used {scenario.id} v{row['scenario_version']} but v{scenario.version} is installed; "
            "judge it with the kpimcp release that ran it"
        )
    view = RunView(run_id, scenario, row["variant"], read_rows(conn, run_id), World.load(conn, scenario, run_id))
    return rule_judge(view)
