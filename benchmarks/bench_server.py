"""Server costs, measured side by side in one run.

1. Cold start: spawn a stdio server process → first tool result, for a scenario server vs a bare `MCPServer`
   with one tool (target ≤ 1.5×).
2. Call latency: the same tool call on the same scenario server with and without the audit (target ≤ 1.2×),
   over stdio (how products connect) and in-process (where the audit's share is largest).
3. The cost of reading stdio the way `kpimcp serve` does (every line checked and answered) against the SDK's
   reader, both unaudited.
4. With --breakdown: where the stdio audit's cost goes, by running the audited server with parts of the audit
   stubbed out: without SQLite (the row is built, nothing is written), and without the row (no JSON, no hash, no
   SQL: only the wrapper around the tool). Differences of medians, so expect a few hundredths of noise.

The stdio call ratio moves with the machine's state far more than within one measurement (1.1x-1.4x between
runs minutes apart on a shared 2-core VM), so it is measured in --rounds rounds, each with fresh servers, and
reported as the median round with the range; the audit's absolute cost (audited minus unaudited) is printed too.
Beside it, the same rounds between two identical unaudited servers (the noise floor): a ratio closer to 1.0x than
their spread is not a measured difference.

Usage: python benchmarks/bench_server.py [--scenario ID|FOLDER] [--starts 7] [--calls 400] [--rounds 5] [--breakdown]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]

BARE = """
from mcp.server.mcpserver import MCPServer
server = MCPServer(name="bare", log_level="WARNING")

@server.tool()
async def get_record(collection: str, record_id: str) -> dict:
    \"\"\"Fetch one record.\"\"\"
    return {"collection": collection, "id": record_id}

server.run("stdio")
"""

SCENARIO_SERVER = """
import sys
import anyio
from kpimcp.harness.cli import scenario_arg
from kpimcp.servers import RunRegistry, build_server, connect
from kpimcp.servers.stdio import run_stdio
scenario_id, db, audited, reader, stub = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4], sys.argv[5]
scenario = scenario_arg(scenario_id)
runs = RunRegistry(connect(db), scenario, "mandated", transport="stdio")
server = build_server(scenario, "mandated", runs, _audited=audited)
if stub:  # --breakdown only: parts of the audit stubbed out, to price each
    import contextlib
    from kpimcp.servers import server as audited_server
    from kpimcp.servers.audit import Head

    class NoAuditSql:  # the row is built as usual; its statements are not run
        def __init__(self, conn): self.conn = conn
        def execute(self, sql, *args):
            skip = ("BEGIN", "COMMIT", "INSERT INTO audit", "UPDATE runs SET head")
            return None if sql.startswith(skip) else self.conn.execute(sql, *args)
        def __getattr__(self, name): return getattr(self.conn, name)

    if stub == "no-row":
        audited_server.audit.append = lambda conn, run_id, head=None, **_: Head((head.seq if head else 0) + 1, "", None)
        audited_server.transaction = contextlib.nullcontext
    runs.conn = NoAuditSql(runs.conn)
# "guarded" = how `kpimcp serve` reads stdio (every line answered); "sdk" = the SDK's own reader
anyio.run(run_stdio, server) if reader == "guarded" else server.run("stdio")
"""


def _default_scenario() -> str:
    from kpimcp.scenarios import ids

    return "patient_records_audit" if "patient_records_audit" in ids() else str(ROOT / "tests/fixtures/toy")


def _probe_call(scenario: str) -> tuple[str, dict]:
    from kpimcp.harness.cli import scenario_arg

    s = scenario_arg(scenario)
    coll = s.spec.collections[0]
    first = next(iter(s.seed.records[coll.name]))
    return "get_record", {"collection": coll.name, "record_id": first}


async def _cold_start(params: StdioServerParameters, tool: str, args: dict) -> float:
    t0 = time.perf_counter()
    async with Client(params) as client:
        result = await client.call_tool(tool, args)
        assert not result.is_error, result
        return time.perf_counter() - t0


async def _latency_pair(audited: object, plain: object, tool: str, args: dict, calls: int) -> tuple[float, float]:
    """Median call latency (ms) of two servers, measured in alternating blocks so machine drift hits both."""
    out: dict[bool, list[float]] = {True: [], False: []}
    async with Client(audited) as a, Client(plain) as p:
        for client in (a, p):
            for _ in range(20):  # warm-up
                await client.call_tool(tool, args)
        for _ in range(max(1, calls // 50)):
            for flag, client in ((True, a), (False, p)):
                for _ in range(50):
                    t0 = time.perf_counter()
                    await client.call_tool(tool, args)
                    out[flag].append((time.perf_counter() - t0) * 1000)
    return statistics.median(out[True]), statistics.median(out[False])


async def _breakdown(scen: Any, tool: str, args: dict, calls: int) -> None:
    """The stdio audit's cost, part by part: each variant against the unaudited server, side by side."""
    extra = {}
    for stub in ("no-row", "no-sql", ""):
        audited, plain = await _latency_pair(scen(True, stub=stub), scen(False), tool, args, calls)
        extra[stub] = audited - plain
    print(f"where the stdio audit's cost goes (differences of medians of {calls}):")
    print(f"  wrapper around the tool (lock, timing, status, client) : {extra['no-row']:6.3f} ms")
    print(f"  building the row (JSON of arguments/result, hash)       : {extra['no-sql'] - extra['no-row']:6.3f} ms")
    print(f"  SQLite (BEGIN IMMEDIATE, the row, the head, COMMIT)     : {extra[''] - extra['no-sql']:6.3f} ms")
    print(f"  total                                                  : {extra['']:6.3f} ms")


