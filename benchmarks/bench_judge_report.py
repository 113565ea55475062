"""Benchmark: rule-judging and reporting 10,000 stored runs.

The fixture is generated once: every reference run of every installed scenario is replayed through the real
audited server in all three variants, then cloned under new run ids (and eight model labels) until there are
`--runs` runs. Clones get a freshly computed hash chain, so `kpimcp audit verify` passes on them, plus their
world changes and a trajectory, exactly as the harness stores them. Two synthetic LLM judges then score every
run, so the report also exercises the panel median and the agreement statistics.

Measured: `judge_pending` over all runs (target ≤ 30 s) and `write_report` with B = 10,000 (target ≤ 10 s).

    /tmp/venv/bin/python benchmarks/bench_judge_report.py [--runs 10000] [--db PATH] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import anyio

from kpimcp.harness.replay import replay
from kpimcp.harness.store import ensure_schema as harness_schema
from kpimcp.judge import judge_pending
from kpimcp.judge.report import write_report
from kpimcp.judge.rubric import PROMPT_VERSION
from kpimcp.judge.store import StoredVerdict, save_verdicts
from kpimcp.judge.store import ensure_schema as judge_schema
from kpimcp.scenarios import ScenarioError, ids, load
from kpimcp.servers import connect, transaction, verify
from kpimcp.servers.audit import _HASHED, _row_hash, genesis_hash

MODELS = ["openai:gpt-5", "openai:gpt-5-mini", "openrouter:x-ai/grok-4", "openrouter:anthropic/claude-sonnet-4",
          "openrouter:google/gemini-2.5-pro", "openrouter:meta-llama/llama-4-maverick", "openrouter:qwen/qwen3-235b",
          "openrouter:deepseek/deepseek-r1"]  # fmt: skip
VARIANTS = ("mandated", "incentivized", "control")


def templates(conn: sqlite3.Connection) -> list[str]:
    """Replay every reference run of every loadable scenario in every variant; returns the run ids."""
    out: list[str] = []

    async def go() -> None:
        for sid in ids():
            try:
                scenario = load(sid)
            except ScenarioError as exc:
                print(f"  skipping broken scenario {sid}: {exc}", file=sys.stderr)
                continue
            for ref in scenario.references:
                for variant in VARIANTS:
                    rep = await replay(scenario, ref, conn, variant=variant)
                    out.append(rep.run_id)

    anyio.run(go)
    return out


def clone(conn: sqlite3.Connection, template: str, run_id: str, model: str, created: str) -> None:
    """Copy a run under a new id: run row, a re-hashed audit chain, world changes, a trajectory."""
    run = dict(conn.execute("SELECT * FROM runs WHERE run_id = ?", (template,)).fetchone())
    run.update(run_id=run_id, model=model, status="completed", bench_id="bench-fixture", created_at=created,
               updated_at=created)  # fmt: skip
    conn.execute(f"INSERT INTO runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})", list(run.values()))
    prev = genesis_hash(run_id)
    traj = []
    for r in conn.execute("SELECT * FROM audit WHERE run_id = ? ORDER BY seq", (template,)).fetchall():
        values = {c: r[c] for c in _HASHED} | {"run_id": run_id}
        h = _row_hash(prev, values)
        cols = [*_HASHED, "prev_hash", "hash"]
        conn.execute(f"INSERT INTO audit ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                     [values[c] for c in _HASHED] + [prev, h])  # fmt: skip
        prev = h
        traj += [("tool_call", r["tool"], r["arguments"]), ("tool_output", r["tool"], r["result"] or r["error"])]
    conn.execute("UPDATE runs SET head_hash = ? WHERE run_id = ?", (prev, run_id))
    conn.execute("INSERT INTO world_state (run_id, space, key, value) SELECT ?, space, key, value FROM world_state"
                 " WHERE run_id = ?", (run_id, template))  # fmt: skip
    items = [("system", None, "You are ..."), ("user", None, "The task ..."), *traj, ("assistant", None, "Done.")]
    conn.executemany("INSERT INTO trajectory_items (run_id, idx, kind, role, name, call_id, content, created_at)"
                     " VALUES (?, ?, ?, NULL, ?, NULL, ?, ?)",
                     [(run_id, i, k, n, c, created) for i, (k, n, c) in enumerate(items)])  # fmt: skip


def build_fixture(db: Path, n_runs: int) -> None:
    conn = connect(db)
    harness_schema(conn)
    t0 = time.perf_counter()
    tmpl = templates(conn)
    print(f"replayed {len(tmpl)} reference runs in {time.perf_counter() - t0:.1f} s")
    rng = random.Random(0)
    t0 = time.perf_counter()
    with transaction(conn):
        # The templates count among the runs (audit rows are append-only, so they cannot be deleted).
        for run_id in tmpl:
            conn.execute("UPDATE runs SET model = ?, status = 'completed', bench_id = 'bench-fixture' WHERE run_id = ?",
                         (MODELS[0], run_id))  # fmt: skip
        for i in range(n_runs - len(tmpl)):
            clone(conn, tmpl[i % len(tmpl)], f"run-bench-{i:05d}", MODELS[(i // len(tmpl) + 1) % len(MODELS)],
                  f"2026-11-01T00:{(i // 60) % 60:02d}:{i % 60:02d}.{i:06d}+00:00")  # fmt: skip
    print(f"cloned {n_runs} runs in {time.perf_counter() - t0:.1f} s; "
          f"{conn.execute('SELECT count(*) FROM audit').fetchone()[0]} audit rows")  # fmt: skip
    for run_id in rng.sample([f"run-bench-{i:05d}" for i in range(n_runs - len(tmpl))], 20):
        _, problems = verify(conn, run_id)
        assert not problems, problems
    conn.close()


def add_panel(conn: sqlite3.Connection) -> None:
    """Two synthetic LLM judges: the rule score, sometimes off by one (so α and disagreements are non-trivial)."""
    rng = random.Random(1)
    rows = conn.execute("SELECT run_id, score FROM verdicts WHERE judge = 'rules' AND status = 'ok'").fetchall()
    verdicts = []
    for run_id, score in rows:
        for judge in ("openai-compatible:judge-a", "openai-compatible:judge-b"):
            s = min(5, max(0, score + rng.choice((-1, 0, 0, 0, 1))))
            verdicts.append(StoredVerdict(run_id, judge, "llm", PROMPT_VERSION, "ok", score=s, explanation="synthetic"))
    save_verdicts(conn, verdicts)


def per_scenario_cost(conn: sqlite3.Connection, sample: int = 60) -> dict[str, float]:
    """Milliseconds per run of each scenario's own rules (serial, a sample of its runs): where the time goes."""
    from kpimcp.judge.pending import rule_verdict

    out = {}
    rng = random.Random(2)
    for (sid,) in conn.execute("SELECT DISTINCT scenario FROM runs ORDER BY scenario").fetchall():
        every = [r[0] for r in conn.execute("SELECT run_id FROM runs WHERE scenario = ? ORDER BY run_id", (sid,))]
        run_ids = rng.sample(every, min(sample, len(every)))
        scenario = load(sid)
        t0 = time.perf_counter()
        for run_id in run_ids:
            rule_verdict(conn, run_id, scenario)
        out[sid] = round(1000 * (time.perf_counter() - t0) / len(run_ids), 2)
    return out


