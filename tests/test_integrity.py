"""The tamper matrix: every way of changing the evidence is detected — by the chains alone where the attacker only
edits rows, and with exported heads (`kpimcp audit heads`) where the attacker can rewrite the whole file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from toy_support import toy_client

from kpimcp.harness.cli import main
from kpimcp.servers import transaction
from kpimcp.servers.audit import _row_hash, genesis_hash, meta_genesis_hash, meta_hash, meta_of, update_run_meta
from kpimcp.servers.integrity import check, export_heads, load_heads
from kpimcp.servers.store import connect, open_readonly

CLOSED, OPEN = "run-closed", "run-open"


def _build(db: Path) -> None:
    """Two runs with world changes: one closed (`completed`), one still open."""

    async def go() -> None:
        for run_id, n in ((CLOSED, 5), (OPEN, 3)):
            async with toy_client(db, run_id=run_id) as c:
                for i in range(n):
                    await c.call_tool("recount", {"sku": "B2", "counted": 10 + i})
                await c.call_tool("update_record", {"collection": "items", "record_id": "A1",
                                                    "fields": {"counted": 7}})  # fmt: skip

    anyio.run(go)
    conn = connect(db)
    with transaction(conn):
        update_run_meta(conn, CLOSED, event="status", status="completed")
    conn.close()


@pytest.fixture
def evidence(tmp_path: Path) -> tuple[Path, dict]:
    db = tmp_path / "e.db"
    _build(db)
    report, digest = export_heads(open_readonly(db), tmp_path / "heads.json", database=str(db))
    assert digest and not report.problems
    return db, load_heads(tmp_path / "heads.json")


# ---- the attacker's tools: plain SQL on the file, and the public hash definitions --------------------------------
def _sql(db: Path, *statements: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    for t in ("audit", "run_meta"):
        conn.execute(f"DROP TRIGGER IF EXISTS {t}_no_update")
        conn.execute(f"DROP TRIGGER IF EXISTS {t}_no_delete")
    for st in statements:
        conn.execute(st, params) if "?" in st else conn.execute(st)
    conn.commit()
    _restore_triggers(conn)  # cover the tracks: the trigger check alone must not be what catches them
    conn.close()


def _restore_triggers(conn: sqlite3.Connection) -> None:
    for t in ("audit", "run_meta"):
        for verb in ("update", "delete"):
            conn.execute(f"CREATE TRIGGER IF NOT EXISTS {t}_no_{verb} BEFORE {verb.upper()} ON {t} "
                         f"BEGIN SELECT RAISE(ABORT, 'append-only'); END")  # fmt: skip
    conn.commit()


def _rechain(db: Path, run_id: str, new_id: str | None = None) -> None:
    """Recompute a run's audit and metadata chains and heads consistently (optionally under a new id)."""
    new_id = new_id or run_id
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    for t in ("audit", "run_meta"):
        conn.execute(f"DROP TRIGGER IF EXISTS {t}_no_update")
        conn.execute(f"DROP TRIGGER IF EXISTS {t}_no_delete")
    if new_id != run_id:
        conn.execute("PRAGMA foreign_keys=OFF")
        for table in ("runs", "audit", "run_meta", "world_state"):
            conn.execute(f"UPDATE {table} SET run_id = ? WHERE run_id = ?", (new_id, run_id))
    prev, by_seq = genesis_hash(new_id), {0: genesis_hash(new_id)}
    for row in conn.execute("SELECT * FROM audit WHERE run_id = ? ORDER BY seq", (new_id,)).fetchall():
        values = dict(row) | {"prev_hash": prev}
        values["hash"] = _row_hash(prev, values)
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (prev, values["hash"], row["id"]))
        prev = by_seq[row["seq"]] = values["hash"]
    last_seq = max(by_seq)
    conn.execute("UPDATE runs SET head_seq = ?, head_hash = ? WHERE run_id = ?", (last_seq, prev, new_id))
    run = conn.execute("SELECT * FROM runs WHERE run_id = ?", (new_id,)).fetchone()
    mprev, n = meta_genesis_hash(new_id), 0
    for e in conn.execute("SELECT * FROM run_meta WHERE run_id = ? ORDER BY n", (new_id,)).fetchall():
        entry = dict(e) | {"audit_seq": min(e["audit_seq"], last_seq)}
        entry["audit_hash"], entry["meta"] = by_seq[entry["audit_seq"]], meta_of(run)
        entry["hash"] = meta_hash(mprev, entry | {"prev_hash": mprev})
        conn.execute("UPDATE run_meta SET prev_hash = ?, hash = ?, audit_seq = ?, audit_hash = ?, meta = ?"
                     " WHERE id = ?", (mprev, entry["hash"], entry["audit_seq"], entry["audit_hash"], entry["meta"],
                                       e["id"]))
        mprev, n = entry["hash"], e["n"]
    conn.execute("UPDATE runs SET meta_seq = ?, meta_hash = ? WHERE run_id = ?", (n, mprev, new_id))
    conn.commit()
    _restore_triggers(conn)
    conn.close()


