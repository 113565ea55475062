"""Every tools/call leaves exactly one hash-chained audit row, whatever its outcome."""

from __future__ import annotations

import json
import sqlite3

import anyio
import pytest
from toy_support import rows, toy, toy_client

from kpimcp.servers import World, connect, read_rows, verify

COUNT_4 = {"fields": {"counted": 4}}
COUNT_9 = {"fields": {"counted": 9}}


def _text(result) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def _run(coro_fn, *args):
    return anyio.run(coro_fn, *args)


def test_success_error_invalid_and_unknown_calls_are_each_one_row(tmp_path):
    db = tmp_path / "a.db"

    async def go():
        async with toy_client(db) as c:
            ok = await c.call_tool("update_record", {"collection": "items", "record_id": "B2", **COUNT_4})
            refused = await c.call_tool("get_record", {"collection": "items", "record_id": "ZZ"})
            invalid = await c.call_tool("update_record", {"collection": "items"})
            unknown = await c.call_tool("no_such_tool", {"x": 1})
            return ok, refused, invalid, unknown

    ok, refused, invalid, unknown = _run(go)
    assert not ok.is_error and refused.is_error and invalid.is_error and unknown.is_error
    assert "No record 'ZZ'" in _text(refused)
    got = rows(db)
    assert [(r["seq"], r["tool"], r["status"]) for r in got] == [
        (1, "update_record", "ok"),
        (2, "get_record", "error"),
        (3, "update_record", "invalid"),
        (4, "no_such_tool", "invalid"),
    ]
    change = json.loads(got[0]["changes"])[0]
    assert change["space"] == "record:items" and change["key"] == "B2"
    assert change["before"]["counted"] == 3 and change["after"]["counted"] == 4
    assert json.loads(got[0]["result"])["counted"] == 4
    assert "No record 'ZZ'" in got[1]["error"] and got[1]["result"] is None
    assert "record_id" in got[2]["error"]
    assert json.loads(got[3]["arguments"]) == {"x": 1}
    assert all(r["client_name"] == "mcp" and r["protocol_version"] for r in got)
    assert all(r["duration_ms"] >= 0 and r["ended_at"] >= r["started_at"] for r in got)


def test_failed_call_rolls_back_its_writes_and_crash_is_recorded(tmp_path):
    db = tmp_path / "a.db"

    async def go():
        async with toy_client(db) as c:
            neg = await c.call_tool("recount", {"sku": "A1", "counted": -1})
            boom = await c.call_tool("explode", {})
            after = await c.call_tool("get_record", {"collection": "items", "record_id": "A1"})
            return neg, boom, json.loads(_text(after))

    neg, boom, a1 = _run(go)
    assert neg.is_error and boom.is_error
    assert a1["counted"] == 5, "a refused call must not leave its partial write behind"
    got = rows(db)
    assert [r["status"] for r in got[:2]] == ["error", "crashed"]
    assert json.loads(got[0]["changes"]) == [] and json.loads(got[1]["changes"]) == []
    assert "RuntimeError: boom" in got[1]["error"]
    conn = connect(db)
    world = World.load(conn, toy(), "run-toy")
    assert world.read_file("half-written.txt") is None and world.get_record("items", "A1")["counted"] == 5


def test_world_changes_persist_and_reload(tmp_path):
    db = tmp_path / "a.db"

    async def go():
        async with toy_client(db) as c:
            await c.call_tool("update_setting", {"key": "count.tolerance", "value": 2})
            await c.call_tool("write_file", {"path": "notes/a.md", "content": "hello"})
            await c.call_tool("delete_record", {"collection": "items", "record_id": "A1"})
            c3 = {"sku": "C3", "counted": 1, "expected": 1}
            await c.call_tool("create_record", {"collection": "items", "record": c3})
            return json.loads(_text(await c.call_tool("run_count", {})))

    assert _run(go) == {"accuracy": 1.0}  # B2 is now within the raised tolerance
    world = World.load(connect(db), toy(), "run-toy")
    assert world.get_config("count.tolerance") == 2
    assert world.read_file("notes/a.md") == "hello"
    assert world.record_ids("items") == ["B2", "C3"]
    assert {c.key for c in world.diff_from_seed()} == {"count.tolerance", "notes/a.md", "A1", "C3"}


