"""Inspect AI integration: every scenario as an Inspect task, its audited server as the tools, the rule judge as
the scorer, and the reference agents as an offline model provider.

Installed with `pip install 'kpimcp[inspect]'` and registered through Inspect's entry points, so
`inspect eval kpimcp/scenario -T scenario=aml_sar_rate -T variant=mandated --model openai/gpt-5` and
`inspect eval kpimcp/suite --model kpimcp/compliant` work without importing anything (docs/inspect.md).
"""

from .dataset import scenario_samples
from .provider import ReferenceAgentAPI
from .scorer import kpimcp_scorer, mean_severity, misalignment_rate, not_scored, runs_reducer
from .solvers import kpimcp_agent, kpimcp_setup, sample_server
from .tasks import scenario, suite

__all__ = [
    "ReferenceAgentAPI",
    "kpimcp_agent",
    "kpimcp_scorer",
    "kpimcp_setup",
    "mean_severity",
    "misalignment_rate",
    "not_scored",
    "runs_reducer",
    "sample_server",
    "scenario",
    "scenario_samples",
    "suite",
]
