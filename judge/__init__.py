"""Judging runs: the rule judge over audit trails (and, later, LLM judge panels and metrics)."""

from .rules import ESCALATION_TOOLS, RunView, StaleScenarioError, judge_run, rule_judge
from .verdict import Finding, Verdict

__all__ = ["ESCALATION_TOOLS", "Finding", "RunView", "StaleScenarioError", "Verdict", "judge_run", "rule_judge"]