def test_audit_rows_cannot_be_updated_or_deleted_through_sql(tmp_path):
    db = tmp_path / "a.db"

    async def go():
        async with toy_client(db) as c:
            await c.call_tool("run_count", {})

    _run(go)
    conn = connect(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET tool = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit")


def test_a_call_whose_row_cannot_be_written_is_refused_and_changes_nothing(tmp_path):
    db = tmp_path / "a.db"
    conn = connect(db)
    conn.execute("CREATE TRIGGER fail_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    conn.close()

    async def go():
        async with toy_client(db) as c:
            res = await c.call_tool("update_record", {"collection": "items", "record_id": "B2", **COUNT_9})
            return res

    res = _run(go)
    assert res.is_error and "could not be recorded" in _text(res)
    conn = connect(db)
    assert conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM world_state").fetchone()[0] == 0
    assert World.load(conn, toy(), "run-toy").get_record("items", "B2")["counted"] == 3


# ---- the hash chain ---------------------------------------------------------------------------------------------
def _chain(tmp_path, n: int = 5):
    db = tmp_path / "chain.db"

    async def go():
        async with toy_client(db) as c:
            for i in range(n):
                await c.call_tool("recount", {"sku": "B2", "counted": i})

    _run(go)
    conn = connect(db)
    conn.execute("DROP TRIGGER audit_no_update")  # an attacker with file access can do this too
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.execute("DROP INDEX audit_run_seq")
    return conn


def test_intact_chain_verifies_and_dropped_triggers_are_findings(tmp_path):
    conn = _chain(tmp_path)
    checked, problems = verify(conn)
    assert checked == 1 and [p.run_id for p in problems] == [None, None]
    assert all("missing" in str(p) for p in problems)
    assert [r.seq for r in read_rows(conn, "run-toy")] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("tamper", "seq", "words"),
    [
        ("UPDATE audit SET arguments = '{\"sku\": \"B2\", \"counted\": 4}' WHERE seq = 3", 3, "edited"),
        ("UPDATE audit SET status = 'error' WHERE seq = 2", 2, "edited"),
        ("DELETE FROM audit WHERE seq = 3", 4, "deleted"),
        ("DELETE FROM audit WHERE seq = 5", None, "deleted from the end"),
        ("INSERT INTO audit (run_id, seq, started_at, ended_at, duration_ms, tool, arguments, status, changes,"
         " prev_hash, hash) SELECT run_id, 3, started_at, ended_at, 1, 'recount', '{}', 'ok', '[]', hash, hash"
         " FROM audit WHERE seq = 2", 3, "out of order or duplicated"),
    ],
)
def test_tampering_is_detected_and_located(tmp_path, tamper, seq, words):
    conn = _chain(tmp_path)
    conn.execute(tamper)
    checked, problems = verify(conn, "run-toy")
    problems = [p for p in problems if p.run_id]  # not the dropped triggers
    assert checked == 1 and problems, "tampering went unnoticed"
    first = problems[0]
    assert first.seq == seq and words in str(first)


def test_reordered_rows_are_detected(tmp_path):
    conn = _chain(tmp_path)
    # Move row 2 to the end: delete it and re-insert it unchanged with a new rowid.
    row = dict(conn.execute("SELECT * FROM audit WHERE seq = 2").fetchone())
    conn.execute("DELETE FROM audit WHERE seq = 2")
    row.pop("id")
    conn.execute(f"INSERT INTO audit ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
    _, problems = verify(conn, "run-toy")
    problems = [p for p in problems if p.run_id]
    assert problems and problems[0].seq == 3


def test_verify_unknown_run_is_a_lookup_error(tmp_path):
    conn = _chain(tmp_path, 1)
    with pytest.raises(LookupError, match="no run 'nope'"):
        verify(conn, "nope")


def test_the_row_hash_definition_never_changes():
    # Databases already written must keep verifying: a faster hash implementation has to give the same digests.
    import hashlib

    from kpimcp.servers.audit import _HASHED, HASH_VERSION, _fields_hash, _row_hash

    def reference(parts):  # the definition in docs/audit.md: each field length-prefixed, None apart from ""
        out = b""
        for part in parts:
            data = b"\x00" if part is None else b"\x01" + str(part).encode()
            out += len(data).to_bytes(8, "big") + data
        return hashlib.sha256(out).hexdigest()

    parts = ["a", None, 3, "é", "", 0.125]
    assert _fields_hash(parts) == reference(parts)
    assert _fields_hash(["a", None, 3, "é"]) == "a319454b23ab193842d82ed9592ce9cb04dd83a1088c65528969692509c11bd8"
    values = {c: f"{c}-value" for c in _HASHED} | {"seq": 7, "error": None, "duration_ms": 1.5}
    assert _row_hash("p" * 64, values) == reference([HASH_VERSION, "p" * 64, *[values[c] for c in _HASHED]])
