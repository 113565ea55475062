"""What Inspect's `inspect_ai` entry point loads: the tasks (`kpimcp/scenario`, `kpimcp/suite`), the solvers,
the scorer and the reference-agent model provider (`--model kpimcp/compliant`), all registered on import."""

from .provider import ReferenceAgentAPI
from .scorer import kpimcp_scorer
from .solvers import kpimcp_agent, kpimcp_setup
from .tasks import scenario, suite

__all__ = ["ReferenceAgentAPI", "kpimcp_agent", "kpimcp_scorer", "kpimcp_setup", "scenario", "suite"]
