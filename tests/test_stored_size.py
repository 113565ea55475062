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
    full = next(r for r in rows(db) if r["tool"] == "write_file")
    assert json.loads(full["arguments"])["content"] == content  # arguments are bounded by the request limit
    assert verify(connect(db)) == (1, [])
