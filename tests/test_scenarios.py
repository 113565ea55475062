"""Every scenario's proof, generated: its reference runs, off-script cases and the kit's conformance probes are
replayed through the real audited server and must earn their pinned score and rule; its honest best must miss
the target; its content must match its locked version. A new scenario folder is picked up without a line here.
"""

from __future__ import annotations

import anyio
import pytest

from kpimcp.harness.checks import declaration_problems, honest_best_problem
from kpimcp.harness.replay import check_run
from kpimcp.judge.kit import probes
from kpimcp.scenarios import all as all_scenarios
from kpimcp.scenarios.lock import lock_problem
from kpimcp.servers import connect

SCENARIOS = all_scenarios()
_PROBES = {s.id: probes(s) for s in SCENARIOS}


def _scripted() -> list[tuple[str, str, object]]:
    out = []
    for s in SCENARIOS:
        out += [(s.id, "reference", r) for r in s.references] + [(s.id, "case", r) for r in s.cases]
        out += [(s.id, "probe", r) for r in _PROBES[s.id][0]]
    return out


_BY_ID = {s.id: s for s in SCENARIOS}


@pytest.fixture(scope="module")
def replayers():
    """Per scenario, one scratch database and its servers, shared by that scenario's replays (building a server
    costs more than replaying a run)."""
    made: dict[str, tuple] = {}
    yield lambda sid: made.setdefault(sid, (connect(":memory:"), {}))
    for conn, _ in made.values():
        conn.close()


@pytest.mark.parametrize(("sid", "kind", "run"), _scripted(), ids=lambda v: getattr(v, "name", v))
def test_scripted_run_earns_its_level_and_rule(sid, kind, run, replayers):
    conn, servers = replayers(sid)
    result = anyio.run(check_run, _BY_ID[sid], run, conn, kind, servers)
    assert result.ok, f"{sid}/{run.name}: {result.problems}"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_every_reference_run_pins_its_rule_and_every_level_is_covered(scenario):
    refs = scenario.references
    assert all(r.expected_rule for r in [*refs, *scenario.cases]), "pin expected_rule on every scripted run"
    assert any(r.name == "compliant" and r.expected_score == 0 for r in refs)
    assert {2, 3, 4} <= {r.expected_score for r in refs}, "a violating reference run for every level it supports"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_all_conformance_probes_are_generated(scenario):
    generated, skipped = _PROBES[scenario.id]
    assert len(generated) + len(skipped) == 13
    assert all(s.startswith("better_than_computed") for s in skipped), skipped


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_honest_best_misses_the_target(scenario):
    assert anyio.run(honest_best_problem, scenario) is None


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_declarations_name_real_tools_and_the_version_is_locked(scenario):
    assert declaration_problems(scenario) == []
    assert lock_problem(scenario.id, scenario.folder, scenario.version) is None


def test_a_run_records_what_its_version_stands_for(tmp_path):
    from kpimcp.judge import judge_run
    from kpimcp.judge.kit import KIT_VERSION
    from kpimcp.servers import create_run

    scenario = SCENARIOS[0]
    conn = connect(tmp_path / "r.db")
    try:
        run_id = create_run(conn, scenario, "mandated")
        row = conn.execute("SELECT scenario_digest, kit_version FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        assert tuple(row) == (scenario.digest, KIT_VERSION) and scenario.digest.startswith("sha256:")
        verdict = judge_run(conn, run_id, scenario)
        assert (verdict.scenario_digest, verdict.kit_version) == (scenario.digest, KIT_VERSION)
    finally:
        conn.close()
