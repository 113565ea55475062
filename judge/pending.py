"""Rule-judging runs in bulk: every scoreable run that lacks a current rule verdict gets one.

Deterministic and offline; verdicts are written in batches so judging 10,000 runs is a few seconds of SQLite
work plus the scenarios' own rules.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from kpimcp.scenarios import Scenario, ScenarioError
from kpimcp.scenarios import load as load_scenario
from kpimcp.servers.integrity import broken_runs

from .rules import StaleScenarioError, judge_run
from .store import (
    RULE_JUDGE,
    RULES_VERSION,
    StoredVerdict,
    current_sql,
    ensure_schema,
    run_filter_sql,
    save_verdicts,
    scoreable_sql,
)
from .store import rule_version as _rule_version

__all__ = ["PARALLEL_MIN_RUNS", "judge_pending", "rule_verdict"]

_BATCH = 500
PARALLEL_MIN_RUNS = 400  # below this, starting worker processes (~1.5 s each: imports, seeds) does not pay


def rule_verdict(conn: sqlite3.Connection, run_id: str, scenario: Scenario | None = None) -> StoredVerdict:
    """Rule-judge one run and return the verdict row to store (a `judge_error` row if it cannot be judged)."""
    row = conn.execute("SELECT scenario, scenario_version FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise LookupError(f"no run {run_id!r} in this database")
    version = _rule_version(row["scenario_version"])
    try:
        verdict = judge_run(conn, run_id, scenario)
    except (StaleScenarioError, ScenarioError) as exc:
        # The run cannot be judged with what is installed: say so instead of guessing a score.
        return StoredVerdict(run_id, RULE_JUDGE, "rule", version, "judge_error", explanation=str(exc))
    except Exception as exc:  # a bug in a scenario's rules must not stop the other runs being judged
        return StoredVerdict(run_id, RULE_JUDGE, "rule", version, "judge_error",
                             explanation=f"the scenario's rules raised {type(exc).__name__}: {exc}")  # fmt: skip
    return StoredVerdict(
        run_id, RULE_JUDGE, "rule", version, "ok", score=verdict.score, rule=verdict.rule,
        explanation=verdict.explanation, evidence=verdict.evidence, raw=verdict.model_dump_json(),
    )  # fmt: skip


def _judge_serial(conn: sqlite3.Connection, todo: Sequence[tuple[str, str]],
                  scenarios: dict[str, Scenario | None]) -> Iterator[list[StoredVerdict]]:  # fmt: skip
    batch: list[StoredVerdict] = []
    for run_id, sid in todo:
        if sid not in scenarios:
            try:
                scenarios[sid] = load_scenario(sid)
            except ScenarioError:
                scenarios[sid] = None  # rule_verdict records the error on each of its runs
        batch.append(rule_verdict(conn, run_id, scenarios[sid]))
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    yield batch


def _worker(db: str, todo: list[tuple[str, str]], folders: dict[str, str]) -> list[StoredVerdict]:
    """Judge a chunk in a worker process, on its own connection (scenario rules are CPU-bound Python)."""
    from kpimcp.scenarios import load_path
    from kpimcp.servers.store import connect

    conn = connect(db)
    try:
        scenarios: dict[str, Scenario | None] = {sid: load_path(Path(f)) for sid, f in folders.items()}
        return [v for batch in _judge_serial(conn, todo, scenarios) for v in batch]
    finally:
        conn.close()


def _judge_parallel(db: str, todo: Sequence[tuple[str, str]], scenarios: dict[str, Scenario | None],
                    workers: int) -> Iterator[list[StoredVerdict]]:  # fmt: skip
    # spawn, not fork: judge_pending runs inside the bench's event loop, and forking a threaded process is unsafe.
    ctx = multiprocessing.get_context("spawn")
    folders = {sid: str(sc.folder) for sid, sc in scenarios.items() if sc is not None}
    chunks = [list(todo[i::workers * 4]) for i in range(workers * 4)]  # interleaved: cheap and costly runs mixed
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(_worker, db, chunk, folders) for chunk in chunks if chunk]
        for fut in as_completed(futures):
            yield fut.result()


def _db_file(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("PRAGMA database_list").fetchone()
    return row[2] if row is not None and row[2] else None


def judge_pending(
    conn: sqlite3.Connection,
    *,
    scenario: str | Sequence[str] | None = None,
    variant: str | Sequence[str] | None = None,
    model: str | Sequence[str] | None = None,
    force: bool = False,
    scenarios: dict[str, Scenario] | None = None,
    workers: int | None = None,
    bench: str | None = None,
) -> int:
    """Rule-judge every scoreable run (completed, max_turns, or a submitted product run) lacking a current rule
    verdict.

    A rule verdict is current when it was made by this rule-judge version with the run's scenario version.
    `force` re-judges runs that already have one. `scenarios` maps ids to scenarios to use instead of the
    installed ones (authoring, tests). `workers` > 1 judges in that many processes when at least
    `PARALLEL_MIN_RUNS` runs are pending (default: one per CPU, at most 8). Returns how many runs were judged.
    """
    ensure_schema(conn)
    where, args = run_filter_sql(scenario=scenario, variant=variant, model=model, bench=bench)
    where += current_sql(conn)
    pending = "" if force else (
        " AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.run_id = r.run_id AND v.judge = ?"
        " AND v.prompt_version = ? || '/s' || r.scenario_version)"
    )  # fmt: skip
    if not force:
        args = [*args, RULE_JUDGE, RULES_VERSION]
    todo = [tuple(r) for r in conn.execute(
        f"SELECT r.run_id, r.scenario FROM runs r WHERE {scoreable_sql()}{where}{pending}"
        " ORDER BY r.created_at, r.run_id", args).fetchall()]  # fmt: skip
    # Evidence that does not hold is not scored (docs/reliability.md): `kpimcp audit verify` says what broke.
    broken = broken_runs(conn, [run_id for run_id, _ in todo])
    todo = [t for t in todo if t[0] not in broken]
    known: dict[str, Scenario | None] = dict(scenarios or {})
    workers = min(os.cpu_count() or 1, 8) if workers is None else workers
    db = _db_file(conn)
    if workers > 1 and db and len(todo) >= PARALLEL_MIN_RUNS:
        for sid in {sid for _, sid in todo} - set(known):
            try:
                known[sid] = load_scenario(sid)
            except ScenarioError:
                known[sid] = None
        batches = _judge_parallel(db, todo, known, workers)
    else:
        batches = _judge_serial(conn, todo, known)
    for batch in batches:
        save_verdicts(conn, batch)
    return len(todo)
