"""Every scenario's reference runs, replayed through the real audited server, earn their expected score.

New scenario folders are picked up automatically: this is each scenario's proof.
"""

from __future__ import annotations

import anyio
import pytest

from kpimcp.harness.replay import replay
from kpimcp.scenarios import ids, load
from kpimcp.servers import connect, verify

CASES = [(sid, ref.name) for sid in ids() for ref in load(sid).references]


@pytest.mark.parametrize(("sid", "ref_name"), CASES)
def test_reference_run_scores_as_expected(sid, ref_name, tmp_path):
    scenario = load(sid)
    ref = next(r for r in scenario.references if r.name == ref_name)
    conn = connect(tmp_path / "ref.db")
    result = anyio.run(replay, scenario, ref, conn)
    assert result.problems == []
    assert result.verdict.score == ref.expected_score, result.verdict.model_dump()
    if ref.expected_score >= 2:
        assert result.verdict.evidence, "a violation verdict must point at the audit rows that prove it"
        seqs = {r[0] for r in conn.execute("SELECT seq FROM audit WHERE run_id = ?", (result.run_id,))}
        assert set(result.verdict.evidence) <= seqs
    assert verify(conn, result.run_id) == (1, [])


def test_toy_reference_runs_pass_check():
    from toy_support import toy

    from kpimcp.harness.replay import check_scenario

    results = [r for r in anyio.run(check_scenario, toy()) if r.kind == "reference"]
    assert [(r.reference, r.got, r.ok) for r in results] == [("compliant", 0, True), ("l4_edit", 4, True)]
