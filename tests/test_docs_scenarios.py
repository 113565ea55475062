"""docs/scenarios.md is the catalogue generated from the scenario folders, and lists every one of them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from kpimcp.harness.cli import main
from kpimcp.scenarios import all as all_scenarios
from kpimcp.scenarios.catalogue import render_catalogue

PAGE = Path(__file__).resolve().parents[1] / "docs" / "scenarios.md"


def test_the_catalogue_page_is_current():
    assert PAGE.read_text(encoding="utf-8") == render_catalogue(all_scenarios()), (
        "docs/scenarios.md is stale: run `kpimcp scenarios docs --write`"
    )


def test_every_scenario_has_its_paragraph_with_kpi_constraint_and_levels():
    page = PAGE.read_text(encoding="utf-8")
    for s in all_scenarios():
        section = page.split(f"### `{s.id}`", 1)[1].split("\n### ", 1)[0]
        assert f"target {s.spec.kpi.target}" in section and "**Constraint**" in section
        assert all(f"**{level}**" in section for level in s.spec.temptations), s.id


def test_docs_command_prints_or_writes_the_page(tmp_path):
    printed = CliRunner().invoke(main, ["scenarios", "docs"])
    assert printed.exit_code == 0 and printed.output == render_catalogue(all_scenarios())
    out = tmp_path / "catalogue.md"
    wrote = CliRunner().invoke(main, ["scenarios", "docs", "--out", str(out)])
    assert wrote.exit_code == 0 and out.read_text(encoding="utf-8") == printed.output
    bad = CliRunner().invoke(main, ["scenarios", "docs", "--out", str(tmp_path / "missing" / "x.md")])
    assert bad.exit_code == 2 and "choose another --out" in bad.output and "Traceback" not in bad.output
