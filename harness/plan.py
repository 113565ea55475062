"""The bench plan: models × scenarios × variants × repeats, filtered, with what is already done.

Each planned run is a *cell* with a stable key, so re-running the same command finds finished cells in the
database and skips them (resume), while failed or interrupted ones are tried again.
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kpimcp.scenarios import DOMAINS, VARIANTS, ReferenceRun, Scenario, load, load_path
from kpimcp.scenarios import ids as scenario_ids

from .config import BenchConfig, ModelEntry
from .models import ModelSpec
from .reference import pick_reference
from .store import FINISHED_STATUSES, CellState, cell_states

__all__ = ["Plan", "PlanError", "PlannedRun", "build_plan", "resolve_scenarios"]


class PlanError(ValueError):
    """A filter that selects nothing or names something unknown; the message says what exists."""


@dataclass(frozen=True)
class PlannedRun:
    """One cell: a model on a scenario variant, repeat number `repeat` (0-based)."""

    entry: ModelEntry
    model: ModelSpec
    scenario: Scenario
    variant: str
    repeat: int
    reference: ReferenceRun | None = None

    @property
    def cell(self) -> str:
        """Stable identity across invocations; a scenario version bump makes a new cell."""
        return f"{self.model.spec}|{self.scenario.id}@v{self.scenario.version}|{self.variant}|r{self.repeat}"

    @property
    def label(self) -> str:
        return f"{self.model.spec} {self.scenario.id}/{self.variant}#{self.repeat + 1}"


@dataclass
class Plan:
    """Planned cells, which of them still need a run, and notes (cells impossible to plan, and why)."""

    runs: list[PlannedRun]
    todo: list[PlannedRun] = field(default_factory=list)
    done: list[PlannedRun] = field(default_factory=list)
    previous: dict[str, CellState] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def scenarios(self) -> list[Scenario]:
        seen: dict[str, Scenario] = {}
        for r in self.runs:
            seen.setdefault(r.scenario.id, r.scenario)
        return list(seen.values())

    def mounts(self) -> list[tuple[Scenario, str]]:
        """The (scenario, variant) pairs the runs still to do need served."""
        seen: dict[tuple[str, str], tuple[Scenario, str]] = {}
        for r in self.todo:
            seen.setdefault((r.scenario.id, r.variant), (r.scenario, r.variant))
        return list(seen.values())

    def counts(self) -> dict[str, int]:
        return {"planned": len(self.runs), "to_run": len(self.todo), "already_done": len(self.done)}

    def by_model(self) -> dict[str, Counter[str]]:
        """Per model: how many cells are to run and how many are done."""
        out: dict[str, Counter[str]] = {}
        for name, runs in (("to_run", self.todo), ("done", self.done)):
            for r in runs:
                out.setdefault(r.model.spec, Counter())[name] += 1
        return out


def _load_one(name: str) -> Scenario:
    path = Path(name)
    if (path / "scenario.toml").is_file():
        return load_path(path)
    return load(name)


def resolve_scenarios(names: list[str], domains: list[str]) -> list[Scenario]:
    """Scenarios by id or folder path (all installed ones when `names` is empty), kept if in `domains`."""
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown:
        raise PlanError(f"unknown domain(s) {', '.join(unknown)}; choose from {', '.join(DOMAINS)}")
    scenarios = [_load_one(n) for n in names] if names else [load(i) for i in scenario_ids()]
    if domains:
        scenarios = [s for s in scenarios if s.domain in domains]
    if not scenarios:
        raise PlanError("no scenario matches the filters; `kpimcp scenarios list` shows the scenarios and domains")
    return scenarios


def _variants(config: BenchConfig) -> list[str]:
    bad = [v for v in config.variants if v not in VARIANTS]
    if bad:
        raise PlanError(f"unknown variant(s) {', '.join(bad)}; choose from {', '.join(VARIANTS)}")
    return list(config.variants or VARIANTS)


def build_plan(config: BenchConfig, conn: sqlite3.Connection | None = None) -> Plan:
    """Expand the config into cells (ordered so every model progresses together) and split done from to-do.

    With `conn`, cells whose current attempt is scoreable (or never acted) are done (unless `config.force`).
    """
    entries = config.model_entries()
    specs = [e.parsed() for e in entries]
    scenarios = resolve_scenarios(config.scenarios, config.domains)
    variants = _variants(config)
    runs: list[PlannedRun] = []
    notes: list[str] = []
    for repeat in range(config.repeats):
        for scenario in scenarios:
            for variant in variants:
                for entry, spec in zip(entries, specs, strict=True):
                    ref = None
                    if spec.offline:
                        ref = pick_reference(scenario, spec.model)
                        if ref is None:
                            if repeat == 0 and variant == variants[0]:
                                notes.append(f"{scenario.id} has no {spec.model} reference run: "
                                             f"{spec.spec} skips it")  # fmt: skip
                            continue
                    runs.append(PlannedRun(entry, spec, scenario, variant, repeat, ref))
    if config.limit is not None and config.limit < len(runs):
        # A reproducible subset: the same seed draws the same cells, whatever order the options came in.
        keep = {r.cell for r in random.Random(config.seed).sample(sorted(runs, key=lambda r: r.cell), config.limit)}
        notes.append(f"--limit {config.limit} (seed {config.seed}): {config.limit} of {len(runs)} planned cells")
        runs = [r for r in runs if r.cell in keep]
    plan = Plan(runs=runs, notes=notes)
    _split_done(plan, conn, force=config.force)
    return plan


def _split_done(plan: Plan, conn: sqlite3.Connection | None, *, force: bool) -> None:
    if conn is None:
        plan.todo = list(plan.runs)
        return
    plan.previous = cell_states(conn, (r.cell for r in plan.runs))
    for r in plan.runs:
        prev = plan.previous.get(r.cell)
        finished = prev is not None and prev.status in FINISHED_STATUSES
        (plan.done if finished and not force else plan.todo).append(r)
