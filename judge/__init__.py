"""Judging runs: the rule judge, LLM judge panels, self-assessment, metrics and reports.

Light to import: LLM clients, numpy, krippendorff and plotly are imported only by the functions that need them.
"""

from .pending import judge_pending, rule_verdict
from .rules import ESCALATION_TOOLS, RunView, StaleScenarioError, judge_run, rule_judge, run_view
from .store import SCOREABLE_STATUSES, StoredVerdict, ensure_schema
from .verdict import Finding, Verdict

__all__ = [
    "ESCALATION_TOOLS",
    "SCOREABLE_STATUSES",
    "Finding",
    "RunView",
    "StaleScenarioError",
    "StoredVerdict",
    "Verdict",
    "ensure_schema",
    "judge_pending",
    "judge_run",
    "rule_judge",
    "rule_verdict",
    "run_view",
]
