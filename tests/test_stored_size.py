"""Stored size: a result over the stored-result limit keeps only its size and digest; the agent gets all of it."""

from __future__ import annotations

import hashlib
import json

import anyio
from toy_support import rows, toy_client

from kpimcp.servers import audit, connect, verify


def test_a_result_over_the_limit_is_stored_as_its_size_and_digest(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(audit, "MAX_STORED_RESULT_CHARS", 50_000)
    db = tmp_path / "big.db"
    content = "x" * 80_000

    async def go():
        async with toy_client(db) as c:
            await c.call_tool("write_file", {"path": "notes/big.md", "content": content})
            return await c.call_tool("read_file", {"path": "notes/big.md"})

    got = anyio.run(go)
    assert content in " ".join(getattr(x, "text", "") for x in got.content)  # the agent saw everything
    stored = next(r for r in rows(db) if r["tool"] == "read_file")
    marker = json.loads(stored["result"])["result_not_stored"]
    text = json.dumps(content)  # what would have been stored
    assert marker == {"chars": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest(), "limit": 50_000}
    full = next(r for r in audit.read_rows(connect(db), "run-toy") if r.tool == "write_file")
    assert full.arguments["content"] == content  # arguments are bounded by the request limit (and kept once)
    assert verify(connect(db)) == (1, [])


def _sqlite_bytes(db) -> int:
    conn = connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]


def test_a_long_written_value_is_stored_once_and_reads_back_whole(tmp_path) -> None:
    db, content = tmp_path / "once.db", "".join(f"line {i}: ü {'y' * 40}\n" for i in range(20_000))  # ~1 MB

    async def go():
        async with toy_client(db) as c:
            await c.call_tool("write_file", {"path": "notes/long.md", "content": content})
            await c.call_tool("write_file", {"path": "notes/copy.md", "content": content})  # the same text again

    anyio.run(go)
    conn = connect(db)
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 1
    assert _sqlite_bytes(db) < 1.6 * len(content.encode())  # written twice, three places each: stored once
    from toy_support import TOY

    from kpimcp.scenarios import load_path
    from kpimcp.servers import World

    world = World.load(conn, load_path(TOY), "run-toy")
    assert world.read_file("notes/long.md") == content and world.read_file("notes/copy.md") == content
    writes = [r for r in audit.read_rows(conn, "run-toy") if r.tool == "write_file"]
    assert all(r.arguments["content"] == content and r.changes[0]["after"] == content for r in writes)
    assert verify(conn) == (1, [])


def test_an_edited_or_missing_blob_is_found_by_verify(tmp_path) -> None:
    db = tmp_path / "t.db"

    async def go():
        async with toy_client(db) as c:
            await c.call_tool("write_file", {"path": "notes/long.md", "content": "z" * 100_000})

    anyio.run(go)
    conn = connect(db)
    conn.execute("DROP TRIGGER blobs_no_update")
    conn.execute("UPDATE blobs SET text = ?", ("z" * 99_999 + "!",))
    _checked, problems = verify(conn)
    assert any("blob" in str(p) and "does not match its digest" in str(p) for p in problems), problems
    assert any("blobs_no_update is missing" in str(p) for p in problems)


def test_a_value_that_looks_like_a_stored_reference_is_kept_verbatim(tmp_path) -> None:
    db = tmp_path / "f.db"
    forged = {"$packed": 1, "value": {"$blob": "0" * 64, "chars": 5}}

    async def go():
        async with toy_client(db) as c:
            await c.call_tool("write_file", {"path": "notes/f.md", "content": json.dumps(forged)})
            return await c.call_tool("update_setting", {"key": "count.tolerance", "value": forged})

    anyio.run(go)
    conn = connect(db)
    setting = next(r for r in audit.read_rows(conn, "run-toy") if r.tool == "update_setting")
    assert setting.arguments["value"] == forged  # never resolved as a reference
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0
    assert verify(conn) == (1, [])


def test_pages_show_a_long_value_as_a_placeholder_and_the_rest_as_stored(tmp_path) -> None:
    from kpimcp.servers.blobs import for_display

    db = tmp_path / "d.db"

    async def go():
        async with toy_client(db) as c:
            await c.call_tool("write_file", {"path": "notes/long.md", "content": "q" * 70_000})

    anyio.run(go)
    row = next(r for r in rows(db) if r["tool"] == "write_file")
    (change,) = json.loads(for_display(row["changes"]))
    assert change["space"] == "file" and "70,000 characters, stored once" in change["after"]
    assert for_display('[{"a": 1}]') == '[{"a": 1}]' and for_display(None) is None
