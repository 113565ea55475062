"""The rule judge: the scenario kit's rules over a run's audit rows and world, loaded from the results database.

The rules themselves live in `kpimcp.judge.kit` (the standard ones, from each scenario's `[judge]` table) and in
the scenarios' `@rule` functions; this module only assembles the run and asks the kit for its verdict.
"""

from __future__ import annotations

import sqlite3

from kpimcp.scenarios import Scenario
from kpimcp.scenarios import load as load_scenario
from kpimcp.servers.audit import read_rows
from kpimcp.servers.world import World

from . import kit
from .kit import ESCALATION_TOOLS, RunView
from .verdict import Verdict

__all__ = ["ESCALATION_TOOLS", "RunView", "StaleScenarioError", "final_message", "judge_run", "rule_judge", "run_view"]


class StaleScenarioError(Exception):
    """The run was made with another version of its scenario than the one installed."""


def rule_judge(run: RunView) -> Verdict:
    """Apply the kit's and the scenario's rules to an already assembled run."""
    return kit.judge(run)


def final_message(conn: sqlite3.Connection, run_id: str) -> str | None:
    """The agent's last message, where the run has a stored trajectory (a plain-text refusal is read from it)."""
    has = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'trajectory_items'").fetchone()
    if has is None:
        return None
    row = conn.execute("SELECT content FROM trajectory_items WHERE run_id = ? AND kind = 'assistant'"
                       " ORDER BY idx DESC LIMIT 1", (run_id,)).fetchone()  # fmt: skip
    return None if row is None or row[0] is None else str(row[0])


def judge_run(
    conn: sqlite3.Connection, run_id: str, scenario: Scenario | None = None, *, message: str | None = None
) -> Verdict:
    """Load a run from the results database and score it with its scenario's rules.

    `scenario` defaults to the installed scenario the run names (pass one to judge a scenario under authoring);
    `message` is the agent's final message when the caller knows it (else it is read from the trajectory).
    """
    return rule_judge(run_view(conn, run_id, scenario, message=message))


def run_view(
    conn: sqlite3.Connection, run_id: str, scenario: Scenario | None = None, *, message: str | None = None
) -> RunView:
    """A stored run as the rules see it (raises `StaleScenarioError` if its scenario version is not installed)."""
    row = conn.execute("SELECT scenario, scenario_version, variant FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise LookupError(f"no run {run_id!r} in this database")
    scenario = scenario or load_scenario(row["scenario"])
    if scenario.version != row["scenario_version"]:
        raise StaleScenarioError(
            f"run {run_id} used {scenario.id} v{row['scenario_version']} but v{scenario.version} is installed; "
            "judge it with the kpimcp release that ran it"
        )
    view = RunView(run_id, scenario, row["variant"], read_rows(conn, run_id), World.load(conn, scenario, run_id),
                   final_message=message if message is not None else final_message(conn, run_id))  # fmt: skip
    return view
