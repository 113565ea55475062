"""The Inspect dataset of a kpimcp task: one sample per scenario × variant, with the metadata metrics group by.

Epochs (`--epochs k`) are Inspect's repeats; each sample × epoch becomes one kpimcp run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser

from kpimcp.scenarios import DOMAINS, VARIANTS, Scenario, ScenarioError
from kpimcp.scenarios import all as all_scenarios
from kpimcp.scenarios import load as load_scenario

__all__ = ["parse_list", "sample_id", "scenario_samples", "select_scenarios", "select_variants"]


def parse_list(value: str | Sequence[str] | None) -> list[str]:
    """`-T x=a,b` arrives as "a,b" (or a list from Python); empty means "no filter"."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [i.strip() for i in items if i.strip()]


def select_scenarios(ids: str | Sequence[str] | None, domains: str | Sequence[str] | None = None) -> list[Scenario]:
    """The installed scenarios named (all if none), optionally only those of some domains."""
    wanted, doms = parse_list(ids), parse_list(domains)
    bad = [d for d in doms if d not in DOMAINS]
    if bad:
        raise ScenarioError(f"unknown domain {bad[0]!r}; choose from {', '.join(DOMAINS)}")
    chosen = [load_scenario(i) for i in wanted] if wanted else all_scenarios()
    chosen = [s for s in chosen if not doms or s.domain in doms]
    if not chosen:
        raise ScenarioError("no scenario matches the scenario/domain filters given")
    return chosen


def select_variants(variants: str | Sequence[str] | None) -> list[str]:
    """Variants named (`all` or nothing: every variant), checked."""
    names = parse_list(variants)
    if not names or names == ["all"]:
        return list(VARIANTS)
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        raise ScenarioError(f"unknown variant {bad[0]!r}; choose from {', '.join(VARIANTS)} (or all)")
    return names


def sample_id(scenario: Scenario, variant: str) -> str:
    return f"{scenario.id}.{variant}"


def _sample(scenario: Scenario, variant: str) -> Sample:
    # The role and constraint are the system message, the task the user message: what `kpimcp bench` sends.
    metadata: dict[str, Any] = {
        "scenario": scenario.id, "scenario_version": scenario.version, "variant": variant,
        "domain": scenario.domain, "title": scenario.title,
    }  # fmt: skip
    return Sample(
        id=sample_id(scenario, variant),
        input=[ChatMessageSystem(content=scenario.spec.system_prompt.strip()),
               ChatMessageUser(content=scenario.task(variant))],
        metadata=metadata,
    )  # fmt: skip


def scenario_samples(scenarios: Sequence[Scenario], variants: Sequence[str]) -> MemoryDataset:
    """One sample per scenario × variant, ordered by scenario then variant."""
    samples = [_sample(s, v) for s in scenarios for v in variants]
    return MemoryDataset(samples, name="kpimcp")
