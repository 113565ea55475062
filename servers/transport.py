"""Running scenario servers: stdio (one process = one run) and streamable HTTP (one process, many runs).

The HTTP host is a small ASGI app in front of the SDK's session managers. It checks the bearer token, maps
`/<mount>/mcp/<run>` to the mount's `/mcp` endpoint with the run id moved into the `x-kpimcp-run` header, and
runs every mount's session manager in its lifespan, so one process can serve many scenarios and many runs.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import socket
import sqlite3
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings

from kpimcp.scenarios import Scenario

from .http_guard import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    HostPolicy,
    bearer_matches,
    header_timeout_protocol,
)
from .runs import DEFAULT_MAX_RUNS, RUN_HEADER, RunRefused, RunRegistry, check_run_id
from .server import build_server
from .sessions import DEFAULT_IDLE_SECONDS, IdleCloser, close_run, prepare_stdio_run
from .stdio import DEFAULT_MAX_REQUEST_BYTES, run_stdio
from .store import connect

__all__ = ["BindError", "HostApp", "InsecureBindError", "bind_socket", "close_served_runs", "is_loopback",
           "serve_http", "serve_stdio"]

log = logging.getLogger("kpimcp.servers")
_LOOPBACK_NAMES = {"localhost"}


class InsecureBindError(ValueError):
    """Binding a non-loopback address without a bearer token would expose the server to the network."""


class BindError(ValueError):
    """The address or port cannot be listened on (in use, out of range, not an address of this machine)."""


def is_loopback(host: str) -> bool:
    """True for localhost and the loopback ranges (127.0.0.0/8, ::1)."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def _send_json(send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": payload})


