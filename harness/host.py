"""The scenario host: one long-lived streamable-HTTP server serving every scenario variant of a bench.

Starting an MCP server costs ~1.2 s (mostly `import mcp`); a bench of thousands of runs must not pay it per
run. One `HostApp` mounts each (scenario, variant) at `/<scenario>/<variant>/mcp/<run-id>`; each run talks to
its own URL, so runs stay isolated (own world, own audit chain) while sharing one process.

Two modes with one interface:
- `SubprocessHost` (default): a child process (`python -m kpimcp.harness.host`), so server work runs on
  another core and a crash in scenario code cannot take the bench down. It exits when the bench's pipe
  closes, so a killed bench leaves no orphan. If it dies, the bench restarts it for the remaining runs.
- `InProcessHost`: the same app on the bench's event loop (tests, one-core machines).
Both bind 127.0.0.1 on a free port and require a random bearer token, so no other local process can write
into a bench's runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kpimcp.scenarios import Scenario
from kpimcp.servers.http_guard import header_timeout_protocol
from kpimcp.servers.transport import DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, bind_socket

__all__ = ["HostError", "InProcessHost", "ScenarioHost", "SubprocessHost", "make_host", "mount_name"]

READY = "KPIMCP_HOST_READY"
TOKEN_ENV = "KPIMCP_HOST_TOKEN"
_START_TIMEOUT = 60.0


class HostError(RuntimeError):
    """The scenario host could not start or died; the message carries its last log lines."""


def mount_name(scenario_id: str, variant: str) -> str:
    return f"{scenario_id}/{variant}"


def build_app(db: str | Path, mounts: Sequence[tuple[Scenario, str]], token: str) -> tuple[Any, sqlite3.Connection]:
    """The ASGI app serving `mounts`, auditing into `db` (one connection shared by the mounts)."""
    from kpimcp.servers import HostApp, build_server, connect
    from kpimcp.servers.transport import http_registry

    conn = connect(db)
    servers = {mount_name(s.id, v): build_server(s, v, http_registry(conn, s, v)) for s, v in mounts}
    return HostApp(servers, token=token), conn


def _uvicorn_server(app: Any, header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                    idle_timeout: int = DEFAULT_IDLE_TIMEOUT) -> Any:  # fmt: skip
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # leave Ctrl-C to the bench
            yield

    # The same connection limits as `kpimcp serve --http`: the host listens on loopback behind a random token, but
    # a stalled or slow-header connection must not hold one of its sockets for the rest of a long bench.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1,
                            http=header_timeout_protocol(header_timeout), timeout_keep_alive=idle_timeout)  # fmt: skip
    return Server(config)


class ScenarioHost:
    """Common interface: `url(...)`, `headers`, `alive()`, `start()`, `stop()`, `restart()`."""

    # Connection limits, as `kpimcp serve --http` has them: a request head must arrive within `header_timeout`
    # seconds and an idle keep-alive connection closes after `idle_timeout` (a stalled client cannot hold sockets).
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT

    def __init__(self, db: str | Path, mounts: Sequence[tuple[Scenario, str]]) -> None:
        self.db = str(db)
        self.mounts = list(mounts)
        self.token = secrets.token_urlsafe(24)
        self.port: int | None = None
        self.restarts = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, scenario_id: str, variant: str, run_id: str) -> str:
        if self.port is None:
            raise HostError("the scenario host is not running")
        return f"http://127.0.0.1:{self.port}/{mount_name(scenario_id, variant)}/mcp/{run_id}"

    def alive(self) -> bool:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def restart(self) -> None:
        await self.stop()
        self.restarts += 1
        await self.start()


class InProcessHost(ScenarioHost):
    """The host app served by uvicorn on the current event loop."""

    def __init__(self, db: str | Path, mounts: Sequence[tuple[Scenario, str]]) -> None:
        super().__init__(db, mounts)
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._conn: sqlite3.Connection | None = None

    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        app, self._conn = build_app(self.db, self.mounts, self.token)
        sock = bind_socket()
        self.port = sock.getsockname()[1]
        self._server = _uvicorn_server(app, self.header_timeout, self.idle_timeout)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                raise HostError(f"the in-process scenario host failed to start: {self._task.exception()}")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await self._task
        if self._conn is not None:
            self._conn.close()
        self._server = self._task = self._conn = None


class SubprocessHost(ScenarioHost):
    """The host app in a child process; its stderr goes to a log file quoted when it fails."""

    def __init__(self, db: str | Path, mounts: Sequence[tuple[Scenario, str]]) -> None:
        super().__init__(db, mounts)
        self._proc: asyncio.subprocess.Process | None = None
        self._log = Path(tempfile.mkstemp(prefix="kpimcp-host-", suffix=".log")[1])

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def start(self) -> None:
        spec = {"db": self.db, "mounts": [[str(s.folder), v] for s, v in self.mounts]}
        env = {**os.environ, TOKEN_ENV: self.token, "OPENAI_AGENTS_DISABLE_TRACING": "1"}
        with self._log.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kpimcp.harness.host", json.dumps(spec),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
            )  # fmt: skip
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), _START_TIMEOUT)  # type: ignore[union-attr]
        except TimeoutError:
            line = b""
        text = line.decode(errors="replace").strip()
        if not text.startswith(READY):
            await self.stop()
            raise HostError(f"the scenario host did not start: {self.log_tail() or text or 'no output'}")
        self.port = int(text.split()[1])

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


def make_host(kind: str, db: str | Path, mounts: Sequence[tuple[Scenario, str]]) -> ScenarioHost:
    """`subprocess` or `inprocess`."""
    return SubprocessHost(db, mounts) if kind == "subprocess" else InProcessHost(db, mounts)


# ---- the child process -----------------------------------------------------------------------------------------
def _exit_when_parent_goes() -> None:
    """The bench holds our stdin; EOF means it is gone (even SIGKILLed), so we must go too."""

    def watch() -> None:
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m kpimcp.harness.host SPEC_JSON` (token in $KPIMCP_HOST_TOKEN)."""
    from kpimcp.scenarios import load_path

    parser = argparse.ArgumentParser(description="kpimcp bench scenario host (started by `kpimcp bench`)")
    parser.add_argument("spec", help='JSON: {"db": path, "mounts": [[scenario_folder, variant], ...]}')
    spec = json.loads(parser.parse_args(argv).spec)
    token = os.environ.get(TOKEN_ENV)
    if not token:
        sys.exit(f"{TOKEN_ENV} must be set")
    scenarios: dict[str, Scenario] = {}
    mounts = [(scenarios.setdefault(folder, load_path(Path(folder))), variant) for folder, variant in spec["mounts"]]
    app, _conn = build_app(spec["db"], mounts, token)
    sock = bind_socket()
    server = _uvicorn_server(app)
    _exit_when_parent_goes()

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        print(f"{READY} {sock.getsockname()[1]}", flush=True)
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