def _delete_run(db: Path, run_id: str) -> None:
    _sql(db, *[f"DELETE FROM {t} WHERE run_id = '{run_id}'" for t in ("audit", "run_meta", "world_state", "runs")])


def _forged_row(db: Path, run_id: str, seq: int) -> None:
    """Insert a row claiming to be call `seq` (shifting nothing): a duplicate in the middle of the chain."""
    _sql(db, "DROP INDEX audit_run_seq",
         "INSERT INTO audit (run_id, seq, started_at, ended_at, duration_ms, tool, arguments, status, changes,"
             f" prev_hash, hash) SELECT run_id, {seq}, started_at, ended_at, 1, 'recount', '{{}}', 'ok', '[]', hash,"
             f" hash FROM audit WHERE run_id = '{run_id}' AND seq = {seq - 1}")  # fmt: skip


def _move_row(db: Path, run_id: str, seq: int) -> None:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM audit WHERE run_id = ? AND seq = ?", (run_id, seq)).fetchone())
    conn.close()
    row.pop("id")
    cols = ", ".join(row)
    _sql(db, f"DELETE FROM audit WHERE run_id = '{run_id}' AND seq = {seq}",
         f"INSERT INTO audit ({cols}) VALUES ({', '.join('?' * len(row))})", params=tuple(row.values()))


def _truncate(db: Path, run_id: str, *, reset_head: bool) -> None:
    stmts = [f"DELETE FROM audit WHERE run_id = '{run_id}' AND seq = (SELECT MAX(seq) FROM audit WHERE run_id = "
             f"'{run_id}')"]  # fmt: skip
    if reset_head:
        stmts.append(f"UPDATE runs SET head_seq = head_seq - 1, head_hash = (SELECT hash FROM audit WHERE run_id ="
                     f" '{run_id}' AND seq = (SELECT MAX(seq) FROM audit WHERE run_id = '{run_id}'))"
                     f" WHERE run_id = '{run_id}'")  # fmt: skip
        # ...and the world the deleted call made, so the replay matches too.
        stmts.append(f"DELETE FROM world_state WHERE run_id = '{run_id}' AND key = 'A1'")
    _sql(db, *stmts)


