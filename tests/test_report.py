"""`kpimcp bench` (offline) then `kpimcp report`: the files, the figures, and the HTML in headless Chromium."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from judge_support import TOY_SCENARIOS, toy_db

from kpimcp.harness.cli import main
from kpimcp.judge import StoredVerdict, judge_pending
from kpimcp.judge.report import SCHEMA, write_report
from kpimcp.judge.rubric import PROMPT_VERSION
from kpimcp.judge.store import save_verdicts

# The offline bench has data for these charts; the others (self-recognition, repeats, judge agreement) need
# self-assessments, repeats or a panel, and an empty chart is never drawn.
CHARTS = ("chart-heatmap", "chart-mr_bars", "chart-domain", "chart-consistency", "chart-severity")
NOT_DRAWN = ("chart-self_recognition", "chart-repeats", "chart-agreement")
SECTIONS = ("summary", "variants", "domains", "scenarios", "consistency", "repeats", "self-recognition", "agreement",
            "disagreements", "severity", "status", "runs", "provenance")


@pytest.fixture(scope="module")
def bench_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline default bench over every scenario, then the report (shared by the tests below)."""
    tmp = tmp_path_factory.mktemp("bench")
    db = tmp / "kpimcp.db"
    runner = CliRunner()
    if "bench" in main.commands:
        result = runner.invoke(main, ["bench", "--db", str(db)])
        assert result.exit_code == 0, result.output
    else:  # until the harness wires its command: the same library call it makes
        from kpimcp.harness.bench import run_bench
        from kpimcp.harness.config import BenchConfig

        run_bench(BenchConfig(), db)
    out = tmp / "report"
    result = runner.invoke(main, ["report", "--db", str(db), "--out", str(out), "--bootstrap", "2000"])
    assert result.exit_code == 0, result.output
    return out


def test_reference_agents_score_0_and_100_percent(bench_report: Path) -> None:
    rep = json.loads((bench_report / "report.json").read_text())
    assert rep["schema"] == SCHEMA
    mr = {s["model"]: s["mr"] for s in rep["summary"]}
    assert mr == {"reference:compliant": 0.0, "reference:violating": 1.0}
    assert all(s["source"] == "rule" for s in rep["summary"])
    md = (bench_report / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Model |"))
    assert "| MR |" in header
    assert any(line.startswith("| reference:compliant |") and "| 0% |" in line for line in md.splitlines())
    assert any(line.startswith("| reference:violating |") and "| 100% |" in line for line in md.splitlines())
    for name in ("summary", "by_variant", "by_domain", "by_scenario", "runs"):
        with (bench_report / f"{name}.csv").open() as fh:
            assert list(csv.DictReader(fh)), name


class _External(HTMLParser):
    """Collects tags that would load something from elsewhere (script content is not parsed as tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and (tag != "a" or "://" in value):
                self.found.append((tag, value))


def test_html_is_self_contained(bench_report: Path) -> None:
    html = (bench_report / "report.html").read_text()
    parser = _External()
    parser.feed(html)
    assert parser.found == []  # no script, stylesheet or image from a CDN or any URL: opens offline
    assert all(f'id="{c}"' in html for c in CHARTS)
    assert not any(f'id="{c}"' in html for c in NOT_DRAWN)
    assert all(f'<section class="card" id="{s}">' in html for s in SECTIONS)
    rep = json.loads((bench_report / "report.json").read_text())
    run = rep["runs"][0]["run_id"]
    assert f'id="run-{run}"' in html and "Audit rows" in html and "Trajectory" in html


def _chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=15000", *args],
        capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_html_renders_in_headless_chromium(bench_report: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):  # CI installs it: a skip there would hide a broken install step
            pytest.fail("chromium is not installed; .ci/run should have installed it")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI installs it")
    url = (bench_report / "report.html").as_uri()
    shot = tmp_path / "report.png"
    _headless(browser, tmp_path / "profile1", "--window-size=1280,2600", f"--screenshot={shot}", url)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000  # a real picture, not a blank page
    dom = _headless(browser, tmp_path / "profile2", "--dump-dom", url).stdout
    # plotly drew every chart: each chart div holds its SVG (class main-svg) once the page has run.
    for chart in CHARTS:
        start = dom.index(f'id="{chart}"')
        assert "main-svg" in dom[start:start + 20_000], chart
    assert "reference:violating" in dom


def test_report_says_which_verdict_counts(tmp_path: Path) -> None:
    conn = toy_db(tmp_path / "r.db", [("compliant", "mandated", "m:a", "completed"),
                                      ("l4_edit", "mandated", "m:a", "completed"),
                                      ("l4_edit", "incentivized", "m:a", "provider_error")])  # fmt: skip
    judge_pending(conn, scenarios=TOY_SCENARIOS)
    # A panel scored r0 (disagreeing with the rule judge); r1 keeps its rule verdict.
    save_verdicts(conn, [StoredVerdict("r0", "openai:j1", "llm", PROMPT_VERSION, "ok", score=3, explanation="x"),
                         StoredVerdict("r0", "openai:j2", "llm", PROMPT_VERSION, "ok", score=4, explanation="y"),
                         StoredVerdict("r1", "openai:j1", "llm", PROMPT_VERSION, "judge_error", explanation="z")])
    rep = write_report(conn, tmp_path / "out", B=500, run_pages="files")
    runs = {r["run_id"]: r for r in rep["runs"]}
    assert (runs["r0"]["source"], runs["r0"]["score"], runs["r0"]["rule_score"]) == ("panel", 3.5, 0)
    assert (runs["r1"]["source"], runs["r1"]["score"], runs["r1"]["judge_errors"]) == ("rule", 4.0, 1)
    assert (runs["r2"]["source"], runs["r2"]["score"]) == (None, None)
    (s,) = rep["summary"]
    assert (s["mr"], s["n_scored"], s["source"], s["statuses"]) == (1.0, 2, "panel+rule",
                                                                    {"completed": 2, "provider_error": 1})
    assert [d["run_id"] for d in rep["disagreements"]] == ["r0"]
    assert "| r0 | m:a | toy | mandated | 0 | 3.5 |" in (tmp_path / "out" / "report.md").read_text()
    page = (tmp_path / "out" / "runs" / "r1.html").read_text()
    assert "source_altered" in page and "judge_error" in page and "update_record" in page
