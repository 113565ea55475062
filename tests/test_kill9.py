"""kill -9 of stdio and HTTP servers at random points, again and again, on the same run: no acknowledged call
is lost, the chain verifies, the world is what the audit says, and each restarted server takes the run over.

CI runs `KPIMCP_KILL_ROUNDS` (default 4) kills per transport; docs/reliability.md gives a 50-kill run's figures.
"""

from __future__ import annotations

import json
import os
import random
import threading

import httpx2
import pytest
from wire_support import MODERN, HttpWire, StdioWire, audit_explains_world, http_server_process

from kpimcp.scenarios import load
from kpimcp.servers import World, connect, verify

pytestmark = pytest.mark.slow
ROUNDS = int(os.environ.get("KPIMCP_KILL_ROUNDS", "4"))
SCENARIO = "patient_records_audit"
RUN = "run-kill9"


def _write(n: int) -> dict:
    return {"name": "write_file", "arguments": {"path": f"kill9/{n}.txt", "content": f"acknowledged {n}"}}


def _hammer(call, kill, rng: random.Random, start: int) -> list[int]:
    """Write files until the server dies (killed after a random delay); the numbers whose write was answered ok."""
    assert "result" in call({"name": "list_files", "arguments": {}})  # up and serving before the clock starts
    threading.Timer(rng.uniform(0.05, 0.6), kill).start()
    acked = []
    for n in range(start, start + 10_000):
        try:
            reply = call(_write(n))
        except (AssertionError, httpx2.TransportError, OSError, ValueError):
            return acked  # the server is gone: this call may or may not have committed, it was not acknowledged
        if "result" in reply and reply["result"].get("isError") is False:
            acked.append(n)
        else:
            raise AssertionError(f"a write failed before the kill: {reply}")
    raise AssertionError("the server was never killed")


def _check(db, acked: list[int]) -> dict:
    conn = connect(db)
    world = World.load(conn, load(SCENARIO), RUN)
    lost = [n for n in acked if world.read_file(f"kill9/{n}.txt") != f"acknowledged {n}"]
    rows = audit_explains_world(conn, load(SCENARIO), RUN)
    checked, problems = verify(conn)
    assert not lost, f"{len(lost)} acknowledged writes lost: {lost[:10]}"
    assert problems == [] and checked == 1
    return {"acknowledged": len(acked), "rows": rows}


def test_kill9_stdio_server_loses_no_acknowledged_call(tmp_path):
    db, rng, acked = tmp_path / "k.db", random.Random(12), []
    for round_no in range(ROUNDS):
        wire = StdioWire([SCENARIO, "--db", str(db), "--run-id", RUN], MODERN)
        acked += _hammer(lambda params, w=wire: w.call("tools/call", params, timeout=10), wire.proc.kill, rng,
                         start=10**6 * round_no)  # fmt: skip
        wire.proc.wait(10)
        wire.close()
    figures = _check(db, acked)
    assert figures["acknowledged"] >= ROUNDS, "too few calls were acknowledged for the test to mean anything"
    print(json.dumps({"transport": "stdio", "kills": ROUNDS, **figures}))


def test_kill9_http_server_loses_no_acknowledged_call(tmp_path):
    db, rng, acked = tmp_path / "k.db", random.Random(34), []
    for round_no in range(ROUNDS):
        with http_server_process(SCENARIO, db) as (base, proc):
            wire = HttpWire(f"{base}/mcp/{RUN}", MODERN)
            acked += _hammer(lambda params, w=wire: w.call("tools/call", params), proc.kill, rng,
                             start=10**6 * round_no)  # fmt: skip
            proc.wait(10)
            wire.close()
    figures = _check(db, acked)
    assert figures["acknowledged"] >= ROUNDS
    print(json.dumps({"transport": "http", "kills": ROUNDS, **figures}))
