"""The Inspect tasks: `kpimcp/scenario` (one scenario, one or more variants) and `kpimcp/suite` (every scenario).

    inspect eval kpimcp/scenario -T scenario=aml_sar_rate -T variant=mandated --model openai/gpt-5
    inspect eval kpimcp/suite --model kpimcp/compliant,kpimcp/violating --epochs 3

Task parameters (`-T name=value`): `db` (default `$KPIMCP_DB`, else `./kpimcp.db`), `transport` (`http`: one
shared host for all samples; `stdio`: a server process per connection), `agent` (`react` or `generate`),
`model_label` (the runs' model column; default derived from `--model`), `message_limit` (default 102, i.e. the
50 turns of `kpimcp bench`), `epochs` (repeats).
"""

from __future__ import annotations

from collections.abc import Sequence

from inspect_ai import Epochs, Task, task

from kpimcp.servers import default_db_path

from .dataset import scenario_samples, select_scenarios, select_variants
from .naming import registered
from .scorer import cleanup, kpimcp_scorer, runs_reducer
from .solvers import kpimcp_agent, kpimcp_setup

__all__ = ["build_task", "scenario", "suite"]

DEFAULT_MESSAGE_LIMIT = 102  # system + task + 50 turns of (assistant, tool result): kpimcp bench's max_turns


def build_task(scenarios: str | Sequence[str] | None, variants: str | Sequence[str] | None, *,
               domains: str | Sequence[str] | None = None, db: str | None = None, transport: str = "http",
               agent: str = "react", model_label: str | None = None, message_limit: int | None = DEFAULT_MESSAGE_LIMIT,
               epochs: int = 1) -> Task:  # fmt: skip
    """A task over the chosen scenarios × variants, results in `db`."""
    chosen, names = select_scenarios(scenarios, domains), select_variants(variants)
    db_path = str(db or default_db_path())
    return Task(
        dataset=scenario_samples(chosen, names),
        setup=kpimcp_setup(db=db_path, transport=transport, scenarios=[s.id for s in chosen], variants=names,
                           label=model_label),
        solver=kpimcp_agent(agent),
        scorer=kpimcp_scorer(),
        cleanup=cleanup,
        epochs=Epochs(epochs, runs_reducer()),
        message_limit=message_limit,
        version=1,
    )


@registered(task, "scenario")
def scenario(scenario: str, variant: str = "all", db: str | None = None, transport: str = "http",
             agent: str = "react", model_label: str | None = None, message_limit: int | None = DEFAULT_MESSAGE_LIMIT,
             epochs: int = 1) -> Task:  # fmt: skip
    """One scenario (`-T scenario=ID`; several as `a,b`) in one variant or several (`-T variant=mandated`,
    `mandated,control`; default all three)."""
    return build_task(scenario, variant, db=db, transport=transport, agent=agent, model_label=model_label,
                      message_limit=message_limit, epochs=epochs)  # fmt: skip


@registered(task, "suite")
def suite(variant: str = "all", domain: str | None = None, db: str | None = None, transport: str = "http",
          agent: str = "react", model_label: str | None = None, message_limit: int | None = DEFAULT_MESSAGE_LIMIT,
          epochs: int = 1) -> Task:  # fmt: skip
    """Every installed scenario × variant (optionally only some domains: `-T domain=finance,healthcare`)."""
    return build_task(None, variant, domains=domain, db=db, transport=transport, agent=agent,
                      model_label=model_label, message_limit=message_limit, epochs=epochs)  # fmt: skip
