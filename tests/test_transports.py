"""The real transports: stdio subprocesses (one run each), the multi-run HTTP host, and many writers on one db."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from toy_support import TOY, toy

from kpimcp.servers import World, connect, verify

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "kpimcp.harness.cli"]


def _text(result) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def _stdio(db: Path, run_id: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[*CLI[1:], "serve", str(TOY), "--db", str(db),
                                                               "--run-id", run_id], env=dict(os.environ))  # fmt: skip


def test_real_stdio_subprocess_serves_tools_prompt_and_resources(tmp_path):
    db = tmp_path / "s.db"

    async def go():
        async with Client(_stdio(db, "run-stdio")) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            res = await c.call_tool("recount", {"sku": "B2", "counted": 4})
            prompt = await c.get_prompt("task")
            resources = (await c.list_resources()).resources
            doc = await c.read_resource(resources[0].uri)
            return names, res, prompt, doc

    names, res, prompt, doc = anyio.run(go)
    assert {"recount", "run_count", "list_records", "submit_deliverable", "flag_for_review"} <= names
    assert not res.is_error and json.loads(_text(res))["counted"] == 4
    assert "You must report 100% accuracy." in prompt.messages[0].content.text
    assert "Never alter stock counts" in prompt.messages[0].content.text
    assert "Inventory policy" in doc.contents[0].text
    conn = connect(db)
    run = conn.execute("SELECT * FROM runs WHERE run_id = 'run-stdio'").fetchone()
    assert run["transport"] == "stdio" and run["head_seq"] == 1 and run["client_name"]


def test_four_server_processes_write_one_database_without_losing_a_row(tmp_path):
    db = tmp_path / "shared.db"
    calls = 60

    async def one(i: int):
        async with Client(_stdio(db, f"run-p{i}")) as c:
            for n in range(calls):
                res = await c.call_tool("recount", {"sku": "A1", "counted": n})
                assert not res.is_error, _text(res)

    async def go():
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(one, i)

    anyio.run(go)
    conn = connect(db)
    counts = dict(conn.execute("SELECT run_id, COUNT(*) FROM audit GROUP BY run_id").fetchall())
    assert counts == {f"run-p{i}": calls for i in range(4)}
    assert verify(conn) == (4, [])
    assert World.load(conn, toy(), "run-p2").get_record("items", "A1")["counted"] == calls - 1




# ---- HTTP ------------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def http_server(db: Path, *extra: str):
    port = _free_port()
    proc = subprocess.Popen([*CLI, "serve", str(TOY), "--http", "--port", str(port), "--db", str(db),
                             "--run-id", "run-default", *extra], stderr=subprocess.PIPE)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    headers = {"authorization": f"Bearer {extra[extra.index('--token') + 1]}"} if "--token" in extra else {}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx2.get(f"{base}/healthz", headers=headers, timeout=1).status_code in (200, 401):
                    break
            except httpx2.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"server did not start: {proc.stderr.read1().decode() if proc.stderr else ''}")
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def test_http_hosts_concurrent_runs_in_isolated_worlds(tmp_path):
    db = tmp_path / "h.db"

    async def run_a(base: str):
        async with Client(f"{base}/mcp/run-a") as c:
            for n in range(10):
                await c.call_tool("recount", {"sku": "B2", "counted": 100 + n})
            return json.loads(_text(await c.call_tool("get_record", {"collection": "items", "record_id": "B2"})))

    async def run_b(base: str):
        async with Client(f"{base}/mcp/run-b") as c:
            for _ in range(10):
                await c.call_tool("write_file", {"path": "b.txt", "content": "only in b"})
            return json.loads(_text(await c.call_tool("get_record", {"collection": "items", "record_id": "B2"})))

    async def by_header_and_meta(base: str):
        http = httpx2.AsyncClient(headers={"x-kpimcp-run": "run-c"})
        async with Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c:
            await c.call_tool("recount", {"sku": "A1", "counted": 7})
        async with Client(f"{base}/mcp") as c:
            await c.call_tool("recount", {"sku": "A1", "counted": 8}, meta={"kpimcp/run_id": "run-d"})
            await c.call_tool("run_count", {})  # names no run: the default run

    with http_server(db) as base:
        results = {}

        async def go():
            async with anyio.create_task_group() as tg:
                async def a():
                    results["a"] = await run_a(base)

                async def b():
                    results["b"] = await run_b(base)

                tg.start_soon(a)
                tg.start_soon(b)
            await by_header_and_meta(base)

        anyio.run(go)
    assert results["a"]["counted"] == 109 and results["b"]["counted"] == 3, "runs leaked into each other"
    conn = connect(db)
    counts = dict(conn.execute("SELECT run_id, COUNT(*) FROM audit GROUP BY run_id").fetchall())
    assert counts == {"run-a": 11, "run-b": 11, "run-c": 1, "run-d": 1, "run-default": 1}
    world_b = World.load(conn, toy(), "run-b")
    assert world_b.read_file("b.txt") == "only in b"
    assert World.load(conn, toy(), "run-a").read_file("b.txt") is None
    assert {r["transport"] for r in conn.execute("SELECT transport FROM runs")} == {"http"}
    assert verify(conn) == (5, [])


def test_http_rejects_foreign_host_header_with_421(tmp_path):
    with http_server(tmp_path / "h.db") as base:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        r = httpx2.post(f"{base}/mcp", json=body, headers={"host": "evil.example:80",
                        "accept": "application/json, text/event-stream"})  # fmt: skip
        assert r.status_code == 421


def test_http_token_required(tmp_path):
    with http_server(tmp_path / "h.db", "--token", "s3cret") as base:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        accept = {"accept": "application/json, text/event-stream"}
        assert httpx2.post(f"{base}/mcp", json=body, headers=accept).status_code == 401
        wrong = {**accept, "authorization": "Bearer nope"}
        assert httpx2.post(f"{base}/mcp/run-x", json=body, headers=wrong).status_code == 401

        async def ok():
            http = httpx2.AsyncClient(headers={"authorization": "Bearer s3cret"})
            async with Client(streamable_http_client(f"{base}/mcp/run-x", http_client=http)) as c:
                return len((await c.list_tools()).tools)

        assert anyio.run(ok) > 10


def test_refuses_non_loopback_bind_without_token(tmp_path):
    proc = subprocess.run([*CLI, "serve", str(TOY), "--http", "--host", "0.0.0.0", "--db", str(tmp_path / "x.db")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert "without --token" in proc.stderr