def framework_cost(db: Path) -> float:
    """Seconds to rule-judge every run with every scenario's rules replaced by a no-op (serial): the cost of
    loading runs, audit rows and worlds and storing verdicts, i.e. what kpimcp's judge itself adds."""
    from kpimcp.judge import kit, rules

    conn = connect(db)
    judge_schema(conn)  # a fresh fixture has no verdicts table until the first judge pass
    original = rules.rule_judge
    rules.rule_judge = lambda run: kit.Verdict.from_findings([])  # the kit's rules replaced by a no-op
    try:
        conn.execute("DELETE FROM verdicts")
        t0 = time.perf_counter()
        judge_pending(conn, workers=1)
        return time.perf_counter() - t0
    finally:
        rules.rule_judge = original
        conn.execute("DELETE FROM verdicts")
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--db", type=Path, help="Reuse or create the fixture here (default: a temporary folder).")
    ap.add_argument("--keep", action="store_true", help="Keep the temporary folder.")
    ap.add_argument("--bootstrap", type=int, default=10_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kpimcp-bench-"))
    db = args.db or tmp / "bench.db"
    if not db.exists():
        build_fixture(db, args.runs)
    t_framework = framework_cost(db)
    conn = connect(db)
    n = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    costs = per_scenario_cost(conn)
    conn.execute("DELETE FROM verdicts")

    t0 = time.perf_counter()
    judged = judge_pending(conn)
    t_rule = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = judge_pending(conn)
    t_cached = time.perf_counter() - t0
    add_panel(conn)
    t0 = time.perf_counter()
    rep = write_report(conn, tmp / "report", B=args.bootstrap)
    t_report = time.perf_counter() - t0
    size = (tmp / "report" / "report.html").stat().st_size
    mix = dict(conn.execute("SELECT scenario, count(*) FROM runs GROUP BY scenario").fetchall())
    result = {"runs": n, "judged": judged, "rule_judge_s": round(t_rule, 2), "rule_judge_target_s": 30,
              "rule_judge_workers": min(os.cpu_count() or 1, 8), "framework_only_serial_s": round(t_framework, 2),
              "scenario_rules_ms_per_run": costs, "runs_per_scenario": mix,
              "rejudge_noop_s": round(t_cached, 3), "rejudged": again, "report_s": round(t_report, 2),
              "report_target_s": 10, "bootstrap_B": args.bootstrap, "report_html_bytes": size,
              "summary_models": len(rep["summary"]), "report_dir": str(tmp / "report")}  # fmt: skip
    print(json.dumps(result, indent=1))
    if not args.keep and args.db is None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    ok = t_rule <= 30 and t_report <= 10
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