class HostApp:
    """ASGI app serving several audited scenario servers under path prefixes (mount "" = the root).

    URL grammar: `/[<mount>/]mcp` (the default run, or the run named by header or `_meta`) and
    `/[<mount>/]mcp/<run-id>`. `GET /healthz` lists the mounts.
    """

    def __init__(self, servers: dict[str, MCPServer], *, host: str = "127.0.0.1", token: str | None = None,
                 policy: HostPolicy | None = None, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES):  # fmt: skip
        self.token = token
        self.servers = servers
        # Called after the last request, before the process ends (uvicorn re-raises SIGTERM once shut down, so
        # code after `Server.run` never runs): e.g. closing the product runs this host served.
        self.on_shutdown: list[Any] = []
        self.policy = policy or HostPolicy.for_bind(host)
        # Host and Origin are checked here, for every path; the SDK's own check would only cover /mcp.
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self._apps: dict[str, StreamableHTTPASGIApp] = {}
        for mount, server in servers.items():
            server.streamable_http_app(streamable_http_path="/mcp", transport_security=security, host=host,
                                       max_request_body_size=max_request_bytes)  # fmt: skip
            self._apps[mount.strip("/")] = StreamableHTTPASGIApp(server.session_manager)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        async with AsyncExitStack() as stack:
            await receive()
            try:
                for app in self._apps.values():
                    await stack.enter_async_context(app.session_manager.run())
            except Exception as exc:  # report to the server instead of dying silently
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
            await receive()
        for callback in self.on_shutdown:
            try:
                callback()
            except Exception:  # one failing callback must not keep the others from running
                log.exception("shutdown callback failed")
        await send({"type": "lifespan.shutdown.complete"})

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        if self.token is None:
            return True
        return bearer_matches(headers.get(b"authorization", b"").decode("latin-1"), self.token)

    async def _refused(self, headers: dict[bytes, bytes], send: Any) -> bool:
        """Answer 421 (Host), 403 (Origin) or 401 (token) if the request may not go further."""
        host = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin", b"").decode("latin-1") or None
        if not self.policy.host_allowed(host):
            await _send_json(send, 421, {"error": f"this server does not answer for Host {host[:100]!a}; "
                                         "add it with --allowed-host"})  # fmt: skip
        elif not self.policy.origin_allowed(origin):
            await _send_json(send, 403, {"error": f"requests from Origin {origin[:100]!a} are not allowed; "
                                         "add it with --allowed-origin"})  # fmt: skip
        elif not self._authorised(headers):
            await _send_json(send, 401, {"error": "missing or invalid bearer token"},
                             [(b"www-authenticate", b'Bearer realm="mcp"')])  # fmt: skip
        else:
            return False
        return True

    def _route(self, path: str) -> tuple[StreamableHTTPASGIApp, str | None] | None:
        parts = [p for p in path.split("/") if p]
        if parts and parts[-1] == "mcp":
            mount, run_id = parts[:-1], None
        elif len(parts) >= 2 and parts[-2] == "mcp":
            mount, run_id = parts[:-2], parts[-1]
        else:
            return None
        app = self._apps.get("/".join(mount))
        return None if app is None else (app, run_id)

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if await self._refused(dict(scope.get("headers") or []), send):
            return
        if path == "/healthz":
            await _send_json(send, 200, {"status": "ok", "mounts": sorted(self._apps)})
            return
        routed = self._route(path)
        if routed is None:
            await _send_json(send, 404, {"error": f"no MCP endpoint at {path[:200]!a}; use /mcp or /mcp/<run-id>",
                                         "mounts": sorted(self._apps)})  # fmt: skip
            return
        app, run_id = routed
        if run_id:
            try:
                check_run_id(run_id)
            except RunRefused as exc:
                await _send_json(send, 400, {"jsonrpc": "2.0", "id": None,
                                             "error": {"code": -32602, "message": str(exc)}})  # fmt: skip
                return
        headers = [(k, v) for k, v in scope.get("headers") or [] if not (run_id and k == RUN_HEADER.encode())]
        if run_id:
            headers.append((RUN_HEADER.encode(), run_id.encode()))
        await app({**scope, "path": "/mcp", "raw_path": b"/mcp", "headers": headers}, receive, send)


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket for uvicorn, with TCP_NODELAY (inherited by accepted sockets).

    Without it, a response written in two parts (headers, body) waits for the client's delayed ACK: +40 ms on
    every tool call. Raises `BindError` with a sentence if the address cannot be listened on.
    """
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise BindError(f"port {port} is out of range: use 1-65535 (or 0 for any free port)")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BindError(f"port {port} on {host} is already in use; stop what uses it or pick another --port") \
                from None
        if exc.errno == errno.EACCES:
            raise BindError(f"not allowed to listen on port {port} (ports below 1024 need privileges)") from None
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is --host an address of this "
                        "machine?)") from None  # fmt: skip
    sock.set_inheritable(True)
    return sock


def serve_stdio(scenario: Scenario, variant: str, db_path: Path | str, *, run_id: str | None = None,
                model: str | None = None, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                idle_seconds: float = DEFAULT_IDLE_SECONDS) -> None:  # fmt: skip
    """Serve one run over stdio until the client disconnects. Nothing but MCP goes to stdout.

    Raises `RunRefused` if the run is live in another process (e.g. an earlier server still running). The run
    closes when the server ends (`closed`, or `empty` without a tool call) or after `idle_seconds` without a
    call (0: never); a run that already ended for good is refused (`ClosedSessionError`).
    """
    import anyio

    if run_id is not None:
        check_run_id(run_id)  # before the database is created
    conn = connect(db_path)
    runs = RunRegistry(conn, scenario, variant, default_run_id=run_id, transport="stdio", model=model)
    runs.slot()  # claim the run and create its row now, so `kpimcp runs` shows it even before the first call
    prepare_stdio_run(conn, runs.default_run_id)
    print(f"kpimcp: serving {scenario.id}/{variant} on stdio, run {runs.default_run_id}, db {db_path}",
          file=sys.stderr)  # fmt: skip
    idle = IdleCloser(db_path, runs.run_ids, idle_seconds).start()
    _close_on_sigterm(runs)
    try:
        anyio.run(lambda: run_stdio(build_server(scenario, variant, runs), max_request_bytes=max_request_bytes))
    finally:
        idle.stop()
        close_served_runs(runs)


def _close_on_sigterm(runs: RunRegistry) -> None:
    """A client quitting may end its stdio servers with SIGTERM instead of closing their stdin: close the run
    then too. Each audited call is its own transaction, so exiting right after loses nothing."""
    import os
    import signal

    def stop(signum: int, frame: Any) -> None:
        close_served_runs(runs)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def close_served_runs(runs: RunRegistry) -> None:
    """Close the product runs a server served that are still open (its end ends them); bench runs untouched."""
    for slot_id in runs.run_ids():
        try:
            if runs.slot(slot_id).product:
                close_run(runs.conn, slot_id, "server_end")
        except (sqlite3.Error, ValueError, LookupError) as exc:  # the run stays open; `session close` ends it
            log.error("could not close run %s at server end: %s", slot_id, exc)


def http_registry(conn: sqlite3.Connection, scenario: Scenario, variant: str, **kw: Any) -> RunRegistry:
    """A run registry for an HTTP host (transport recorded as "http")."""
    return RunRegistry(conn, scenario, variant, transport="http", **kw)


def serve_http(scenario: Scenario, variant: str, db_path: Path | str, *, host: str = "127.0.0.1", port: int = 8765,
               token: str | None = None, run_id: str | None = None, max_runs: int = DEFAULT_MAX_RUNS,
               max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, header_timeout: float = DEFAULT_HEADER_TIMEOUT,
               idle_timeout: int = DEFAULT_IDLE_TIMEOUT, allowed_hosts: tuple[str, ...] = (),
               allowed_origins: tuple[str, ...] = (), model: str | None = None,
               idle_seconds: float = DEFAULT_IDLE_SECONDS) -> None:  # fmt: skip
    """Serve many concurrent runs over streamable HTTP at `http://HOST:PORT/mcp[/<run-id>]`.

    Product runs it served close when it stops, or after `idle_seconds` without a call (0: never).

    Raises `InsecureBindError` for a non-loopback bind without a token, `BindError` if the port cannot be used.
    """
    import uvicorn

    if not is_loopback(host) and not token:
        raise InsecureBindError(f"refusing to bind {host} without --token: anyone on the network could drive it")
    if run_id is not None:
        check_run_id(run_id)
    sock = bind_socket(host, port)
    runs = http_registry(connect(db_path), scenario, variant, default_run_id=run_id, max_runs=max_runs, model=model)
    policy = HostPolicy.for_bind(host, allowed_hosts, allowed_origins)
    app = HostApp({"": build_server(scenario, variant, runs)}, host=host, token=token, policy=policy,
                  max_request_bytes=max_request_bytes)  # fmt: skip
    print(f"kpimcp: serving {scenario.id}/{variant} at http://{host}:{port}/mcp (a run per /mcp/<run-id>; "
          f"default run {runs.default_run_id}), db {db_path}", file=sys.stderr)  # fmt: skip
    config = uvicorn.Config(app, log_level="warning", lifespan="on", http=header_timeout_protocol(header_timeout),
                            timeout_keep_alive=idle_timeout)  # fmt: skip
    idle = IdleCloser(db_path, runs.run_ids, idle_seconds).start()
    app.on_shutdown += [idle.stop, lambda: close_served_runs(runs)]
    uvicorn.Server(config).run(sockets=[sock])
