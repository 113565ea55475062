"""Limits under abuse, measured on real server processes.

1. Slowloris: N connections to `kpimcp serve --http` that send a request head one byte at a time and never
   finish it, plus N that send nothing: how many the server closes, and how fast (default --header-timeout 10 s).
2. A 100 MB call over stdio: refused with an answer, the server's peak memory (VmHWM) and the database growth.
3. Run cap: naming runs until `--max-runs` refuses, then how many run rows exist.

Usage: python benchmarks/bench_limits.py [--connections 100] [--big-mb 100]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from wire_support import MODERN, HttpWire, StdioWire, http_server_process  # noqa: E402

SCENARIO = "patient_records_audit"


def slowloris(db: Path, n: int) -> dict:
    with http_server_process(SCENARIO, db) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(2 * n)]
        for s in socks[:n]:
            s.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-")
        for s in socks:
            s.setblocking(False)
        t0, closed = time.monotonic(), {}
        while len(closed) < len(socks) and time.monotonic() - t0 < 30:
            for i, s in enumerate(socks):
                if i in closed:
                    continue
                try:
                    if i < n:
                        s.send(b"a")  # one more header byte: the head never completes
                    if s.recv(64) == b"":
                        closed[i] = time.monotonic() - t0
                except BlockingIOError:
                    pass
                except OSError:
                    closed[i] = time.monotonic() - t0
            time.sleep(0.5)
        for s in socks:
            s.close()
        served = HttpWire(f"{base}/mcp/after", MODERN).call("tools/call", {"name": "list_files", "arguments": {}})
    times = sorted(closed.values())
    return {"slow_connections": n, "idle_connections": n, "closed": len(closed),
            "closed_slow": sum(1 for i in closed if i < n), "closed_idle": sum(1 for i in closed if i >= n),
            "max_seconds_to_close": round(times[-1], 1) if times else None,
            "server_still_serves": "result" in served}  # fmt: skip


def _hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def big_call(db: Path, mb: int) -> dict:
    wire = StdioWire([SCENARIO, "--db", str(db), "--run-id", "run-big"], MODERN)
    try:
        wire.call("tools/call", {"name": "list_files", "arguments": {}}, timeout=60)
        before_kb, size_before = _hwm_kb(wire.proc.pid), os.path.getsize(db)
        head = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"write_file","arguments":'
        body = head + b'{"path":"big","content":"' + b"x" * (mb * 1024 * 1024) + b'"}}}'
        t0 = time.perf_counter()
        wire.send_raw(body)
        reply = wire.reply_to(7, timeout=120)
        seconds = time.perf_counter() - t0
        after_kb = _hwm_kb(wire.proc.pid)
        ok = wire.call("tools/call", {"name": "list_files", "arguments": {}})
    finally:
        wire.close()
    return {"request_mb": mb, "answer": reply.get("error", {}).get("message"), "seconds": round(seconds, 2),
            "server_peak_rss_mb_before": round(before_kb / 1024), "server_peak_rss_mb_after": round(after_kb / 1024),
            "db_growth_kb": round((os.path.getsize(db) - size_before) / 1024),
            "serves_after": "result" in ok}  # fmt: skip


def run_cap(db: Path, cap: int = 50) -> dict:
    with http_server_process(SCENARIO, db, "--max-runs", str(cap)) as (base, _):
        refused = 0
        for i in range(cap + 20):
            reply = HttpWire(f"{base}/mcp/run-{i}", MODERN).call("tools/call", {"name": "list_files", "arguments": {}})
            refused += "error" in reply
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    return {"max_runs": cap, "runs_named": cap + 20, "refused": refused, "run_rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--big-mb", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = {"slowloris": slowloris(Path(tmp) / "s.db", args.connections),
               "big_stdio_call": big_call(Path(tmp) / "b.db", args.big_mb),
               "run_cap": run_cap(Path(tmp) / "r.db")}  # fmt: skip
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