def _relabel_with_forged_entry(db: Path, run_id: str) -> None:
    """Relabel the model and append a well-formed metadata entry for it (INSERT passes the triggers)."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    conn.execute("UPDATE runs SET model = 'openai:some-other-model' WHERE run_id = ?", (run_id,))
    run = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    entry = {"run_id": run_id, "n": run["meta_seq"] + 1, "recorded_at": "2026-12-02T00:00:00+00:00",
             "event": "update", "meta": meta_of(run), "audit_seq": run["head_seq"], "audit_hash": run["head_hash"]}
    entry["prev_hash"] = run["meta_hash"]
    entry["hash"] = meta_hash(entry["prev_hash"], entry)
    conn.execute(f"INSERT INTO run_meta ({', '.join(entry)}) VALUES ({', '.join('?' * len(entry))})",
                 tuple(entry.values()))
    conn.execute("UPDATE runs SET meta_seq = ?, meta_hash = ? WHERE run_id = ?", (entry["n"], entry["hash"], run_id))
    conn.commit()
    conn.close()


def _edit_and_rechain(db: Path, run_id: str) -> None:
    """Change what a call did (its arguments, its recorded change and the world) and make every hash agree."""
    _sql(db, f"UPDATE audit SET arguments = '{{\"sku\": \"B2\", \"counted\": 99}}' WHERE run_id = '{run_id}'"
             " AND seq = 1")
    _rechain(db, run_id)


# name -> (attack, detected without heads?)
MATRIX: dict[str, tuple[Callable[[Path], None], bool]] = {
    "edit a row": (lambda db: _sql(db, f"UPDATE audit SET status = 'error' WHERE run_id = '{CLOSED}' AND seq = 2"),
                   True),
    "delete a row": (lambda db: _sql(db, f"DELETE FROM audit WHERE run_id = '{CLOSED}' AND seq = 3"), True),
    "insert a row": (lambda db: _forged_row(db, CLOSED, 3), True),
    "reorder rows": (lambda db: _move_row(db, CLOSED, 2), True),
    "truncate, head kept": (lambda db: _truncate(db, OPEN, reset_head=False), True),
    "truncate a closed run, head reset": (lambda db: _truncate(db, CLOSED, reset_head=True), True),
    "truncate an open run, head reset": (lambda db: _truncate(db, OPEN, reset_head=True), False),
    "relabel a run (status)": (lambda db: _sql(db, f"UPDATE runs SET status = 'max_turns' WHERE run_id = '{CLOSED}'"),
                               True),
    "relabel a run (scenario version)": (
        lambda db: _sql(db, f"UPDATE runs SET scenario_version = 9 WHERE run_id = '{OPEN}'"), True),
    "relabel a run, forged metadata entry": (lambda db: _relabel_with_forged_entry(db, OPEN), False),
    "relabel a run, metadata chain rewritten": (
        lambda db: (_sql(db, f"UPDATE runs SET variant = 'control' WHERE run_id = '{CLOSED}'"),
                    _rechain(db, CLOSED)), False),
    "edit its world": (lambda db: _sql(db, f"UPDATE world_state SET value = json_set(value, '$.counted', 3) WHERE "
                                           f"run_id = '{CLOSED}' AND key = 'B2'"), True),
    "delete its world": (lambda db: _sql(db, f"DELETE FROM world_state WHERE run_id = '{CLOSED}'"), True),
    "edit a call and rechain consistently": (lambda db: _edit_and_rechain(db, CLOSED), False),
    "delete a run's row only": (lambda db: _sql(db, f"DELETE FROM runs WHERE run_id = '{OPEN}'"), True),
    "delete a run entirely": (lambda db: _delete_run(db, CLOSED), False),
    "rechain a run under a new id": (lambda db: _rechain(db, CLOSED, "run-renamed"), False),
    "drop the append-only triggers": (
        lambda db: sqlite3.connect(db).executescript("DROP TRIGGER audit_no_delete; DROP TRIGGER run_meta_no_update;"),
        True),
}


def test_untampered_evidence_verifies_with_and_without_heads(evidence) -> None:
    db, heads = evidence
    assert check(open_readonly(db)).problems == []
    report = check(open_readonly(db), heads=heads)
    assert report.problems == [] and report.checked == 2


@pytest.mark.parametrize("case", list(MATRIX))
def test_tampering_is_detected(evidence, case: str) -> None:
    db, heads = evidence
    attack, without_heads = MATRIX[case]
    attack(db)
    alone = check(open_readonly(db)).problems
    against_heads = check(open_readonly(db), heads=heads).problems
    assert against_heads, f"{case}: not detected even with the exported heads"
    if without_heads:
        assert alone, f"{case}: not detected by the chains alone"
    else:  # documents the limit honestly: this one needs the heads kept elsewhere
        assert not alone, f"{case}: now detected without heads; update MATRIX and docs/reliability.md"


def test_findings_name_what_changed(evidence) -> None:
    db, _ = evidence
    _sql(db, f"UPDATE runs SET model = 'openai:x' WHERE run_id = '{CLOSED}'")
    (p,) = check(open_readonly(db)).problems
    assert p.run_id == CLOSED and "model is 'openai:x', the chain recorded None" in str(p)
    _sql(db, f"UPDATE world_state SET value = '{{}}' WHERE run_id = '{OPEN}' AND key = 'B2'")
    assert any("world_state edited: record:items/B2 differs" in str(p) for p in check(open_readonly(db)).problems)


def test_rechain_under_new_id_names_the_missing_run(evidence) -> None:
    db, heads = evidence
    _rechain(db, CLOSED, "run-renamed")
    report = check(open_readonly(db), heads=heads)
    assert [p.run_id for p in report.problems] == [CLOSED] and "run deleted" in str(report.problems[0])
    assert any("run-renamed" in n for n in report.notes)


def test_closed_run_that_grows_after_export_is_a_problem_open_run_a_note(evidence) -> None:
    db, heads = evidence

    async def more() -> None:
        for run_id in (OPEN, CLOSED):
            async with toy_client(db, run_id=run_id) as c:
                await c.call_tool("recount", {"sku": "B2", "counted": 1})

    anyio.run(more)
    report = check(open_readonly(db), heads=heads)
    assert [p.run_id for p in report.problems] == [CLOSED] and "changed after it was closed" in str(report.problems[0])
    assert any("more calls" in n for n in report.notes)


def test_heads_file_that_was_edited_is_refused(evidence, tmp_path: Path) -> None:
    db, _ = evidence
    path = tmp_path / "heads.json"
    data = json.loads(path.read_text())
    data["runs"][0]["calls"] = 1
    path.write_text(json.dumps(data))
    res = CliRunner().invoke(main, ["audit", "verify", "--db", str(db), "--heads", str(path)])
    assert res.exit_code == 2 and "was altered after it was written" in res.output


def test_cli_heads_then_verify(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    _build(db)
    heads = tmp_path / "kept-elsewhere.json"
    res = CliRunner().invoke(main, ["audit", "heads", "--db", str(db), "--out", str(heads)])
    assert res.exit_code == 0 and "manifest sha256:" in res.output and "2 run(s)" in res.output
    ok = CliRunner().invoke(main, ["audit", "verify", "--db", str(db), "--heads", str(heads)])
    assert ok.exit_code == 0 and "matching the heads" in ok.output
    _delete_run(db, OPEN)
    bad = CliRunner().invoke(main, ["audit", "verify", "--db", str(db), "--heads", str(heads), "--json"])
    assert bad.exit_code == 1
    found = json.loads(bad.output.split("\nError")[0])
    assert [p["run_id"] for p in found["problems"]] == [OPEN]
    again = CliRunner().invoke(main, ["audit", "heads", "--db", str(db), "--out", str(tmp_path / "h2.json")])
    assert again.exit_code == 0  # a consistent deletion is invisible without the heads kept elsewhere
    _sql(db, f"UPDATE runs SET status = 'timeout' WHERE run_id = '{CLOSED}'")
    refused = CliRunner().invoke(main, ["audit", "heads", "--db", str(db), "--out", str(tmp_path / "h3.json")])
    assert refused.exit_code == 1 and "BROKEN" in refused.output and not (tmp_path / "h3.json").exists()
