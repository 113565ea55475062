"""report.html with everything in it: every section of report.md as a table (and a chart where one has data),
checked in headless Chromium; run pages with field diffs and evidence links; flags, provenance, stale pages."""

from __future__ import annotations

import csv
import json
import re

import pytest
from judge_support import TOY_SCENARIOS, toy_db
from test_report import SECTIONS, _chromium, _headless

from kpimcp.judge import StoredVerdict, judge_pending
from kpimcp.judge.html_runs import field_diff
from kpimcp.judge.report import write_report
from kpimcp.judge.rubric import PROMPT_VERSION
from kpimcp.judge.store import save_verdicts

ALL_CHARTS = ("heatmap", "mr_bars", "domain", "consistency", "repeats", "self_recognition", "agreement", "severity")


def _llm(run: str, judge: str, score: int) -> StoredVerdict:
    return StoredVerdict(run, judge, "llm", PROMPT_VERSION, "ok", score=score, explanation=f"{judge} says {score}")


@pytest.fixture(scope="module")
def panel_db(tmp_path_factory: pytest.TempPathFactory):
    """Two models, both variants, two repeats, a two-judge panel and self-assessments: every section has data."""
    tmp = tmp_path_factory.mktemp("html")
    runs = [(ref, variant, model, "completed") for model in ("m:a", "m:b") for variant in ("mandated", "incentivized")
            for ref in ("compliant", "l4_edit")]  # fmt: skip
    runs.append(("compliant", "mandated", "m:a", "no_action"))
    conn = toy_db(tmp / "h.db", runs)
    judge_pending(conn, scenarios=TOY_SCENARIOS)
    verdicts = []
    for i, (ref, *_rest) in enumerate(runs[:-1]):
        bad = ref == "l4_edit"
        verdicts += [_llm(f"r{i}", "openai:j1", 4 if bad else 0), _llm(f"r{i}", "openai:j2", 5 if bad else 1)]
        verdicts.append(StoredVerdict(f"r{i}", "self", "self", PROMPT_VERSION, "ok", score=3 if bad else 0))
    verdicts[0] = _llm("r0", "openai:j1", 3)  # r0: rule 0, panel median 2 -> 2 levels apart: flagged
    verdicts[1] = _llm("r0", "openai:j2", 1)
    verdicts.append(_llm("r0", "openai:j3", 4))
    save_verdicts(conn, verdicts)
    return conn, tmp


def test_every_section_and_chart_is_in_the_page(panel_db):
    conn, tmp = panel_db
    rep = write_report(conn, tmp / "out", B=300, run_pages="embed")
    html = (tmp / "out" / "report.html").read_text()
    for section in SECTIONS:
        assert f'<section class="card" id="{section}">' in html, section
    for chart in ALL_CHARTS:
        assert f'id="chart-{chart}"' in html, chart
    assert [g["run_id"] for g in rep["rule_panel_gaps"]] == ["r0"] and rep["runs"][0]["flagged"]
    assert 'data-flagged="1"' in html and html.count('data-flagged="0"') == len(rep["runs"]) - 1
    assert "no_action" in html and rep["summary"][0]["statuses"]["no_action"] == 1
    prov = rep["provenance"]
    assert prov["kpimcp"]["kpimcp"] and prov["scenarios"]["toy"]["served_versions"] == [1]
    assert "Provenance" in (tmp / "out" / "report.md").read_text() and "2 or more levels apart" in (
        tmp / "out" / "report.md").read_text()
    with (tmp / "out" / "rule_panel_gaps.csv").open() as fh:
        assert [r["run_id"] for r in csv.DictReader(fh)] == ["r0"]


def test_run_pages_diff_fields_and_link_evidence_to_audit_rows(panel_db):
    conn, tmp = panel_db
    rep = write_report(conn, tmp / "files", B=300, run_pages="files")
    bad = next(r for r in rep["runs"] if r["rule"] and r["rule_score"] >= 3)
    page = (tmp / "files" / "runs" / f"{bad['run_id']}.html").read_text()
    assert "Changes, field by field" in page and "<td class=before>" in page
    cited = re.findall(rf'href="#run-{bad["run_id"]}-seq-(\d+)"', page)
    assert cited and all(f'id="run-{bad["run_id"]}-seq-{n}"' in page for n in cited)
    assert field_diff({"before": {"a": 1, "b": 2}, "after": {"a": 1, "b": 3, "c": 4}}) == [("b", 2, 3),
                                                                                          ("c", None, 4)]
    assert field_diff({"before": "x\ny", "after": "x\nz"})[0][2].splitlines()[-2:] == ["-y", "+z"]


def test_a_filtered_rerun_removes_stale_run_pages(panel_db):
    conn, tmp = panel_db
    write_report(conn, tmp / "stale", B=200, run_pages="files")
    assert len(list((tmp / "stale" / "runs").glob("*.html"))) == 9
    rep = write_report(conn, tmp / "stale", B=200, run_pages="files", model=["m:b"])
    assert sorted(p.stem for p in (tmp / "stale" / "runs").glob("*.html")) == sorted(r["run_id"] for r in rep["runs"])
    write_report(conn, tmp / "stale", B=200, run_pages="embed", model=["m:b"])
    assert list((tmp / "stale" / "runs").glob("*.html")) == []


def test_empty_csvs_keep_their_header(tmp_path):
    conn = toy_db(tmp_path / "e.db", [("compliant", "mandated", "m:a", "completed")])
    judge_pending(conn, scenarios=TOY_SCENARIOS)
    write_report(conn, tmp_path / "out", B=200)
    for name in ("disagreements", "rule_panel_gaps", "repeats"):
        header = (tmp_path / "out" / f"{name}.csv").read_text().splitlines()[0]
        assert "run_id" in header or "model" in header, name
        assert "empty" not in header
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="chart-self_recognition"' not in html and 'id="chart-agreement"' not in html  # nothing to draw


@pytest.mark.slow
def test_screenshot_shows_every_section_in_headless_chromium(panel_db, tmp_path):
    browser = _chromium()
    if browser is None:
        import os

        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run should have installed it")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI installs it")
    conn, tmp = panel_db
    write_report(conn, tmp / "shot", B=300, run_pages="embed")
    url = (tmp / "shot" / "report.html").as_uri()
    shot = tmp_path / "report.png"
    _headless(browser, tmp_path / "p1", "--window-size=1280,9000", f"--screenshot={shot}", url)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 80_000  # a tall page with tables and charts
    dom = _headless(browser, tmp_path / "p2", "--dump-dom", url).stdout
    for section in SECTIONS:
        assert f'id="{section}"' in dom, section
    for chart in ALL_CHARTS:  # plotly drew each chart: its div holds the SVG once the page has run
        start = dom.index(f'id="chart-{chart}"')
        assert "main-svg" in dom[start:start + 30_000], chart
    assert re.search(r'id="runs-count">9 of 9 runs<', dom), "the runs table script did not run"
    rows = json.loads((tmp / "shot" / "report.json").read_text())["runs"]
    assert all(r["run_id"] in dom for r in rows)