def _median_round(rounds: list[tuple[float, float]]) -> tuple[float, float]:
    return sorted(rounds, key=lambda r: r[0] / r[1])[len(rounds) // 2]


def _ratios(rounds: list[tuple[float, float]]) -> str:
    return ", ".join(f"{x / y:.2f}" for x, y in sorted(rounds, key=lambda r: r[0] / r[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default=None)
    ap.add_argument("--starts", type=int, default=7)
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=5, help="stdio latency rounds (fresh servers each)")
    ap.add_argument("--breakdown", action="store_true", help="price the parts of the stdio audit")
    opts = ap.parse_args()
    scenario = opts.scenario or _default_scenario()
    tool, args = _probe_call(scenario)
    tmp = Path(tempfile.mkdtemp(prefix="kpimcp-bench-"))
    (tmp / "bare.py").write_text(textwrap.dedent(BARE))
    (tmp / "scenario.py").write_text(textwrap.dedent(SCENARIO_SERVER))
    py = sys.executable

    def scen(audited: bool, reader: str = "guarded", stub: str = "") -> StdioServerParameters:
        return StdioServerParameters(command=py, args=[str(tmp / "scenario.py"), scenario, str(tmp / "b.db"),
                                                       "1" if audited else "0", reader, stub])  # fmt: skip

    bare = StdioServerParameters(command=py, args=[str(tmp / "bare.py")])

    async def run() -> None:
        bare_t, scen_t = [], []
        for _ in range(opts.starts):  # interleaved so machine noise hits both alike
            bare_t.append(await _cold_start(bare, "get_record", {"collection": "x", "record_id": "1"}))
            scen_t.append(await _cold_start(scen(True), tool, args))
        b, s = statistics.median(bare_t), statistics.median(scen_t)
        print(f"scenario: {scenario}  probe call: {tool}({args})")
        print(f"cold start (spawn → first tool result), median of {opts.starts}:")
        print(f"  bare MCPServer, one tool : {b * 1000:8.1f} ms")
        print(f"  kpimcp scenario server   : {s * 1000:8.1f} ms   ratio {s / b:.2f}x (target ≤ 1.50x)")

        rounds, control = [], []
        for _ in range(opts.rounds):  # audited/unaudited and control rounds interleaved: the same machine states
            rounds.append(await _latency_pair(scen(True), scen(False), tool, args, opts.calls))
            control.append(await _latency_pair(scen(False), scen(False), tool, args, opts.calls))
        a, p = _median_round(rounds)
        costs = sorted(x - y for x, y in rounds)
        print(f"tool-call latency over stdio, median of {opts.calls} calls, median of {opts.rounds} rounds:")
        print(f"  unaudited : {p:6.3f} ms\n  audited   : {a:6.3f} ms   ratio {a / p:.2f}x (target ≤ 1.20x)")
        print(f"  rounds    : {_ratios(rounds)}")
        mid = costs[len(costs) // 2]
        print(f"  the audit's own cost per call: {mid:.3f} ms (rounds: {costs[0]:.3f}-{costs[-1]:.3f})")
        c1, c2 = _median_round(control)
        print(f"  noise floor, two identical unaudited servers: ratio {c1 / c2:.2f}x, rounds {_ratios(control)}")

        g, k = await _latency_pair(scen(False), scen(False, "sdk"), tool, args, opts.calls)
        print(f"stdio reader, unaudited both, median of {opts.calls}:")
        print(f"  SDK reader     : {k:6.3f} ms\n  guarded reader : {g:6.3f} ms   ratio {g / k:.2f}x")

        if opts.breakdown:
            await _breakdown(scen, tool, args, opts.calls)

        from kpimcp.harness.cli import scenario_arg
        from kpimcp.servers import RunRegistry, build_server, connect

        sc = scenario_arg(scenario)
        conn = connect(tmp / "inproc.db")
        servers = {flag: build_server(sc, "mandated", RunRegistry(conn, sc, "mandated"), _audited=flag)
                   for flag in (True, False)}  # fmt: skip
        ia, ip = await _latency_pair(servers[True], servers[False], tool, args, opts.calls)
        print(f"tool-call latency in-process (no transport; the audit's worst case), median of {opts.calls}:")
        print(f"  unaudited : {ip:6.3f} ms\n  audited   : {ia:6.3f} ms   ratio {ia / ip:.2f}x")

    anyio.run(run)


if __name__ == "__main__":
    main()
