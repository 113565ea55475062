"""Input hardening: a call commits with its audit row or changes nothing; unreadable requests get an answer;
one writer per run; limits; network options; one sentence for bad command-line input."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time

import anyio
import httpx2
import pytest
from toy_support import TOY, toy, toy_client
from wire_support import (
    CLI,
    LEGACY,
    MODERN,
    MODERN_META,
    HttpWire,
    StdioWire,
    audit_explains_world,
    encode,
    free_port,
    http_server_process,
    request,
)

from kpimcp.servers import World, connect, verify
from kpimcp.servers import audit as audit_module

SURROGATE = "x\ud800y"


def _text(result) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def _rows(db, run_id):
    return [dict(r) for r in connect(db).execute("SELECT * FROM audit WHERE run_id = ? ORDER BY seq", (run_id,))]


# ---- atomicity: the world changes only together with its audit row -------------------------------------------
def test_unstorable_arguments_are_refused_as_invalid_and_audited(tmp_path):
    db = tmp_path / "a.db"

    async def go():
        async with toy_client(db) as c:
            refused = await c.call_tool("write_file", {"path": "notes.md", "content": SURROGATE})
            ok = await c.call_tool("recount", {"sku": "B2", "counted": 5})
            return refused, ok

    refused, ok = anyio.run(go)
    assert refused.is_error and "not valid Unicode" in _text(refused) and "nothing changed" in _text(refused)
    assert not ok.is_error
    rows = _rows(db, "run-toy")
    assert [r["status"] for r in rows] == ["invalid", "ok"]
    assert json.loads(rows[0]["arguments"]) == {"path": "notes.md", "content": "x\\ud800y"}  # kept, escaped
    conn = connect(db)
    assert World.load(conn, toy(), "run-toy").read_file("notes.md") is None
    assert audit_explains_world(conn, toy(), "run-toy") == 2 and verify(conn) == (1, [])


def test_any_failure_in_the_audit_write_leaves_the_world_as_before(tmp_path, monkeypatch):
    db = tmp_path / "a.db"
    real_append = audit_module.append
    failures = iter([UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed"), TypeError("not JSON")])

    def flaky_append(*args, **kwargs):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_append(*args, **kwargs)

    monkeypatch.setattr(audit_module, "append", flaky_append)

    async def go():
        async with toy_client(db) as c:
            first = await c.call_tool("recount", {"sku": "B2", "counted": 9})
            second = await c.call_tool("write_file", {"path": "a.md", "content": "kept?"})
            after = await c.call_tool("get_record", {"collection": "items", "record_id": "B2"})
            return first, second, after

    first, second, after = anyio.run(go)
    assert first.is_error and second.is_error and "could not be recorded" in _text(first)
    assert json.loads(_text(after))["counted"] == 3, "the in-memory world kept an unrecorded change"
    conn = connect(db)
    assert [r["tool"] for r in _rows(db, "run-toy")] == ["get_record"]
    assert World.load(conn, toy(), "run-toy").read_file("a.md") is None
    assert audit_explains_world(conn, toy(), "run-toy") == 1 and verify(conn) == (1, [])


@pytest.mark.slow
def test_http_modern_protocol_surrogates_and_bad_client_info_change_nothing(tmp_path):
    db = tmp_path / "h.db"
    with http_server_process(str(TOY), db) as (base, _):
        wire = HttpWire(f"{base}/mcp/run-h", MODERN)
        refused = wire.call("tools/call", {"name": "write_file", "arguments": {"path": "a.md", "content": SURROGATE}})
        for bad_info in ("junk", {"name": 5, "version": [1]}, {"name": "n" * 10_000}):
            params = {"name": "recount", "arguments": {"sku": "B2", "counted": 77},
                      "_meta": {**MODERN_META, "io.modelcontextprotocol/clientInfo": bad_info}}  # fmt: skip
            reply = wire.call("tools/call", params)
            assert "result" in reply or "error" in reply, reply
        read = wire.call("tools/call", {"name": "get_record", "arguments": {"collection": "items", "record_id": "B2"}})
    assert "not valid Unicode" in refused["result"]["content"][0]["text"]
    counted = json.loads(read["result"]["content"][0]["text"])["counted"]
    conn = connect(db)
    stored = World.load(conn, toy(), "run-h").get_record("items", "B2")["counted"]
    assert counted == stored, "memory and database disagree"
    assert audit_explains_world(conn, toy(), "run-h") == 5 and verify(conn) == (1, [])


# ---- stdio answers every request -----------------------------------------------------------------------------
UNREADABLE = {
    "lone surrogate": b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"write_file",'
                      b'"arguments":{"path":"s.md","content":"\\ud800"}}}',
    "deep nesting": b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"write_file",'
                    b'"arguments":{"path":"d.md","content":' + b"[" * 250 + b"]" * 250 + b"}}}",
    "huge integer": b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"recount",'
                    b'"arguments":{"sku":"B2","counted":' + b"9" * 5000 + b"}}}",
    "params array": b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":[1,2]}',
    "not json": b'{"jsonrpc":"2.0","id":%d,"method":',
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("protocol", [LEGACY, MODERN])
def test_stdio_answers_unreadable_requests_and_audits_them(tmp_path, protocol):
    db = tmp_path / "s.db"
    wire = StdioWire([str(TOY), "--db", str(db), "--run-id", "run-s", "--max-request-bytes", "20000"], protocol)
    try:
        replies = {}
        for n, (name, template) in enumerate(UNREADABLE.items(), start=100):
            wire.send_raw(template % n)
            replies[name] = wire.reply_to(n)  # the id is recovered even from a line that is not JSON
        wire.send_raw(b"garbage")
        replies["garbage"] = wire.receive()
        wire.send_raw(b'{"jsonrpc":"2.0","id":300,"method":"tools/call","params":{"name":"x","arguments":{"a":"'
                      + b"z" * 50_000 + b'"}}}')  # fmt: skip
        replies["too large"] = wire.reply_to(300)
        ok = wire.call("tools/call", {"name": "recount", "arguments": {"sku": "B2", "counted": 6}})
    finally:
        wire.close()
    for name, reply in replies.items():
        assert reply["error"]["code"] in (-32700, -32600), (name, reply)
    assert "lone surrogate" in replies["lone surrogate"]["error"]["message"]
    assert "nested too deeply" in replies["deep nesting"]["error"]["message"]
    assert "4,300 digits" in replies["huge integer"]["error"]["message"]
    assert "params are not an object" in replies["params array"]["error"]["message"]
    assert "20,000-byte limit" in replies["too large"]["error"]["message"]
    assert replies["garbage"]["id"] is None and replies["garbage"]["error"]["code"] == -32700
    assert ok["result"]["isError"] is False
    rows = _rows(db, "run-s")
    assert [r["status"] for r in rows] == ["invalid"] * 7 + ["ok"]
    assert rows[0]["tool"] == "write_file" and "\\ud800" in rows[0]["arguments"]
    conn = connect(db)
    assert audit_explains_world(conn, toy(), "run-s") == 8 and verify(conn) == (1, [])


# ---- one writer per open run ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_process_on_a_live_run_is_refused_and_overwrites_nothing(tmp_path):
    db = tmp_path / "w.db"
    args = [str(TOY), "--db", str(db), "--run-id", "run-w"]
    first = StdioWire(args, MODERN)
    try:
        wrote = first.call("tools/call", {"name": "recount", "arguments": {"sku": "B2", "counted": 11}})
        assert wrote["result"]["isError"] is False
        second = subprocess.run([*CLI, "serve", *args], capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)  # fmt: skip
        assert second.returncode == 2 and "served by another process" in second.stderr
        assert "Traceback" not in second.stderr
        with http_server_process(str(TOY), db) as (base, _):  # a second host on the same database
            via_url = HttpWire(f"{base}/mcp/run-w", MODERN).call(
                "tools/call", {"name": "recount", "arguments": {"sku": "B2", "counted": 99}})
            via_meta = HttpWire(f"{base}/mcp", MODERN).call(
                "tools/call", {"name": "recount", "arguments": {"sku": "B2", "counted": 98},
                               "_meta": {"kpimcp/run_id": "run-w"}})  # fmt: skip
        assert "served by another process" in via_url["error"]["message"]
        assert "served by another process" in via_meta["error"]["message"]
        get_b2 = {"name": "get_record", "arguments": {"collection": "items", "record_id": "B2"}}
        again = first.call("tools/call", get_b2)
        assert json.loads(again["result"]["content"][0]["text"])["counted"] == 11
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.close()
    # kill -9 frees the run at once: a restarted server takes it over and sees every acknowledged write
    restarted = StdioWire(args, LEGACY)
    try:
        reply = restarted.call("tools/call", {"name": "get_record",
                                              "arguments": {"collection": "items", "record_id": "B2"}})  # fmt: skip
    finally:
        restarted.close()
    assert json.loads(reply["result"]["content"][0]["text"])["counted"] == 11
    conn = connect(db)
    assert audit_explains_world(conn, toy(), "run-w") == 3 and verify(conn)[1] == []


# ---- run ids, run cap, precedence ----------------------------------------------------------------------------
@pytest.mark.slow
def test_run_ids_are_validated_capped_and_never_ambiguous(tmp_path):
    db = tmp_path / "r.db"
    call = {"name": "recount", "arguments": {"sku": "B2", "counted": 1}}
    with http_server_process(str(TOY), db, "--max-runs", "2", "--run-id", "run-default") as (base, proc):
        long_id = httpx2.post(f"{base}/mcp/{'x' * 200}", content=encode(request(1, "tools/call", call, MODERN)),
                              headers={"accept": "application/json, text/event-stream",
                                       "content-type": "application/json"})  # fmt: skip
        unicode_meta = HttpWire(f"{base}/mcp", MODERN).call("tools/call", {**call, "_meta": {"kpimcp/run_id": "é"}})
        conflict = HttpWire(f"{base}/mcp/run-a", MODERN).call("tools/call", {**call, "_meta": {"kpimcp/run_id": "b"}})
        first = HttpWire(f"{base}/mcp/run-a", MODERN).call("tools/call", call)
        second = HttpWire(f"{base}/mcp/run-b", MODERN).call("tools/call", call)
        third = HttpWire(f"{base}/mcp/run-c", MODERN).call("tools/call", call)
        assert proc.poll() is None
    assert long_id.status_code == 400 and "invalid run id" in long_id.json()["error"]["message"]
    assert "invalid run id" in unicode_meta["error"]["message"]
    assert "name one run" in conflict["error"]["message"]
    assert "result" in first and "result" in second
    assert "--max-runs" in third["error"]["message"]
    conn = connect(db)
    assert sorted(r[0] for r in conn.execute("SELECT run_id FROM runs")) == ["run-a", "run-b"]


# ---- network -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_wildcard_bind_with_token_answers_real_host_names_and_checks_host_everywhere(tmp_path):
    db = tmp_path / "n.db"
    port = free_port()
    proc = subprocess.Popen([*CLI, "serve", str(TOY), "--http", "--host", "0.0.0.0", "--port", str(port),
                             "--db", str(db), "--token", "T0k", "--allowed-host", "bench.example.org"],
                            stderr=subprocess.PIPE)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    accept = {"accept": "application/json, text/event-stream", "content-type": "application/json",
              "mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": "run_count"}
    body = encode(request(1, "tools/call", {"name": "run_count", "arguments": {}}, MODERN))
    try:
        for _ in range(300):
            try:
                httpx2.get(f"{base}/healthz", timeout=1)
                break
            except httpx2.TransportError:
                time.sleep(0.1)
        hostname = socket.gethostname()
        as_machine = httpx2.post(f"{base}/mcp/run-n", content=body,
                                 headers={**accept, "host": f"{hostname}:{port}", "authorization": "bearer T0k"})
        as_listed = httpx2.post(f"{base}/mcp/run-n", content=body,
                                headers={**accept, "host": "bench.example.org", "authorization": "BEARER T0k"})
        no_token = httpx2.post(f"{base}/mcp/run-n", content=body, headers={**accept, "host": hostname})
        evil_health = httpx2.get(f"{base}/healthz", headers={"host": "evil.example", "authorization": "Bearer T0k"})
        evil_origin = httpx2.post(f"{base}/mcp/run-n", content=body, headers={
            **accept, "host": hostname, "origin": "http://evil.example", "authorization": "Bearer T0k"})
    finally:
        proc.terminate()
        proc.wait(10)
    assert as_machine.status_code == 200 and as_listed.status_code == 200, (as_machine.text, as_listed.text)
    assert no_token.status_code == 401
    assert evil_health.status_code == 421 and evil_origin.status_code == 403


@pytest.mark.slow
def test_slow_and_idle_http_connections_are_closed(tmp_path):
    with http_server_process(str(TOY), tmp_path / "t.db", "--header-timeout", "1", "--idle-timeout", "1") as (
            base, _):  # fmt: skip
        port = int(base.rsplit(":", 1)[1])
        slow, idle = socket.create_connection(("127.0.0.1", port)), socket.create_connection(("127.0.0.1", port))
        t0 = time.monotonic()
        closed = {}
        for sock in (slow, idle):
            sock.settimeout(0.3)
        while len(closed) < 2 and time.monotonic() - t0 < 8:
            with_data = [s for s in (slow,) if s not in closed]
            for s in with_data:  # a slowloris client: a header byte every 0.3 s, never finishing the head
                try:
                    s.send(b"GET /healthz HTTP/1.1\r\nX-a: " if time.monotonic() - t0 < 0.3 else b"a")
                except OSError:
                    closed[s] = time.monotonic() - t0
            for s in (slow, idle):
                if s in closed:
                    continue
                try:
                    if s.recv(100) == b"":
                        closed[s] = time.monotonic() - t0
                except TimeoutError:
                    pass
                except OSError:
                    closed[s] = time.monotonic() - t0
        assert set(closed) == {slow, idle}, "a slow or idle connection stayed open"
        assert max(closed.values()) < 4
        assert httpx2.get(f"{base}/healthz").status_code == 200  # the server itself is fine


def test_the_bench_scenario_host_closes_slow_header_connections(tmp_path):
    from kpimcp.harness.host import InProcessHost

    async def run() -> tuple[float | None, int]:
        host = InProcessHost(tmp_path / "h.db", [(toy(), "mandated")])
        host.header_timeout = 0.5
        await host.start()
        try:
            stream = await anyio.connect_tcp("127.0.0.1", host.port)
            await stream.send(b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")  # never finishes the head
            t0, closed = time.monotonic(), None
            with anyio.move_on_after(5):
                with contextlib.suppress(anyio.EndOfStream, OSError):
                    await stream.receive()
                closed = time.monotonic() - t0
            async with httpx2.AsyncClient() as client:  # the host still serves everyone else
                health = await client.get(f"http://127.0.0.1:{host.port}/healthz", headers=host.headers)
            return closed, health.status_code
        finally:
            await host.stop()

    closed, status = anyio.run(run)
    assert closed is not None and closed < 3, "the host kept a slow-header connection open"
    assert status == 200


# ---- bad command-line input: one sentence, exit 2 ------------------------------------------------------------
@pytest.mark.slow
def test_port_in_use_or_out_of_range_is_one_sentence(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        in_use = subprocess.run([*CLI, "serve", str(TOY), "--http", "--port", str(port), "--db",
                                 str(tmp_path / "p.db")], capture_output=True, text=True, timeout=60)  # fmt: skip
    out_of_range = subprocess.run([*CLI, "serve", str(TOY), "--http", "--port", "70000"], capture_output=True,
                                  text=True, timeout=60)  # fmt: skip
    assert in_use.returncode == 2 and "already in use" in in_use.stderr and "Traceback" not in in_use.stderr
    assert out_of_range.returncode == 2 and "70000" in out_of_range.stderr
    assert not os.path.exists(tmp_path / "p.db"), "a refused server must not create its database"


def test_cli_limit_defaults_match_the_library():
    from kpimcp.harness import cli_serve
    from kpimcp.servers import http_guard, runs, stdio

    assert cli_serve._MAX_REQUEST_BYTES == stdio.DEFAULT_MAX_REQUEST_BYTES
    assert cli_serve._MAX_RUNS == runs.DEFAULT_MAX_RUNS
    assert cli_serve._HEADER_TIMEOUT == http_guard.DEFAULT_HEADER_TIMEOUT
    assert cli_serve._IDLE_TIMEOUT == http_guard.DEFAULT_IDLE_TIMEOUT


def test_unwritable_report_folder_is_one_sentence_before_any_work(tmp_path):
    from click.testing import CliRunner

    from kpimcp.harness.cli import main

    db = tmp_path / "r.db"
    connect(db).close()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    targets = [blocker / "report"]
    if os.path.isdir("/sys/kernel"):
        targets.append("/sys/kernel/kpimcp-report")  # sysfs refuses new folders, even to root
    for target in targets:
        result = CliRunner().invoke(main, ["report", "--db", str(db), "--out", str(target)])
        assert result.exit_code == 2, result.output
        assert "cannot write into the report folder" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("run_id", ["x" * 129, "é", "has space", "-leading-dash"])
@pytest.mark.parametrize("http", [False, True])
def test_bad_run_id_on_the_command_line_is_one_sentence_and_creates_nothing(tmp_path, run_id, http):
    from click.testing import CliRunner

    from kpimcp.harness.cli import main

    db = tmp_path / "never.db"
    args = ["serve", str(TOY), "--db", str(db), "--run-id", run_id, *(["--http"] if http else [])]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "invalid run id" in result.output, result.output
    assert not db.exists()
