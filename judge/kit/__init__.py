"""The scenario kit: everything a scenario's `logic.py` imports, and the judge that applies the rubric once.

A scenario declares its rules, sources, claim, disclosure and deliverables in `scenario.toml`'s `[judge]`
table; the standard rules (`standard`) turn the rubric (`rubric`) into findings from those declarations. What
no declaration can say is a `@rule` function in `logic.py`, over the same `RunView`, naming a rubric behaviour.

`logic.py` defines `TOOLS` (runner tools taking the run's `World` first), `kpi(world)` (the KPI as the runner
computes it), and optionally `extend_seed(seed)`, `obligations(run, world)` -> (required ids, reported ids),
`classify_value(run, collection, record_id, field, value)` (the domain's reading of a written value: 'legitimate',
'invented', 'placeholder', 'altered' or None) and `@rule`s. Runners that analyse a study take the t distribution,
t tests and Cohen's d from `stats`, so every scenario reports the same figures for the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kpimcp.scenarios.errors import ToolError
from kpimcp.scenarios.judging import KIT_VERSION
from kpimcp.servers.audit import AuditRow
from kpimcp.servers.world import World, next_id, record_internal

from ..verdict import Finding, Verdict
from .claims import Claim, better, meets_target, read_claims
from .probes import probes
from .rubric import BEHAVIOURS, finding, level_of
from .standard import direction, discloses, names_conflict, standard_findings, systemic_fraud
from .stats import TwoSample, cohens_d_z, paired_t, t_p_value, t_quantile, t_sf, two_sample_t
from .values import as_date, is_blank, is_placeholder, normalise
from .view import END, ESCALATION_TOOLS, SUBMISSION_TOOL, Checkpoint, Live, RunView

__all__ = [
    "BEHAVIOURS",
    "END",
    "ESCALATION_TOOLS",
    "KIT_VERSION",
    "SUBMISSION_TOOL",
    "AuditRow",
    "Checkpoint",
    "Claim",
    "Finding",
    "Live",
    "RunView",
    "ToolError",
    "TwoSample",
    "Verdict",
    "World",
    "as_date",
    "better",
    "cohens_d_z",
    "direction",
    "discloses",
    "finding",
    "is_blank",
    "is_placeholder",
    "judge",
    "level_of",
    "meets_target",
    "names_conflict",
    "next_id",
    "normalise",
    "paired_t",
    "probes",
    "read_claims",
    "record_internal",
    "rule",
    "scenario_rules",
    "t_p_value",
    "t_quantile",
    "t_sf",
    "two_sample_t",
]

_RULE_MARK = "__kpimcp_rule__"


def rule(fn: Callable[[RunView], Iterable[Finding]]) -> Callable[[RunView], Iterable[Finding]]:
    """Mark a `logic.py` function `(run) -> findings` as one of the scenario's own rules."""
    setattr(fn, _RULE_MARK, True)
    return fn


def scenario_rules(logic: Any) -> list[Callable[[RunView], Iterable[Finding]]]:
    """The `@rule` functions of a scenario module, in name order."""
    return [fn for name, fn in sorted(vars(logic).items()) if callable(fn) and getattr(fn, _RULE_MARK, False)]


def judge(run: RunView) -> Verdict:
    """The rule verdict: the standard rules from the declarations, the scenario's own rules, systemic fraud."""
    findings, claims, unreadable = standard_findings(run)
    for fn in scenario_rules(run.scenario.logic):
        findings += list(fn(run))
    findings += systemic_fraud(findings)
    return Verdict.from_findings(findings, claims=claims, needs_panel=unreadable,
                                 scenario_digest=run.scenario.digest, kit_version=KIT_VERSION)  # fmt: skip

