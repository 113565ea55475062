"""One scenario host per results database for all of an Inspect process's samples, started on first use.

Starting an MCP server costs ~1.2 s; paying it once per sample (stdio) dominates an offline eval. The host is
`kpimcp.harness.host`'s child process (streamable HTTP on 127.0.0.1, a random bearer token, one URL per run).
It is started with plain `subprocess`, not asyncio, because Inspect runs each `eval()` on its own event loop
and an asyncio child dies with the loop that started it; it exits when this process exits (atexit) or dies
(its stdin closes).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kpimcp.harness.host import READY, TOKEN_ENV, HostError, mount_name
from kpimcp.scenarios import Scenario

__all__ = ["HostPool", "RunningHost", "host_pool"]

_START_TIMEOUT = 60.0


@dataclass
class RunningHost:
    """A live host: where it listens and the token it wants."""

    proc: subprocess.Popen[bytes]
    port: int
    token: str
    mounts: frozenset[str]
    log: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, scenario_id: str, variant: str, run_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mount_name(scenario_id, variant)}/mcp/{run_id}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _start(db: str, scenarios: Iterable[tuple[Scenario, str]]) -> RunningHost:
    pairs = sorted({(str(s.folder), v, s.id) for s, v in scenarios})
    spec = {"db": db, "mounts": [[folder, variant] for folder, variant, _ in pairs]}
    token = secrets.token_urlsafe(24)
    log = Path(tempfile.mkstemp(prefix="kpimcp-inspect-host-", suffix=".log")[1])
    env = {**os.environ, TOKEN_ENV: token, "OPENAI_AGENTS_DISABLE_TRACING": "1"}
    with log.open("ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "kpimcp.harness.host", json.dumps(spec)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env)  # fmt: skip
    line = _read_line(proc, _START_TIMEOUT)
    if not line.startswith(READY):
        proc.kill()
        proc.wait()
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise HostError(f"the scenario host did not start: {tail or line or 'no output'}")
    mounts = frozenset(mount_name(sid, v) for _, v, sid in pairs)
    return RunningHost(proc, int(line.split()[1]), token, mounts, log)


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return out[0].decode(errors="replace").strip() if out else ""


@dataclass
class HostPool:
    """Live hosts by database; a host serving every mount asked for is reused, else another one starts (a host
    in use by a concurrent task is never restarted under it)."""

    hosts: dict[str, list[RunningHost]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, db: str, scenarios: Iterable[tuple[Scenario, str]]) -> RunningHost:
        """A live host for `db` serving at least `scenarios` (scenario, variant pairs); blocking on first use."""
        wanted = list(scenarios)
        names = {mount_name(s.id, v) for s, v in wanted}
        with self.lock:
            hosts = self.hosts.setdefault(db, [])
            for dead in [h for h in hosts if not h.alive()]:
                dead.stop()
                hosts.remove(dead)
            for host in hosts:
                if names <= host.mounts:
                    return host
            host = _start(db, wanted)
            hosts.append(host)
            return host

    def stop_all(self) -> None:
        with self.lock:
            for hosts in self.hosts.values():
                for host in hosts:
                    host.stop()
            self.hosts.clear()


_POOL = HostPool()
# One pool per process on purpose: hosts are child processes that must outlive a single eval() (Inspect runs
# `--model a,b` and eval_set's tasks in one process) and be stopped exactly once when the process ends.
atexit.register(_POOL.stop_all)


def host_pool() -> HostPool:
    """The process's host pool."""
    return _POOL
