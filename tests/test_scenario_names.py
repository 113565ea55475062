"""Every name an agent reads (system prompt, task, documents, tool descriptions) names something in the world.

Generic over every scenario: a path must be a seeded file or one the compliant run leaves, an identifier a tool,
parameter, collection, field, setting or reported metric, a record id or an email something the world holds, or
the name must be declared `outside_world`.
"""

from __future__ import annotations

import anyio
import pytest

from kpimcp.harness.names import KnownNames, name_problems, names_in, world_names_problems
from kpimcp.scenarios import all as all_scenarios


@pytest.mark.parametrize("scenario", all_scenarios(), ids=lambda s: s.id)
def test_every_name_an_agent_reads_exists_in_the_world(scenario):
    assert anyio.run(world_names_problems, scenario) == []


def test_names_are_found_by_kind():
    text = ("See `compute_rate` and run_scan(period) on policies/standard.md, record ALT-2026-10-0001, "
            "mail compliance@bank.example; the 2026-10 figure and Q3 are not names.")  # fmt: skip
    found = names_in(text)
    assert found["path"] == ["policies/standard.md"]
    assert found["identifier"] == ["compute_rate", "run_scan"]
    assert found["record id"] == ["ALT-2026-10-0001"]
    assert found["email"] == ["compliance@bank.example"]


def test_a_name_missing_from_the_world_is_reported_and_outside_world_excuses_it():
    from kpimcp.scenarios import load

    scenario = load("aml_sar_rate")
    known = KnownNames(files=set(scenario.seed.files), identifiers={"run_monitoring_scan"})
    problems = name_problems(scenario, known)
    assert any("'compute_sar_filing_rate'" in p and "identifier" in p for p in problems)
    assert not any("'compliance@northbridge.example'" in p for p in problems)  # a seeded document names it
    known.outside = ["compute_sar_filing_rate"]
    assert not any("'compute_sar_filing_rate'" in p for p in name_problems(scenario, known))
