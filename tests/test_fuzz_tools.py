"""Property-based fuzzing of every tool of every scenario, over stdio and streamable HTTP, in both protocol
generations (2025-11-25 with initialize, 2026-07-28 without), hostile input included.

Properties, for every call: an answer arrives (no hang), the server process survives (no crash); and for every
run at the end: the stored world is exactly what the audit rows record (no world change without its row), the
chain verifies, no tool crashed, and on stdio every call has its row. CI runs `KPIMCP_FUZZ_EXAMPLES` (default
60) calls per scenario, each scenario over one of the four combinations in turn (every combination gets a quarter
of the scenarios; a server start costs more than its calls, and scenarios keep coming); `KPIMCP_FUZZ_ALL=1` fuzzes
every scenario over every combination. docs/reliability.md gives the figures of a 10,000+-call run
(`KPIMCP_FUZZ_ALL=1 KPIMCP_FUZZ_EXAMPLES=110` with 24 scenarios).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fuzz_support import tool_calls, vocabulary, wire_body
from hypothesis import HealthCheck, given, settings
from wire_support import LEGACY, MODERN, HttpWire, StdioWire, audit_explains_world, http_server_process, request

from kpimcp.scenarios import all as all_scenarios
from kpimcp.servers import connect, verify

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("KPIMCP_FUZZ_EXAMPLES", "60"))
EVERY_COMBINATION = os.environ.get("KPIMCP_FUZZ_ALL") == "1"
COMBOS = [(transport, protocol) for transport in ("stdio", "http") for protocol in (LEGACY, MODERN)]
TOTALS: Counter[str] = Counter()


@contextlib.contextmanager
def _wire(transport: str, protocol: str, scenario_id: str, db: Any, run_id: str) -> Iterator[Any]:
    if transport == "stdio":
        wire = StdioWire([scenario_id, "--db", str(db), "--run-id", run_id], protocol)
        try:
            yield wire
            assert wire.alive(), f"stdio server died: {wire.stderr()[-1500:]}"
        finally:
            wire.close()
    else:
        with http_server_process(scenario_id, db) as (base, proc):
            wire = HttpWire(f"{base}/mcp/{run_id}", protocol)
            yield wire
            assert proc.poll() is None, "HTTP server died"
            wire.close()


def _call(wire: Any, msg_id: int, name: str, arguments: Any) -> dict[str, Any]:
    body = wire_body(request(msg_id, "tools/call", {"name": name, "arguments": arguments}, wire.protocol))
    if isinstance(wire, StdioWire):
        wire.send_raw(body)
        return wire.reply_to(msg_id)
    return wire.call_raw(body, "tools/call", name)


def _fuzz_one_server(wire: Any, scenario: Any, stats: Counter[str]) -> None:
    tools = wire.call("tools/list", {})["result"]["tools"]
    next_id = iter(range(10_000, 10**9))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(tool_calls(tools, vocabulary(scenario)))
    def one(call: tuple[str, Any]) -> None:
        reply = _call(wire, next(next_id), *call)
        stats["calls"] += 1
        if "result" in reply:
            stats["results"] += 1
            stats["refused" if reply["result"].get("isError") else "ok"] += 1
        else:
            assert "error" in reply or reply.get("status") in (400, 413), reply
            stats["protocol errors"] += 1

    one()


@pytest.mark.parametrize(("transport", "protocol"), COMBOS)
def test_fuzzed_calls_never_crash_hang_or_change_the_world_unaudited(tmp_path, transport, protocol):
    db = tmp_path / "fuzz.db"
    stats: Counter[str] = Counter()
    combo = COMBOS.index((transport, protocol))
    scenarios = [s for i, s in enumerate(all_scenarios()) if EVERY_COMBINATION or i % len(COMBOS) == combo]
    for scenario in scenarios:
        run_id = f"fuzz-{scenario.id}"
        with _wire(transport, protocol, scenario.id, db, run_id) as wire:
            _fuzz_one_server(wire, scenario, stats)
        conn = connect(db)
        rows = audit_explains_world(conn, scenario, run_id)
        statuses = Counter(r[0] for r in conn.execute("SELECT status FROM audit WHERE run_id = ?", (run_id,)))
        stats.update({f"rows {k}": v for k, v in statuses.items()})
        stats["rows"] += rows
        assert statuses["crashed"] == 0, f"{scenario.id}: a tool crashed on fuzzed input"
        conn.close()
    calls_per_run = stats["calls"] // len(scenarios)
    assert calls_per_run >= EXAMPLES // 2, "hypothesis ran far fewer calls than asked"
    assert stats["rows"] >= stats["results"], "a call got a result without an audit row"
    if transport == "stdio":
        assert stats["rows"] == stats["calls"], "on stdio every call, even an unreadable one, has its row"
    assert verify(connect(db)) == (len(scenarios), [])
    TOTALS.update(stats)
    line = json.dumps({"transport": transport, "protocol": protocol, **stats})
    print(line)
    if os.environ.get("KPIMCP_FUZZ_REPORT"):
        with open(os.environ["KPIMCP_FUZZ_REPORT"], "a") as out:
            out.write(line + "\n")
