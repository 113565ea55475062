"""Raw-wire clients for the hardening tests: bytes in, JSON out, over stdio subprocesses and streamable HTTP.

The SDK's client cannot send what these tests need to send (lone surrogates, 250-level nesting, 5,000-digit
integers, `params` as an array), so requests are written by hand, in both protocol generations:
- `2025-11-25`: `initialize` first (+ `Mcp-Session-Id` on HTTP);
- `2026-07-28`: no handshake; protocol version and client info in each request's `_meta`.
Also: the audit-versus-world check every hardening test ends with (`audit_explains_world`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2

from kpimcp.scenarios import Scenario
from kpimcp.servers import World, blobs

LEGACY, MODERN = "2025-11-25", "2026-07-28"
CLI = [sys.executable, "-m", "kpimcp.harness.cli"]
_ACCEPT = "application/json, text/event-stream"
MODERN_META = {"io.modelcontextprotocol/protocolVersion": MODERN,
               "io.modelcontextprotocol/clientInfo": {"name": "wire-test", "version": "1"},
               "io.modelcontextprotocol/clientCapabilities": {}}  # fmt: skip


class Hang(AssertionError):
    """The server did not answer in time."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(msg_id: int, method: str, params: dict[str, Any] | None, protocol: str) -> dict[str, Any]:
    params = dict(params or {})
    if protocol == MODERN:
        params["_meta"] = {**MODERN_META, **params.get("_meta", {})}
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}


def encode(message: Any) -> bytes:
    """JSON bytes that may carry lone surrogates (as `\\ud800` escapes, the way a buggy client sends them)."""
    return json.dumps(message).encode()


_INIT = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "wire-test", "version": "1"}}


class StdioWire:
    """A `kpimcp serve` stdio subprocess driven line by line."""

    def __init__(self, args: list[str], protocol: str, env: dict[str, str] | None = None) -> None:
        self.protocol = protocol
        self.proc = subprocess.Popen([*CLI, "serve", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env or dict(os.environ))  # fmt: skip
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self._next_id = 0
        if protocol == LEGACY:
            self.call("initialize", _INIT, timeout=60)
            self.send_raw(encode({"jsonrpc": "2.0", "method": "notifications/initialized"}))

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(b"")

    def send_raw(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.rstrip(b"\n") + b"\n")
        self.proc.stdin.flush()

    def receive(self, timeout: float = 20) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise Hang(f"no reply within {timeout} s") from None
        if not line:
            raise AssertionError(f"server exited: {self.stderr()[-2000:]}")
        return json.loads(line)

    def call(self, method: str, params: dict[str, Any] | None, *, timeout: float = 20) -> dict[str, Any]:
        self._next_id += 1
        self.send_raw(encode(request(self._next_id, method, params, self.protocol)))
        return self.reply_to(self._next_id, timeout)

    def reply_to(self, msg_id: Any, timeout: float = 20) -> dict[str, Any]:
        while True:
            reply = self.receive(timeout)
            if "id" in reply and (reply["id"] == msg_id or reply["id"] is None):
                return reply

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        return self.proc.stderr.read().decode(errors="replace") if self.proc.stderr and not self.alive() else ""

    def close(self) -> None:
        if self.proc.stdin:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class HttpWire:
    """Raw POSTs to a streamable-HTTP endpoint (`base/mcp/<run>`), JSON responses decoded from JSON or SSE."""

    def __init__(self, url: str, protocol: str, headers: dict[str, str] | None = None) -> None:
        self.url, self.protocol = url, protocol
        self.http = httpx2.Client(timeout=20, headers=headers or {})
        self.session: str | None = None
        self._next_id = 0
        if protocol == LEGACY:
            self.call("initialize", _INIT)
            self.post(encode({"jsonrpc": "2.0", "method": "notifications/initialized"}))

    def post(self, body: bytes, method: str | None = None, name: str | None = None) -> httpx2.Response:
        headers = {"accept": _ACCEPT, "content-type": "application/json", "mcp-protocol-version": self.protocol}
        if self.session:
            headers["mcp-session-id"] = self.session
        if method and self.protocol == MODERN:
            headers["mcp-method"] = method
            if name is not None:  # modern clients repeat the tool name in a header (ASCII only)
                headers["mcp-name"] = name.encode("ascii", "backslashreplace").decode()
        try:
            r = self.http.post(self.url, content=body, headers=headers)
        except httpx2.TimeoutException:
            raise Hang("no HTTP reply in time") from None
        self.session = r.headers.get("mcp-session-id", self.session)
        return r

    def call(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        self._next_id += 1
        name = (params or {}).get("name") if method == "tools/call" else None
        body = encode(request(self._next_id, method, params, self.protocol))
        return self.call_raw(body, method, name if isinstance(name, str) else None)

    def call_raw(self, body: bytes, method: str | None = "tools/call", name: str | None = None) -> dict[str, Any]:
        r = self.post(body, method, name)
        text = r.text
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            # split on "\n" only: str.splitlines() would also split inside the JSON at U+0085, U+2028, ...
            datas = [ln[5:].strip() for ln in text.split("\n") if ln.startswith("data:") and ln[5:].strip()]
            text = datas[-1] if datas else "{}"
        try:
            return json.loads(text) if text.strip() else {"status": r.status_code}
        except ValueError:
            return {"status": r.status_code, "text": text[:200]}

    def close(self) -> None:
        self.http.close()


@contextlib.contextmanager
def http_server_process(scenario: str, db: Path, *extra: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`kpimcp serve --http` in a subprocess; yields (base URL, process) once /healthz answers."""
    port = free_port()
    proc = subprocess.Popen([*CLI, "serve", scenario, "--http", "--port", str(port), "--db", str(db), *extra],
                            stderr=subprocess.PIPE)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                httpx2.get(f"{base}/healthz", timeout=1)
                break
            except httpx2.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not start")
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def audit_explains_world(conn: Any, scenario: Scenario, run_id: str) -> int:
    """Assert that the run's stored world is exactly the seed plus the changes its audit rows record, and that
    every recorded change starts from the value the audit says was there (no change escaped the audit, not even
    one kept only in memory). Returns the number of audit rows."""
    world = World(scenario, run_id)  # the seed only
    replay: dict[tuple[str, str], Any] = {}
    rows = conn.execute("SELECT seq, status, changes FROM audit WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
    for row in rows:
        changes = blobs.loads(conn, row["changes"])  # long values and marker-like ones are stored wrapped
        assert not changes or row["status"] == "ok", f"seq {row['seq']}: a {row['status']} call changed the world"
        for ch in changes:
            key = (ch["space"], ch["key"])
            current = replay.get(key, world._get(*key))
            assert ch["before"] == current, f"seq {row['seq']}: {key} was changed outside the audit"
            replay[key] = ch["after"]
    stored = World.load(conn, scenario, run_id)
    for key in set(replay) | set(stored._overlay):
        assert stored._get(*key) == replay.get(key, world._get(*key)), f"{key}: stored world differs from audit"
    return len(rows)
