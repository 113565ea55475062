"""Shared helpers for the core tests: the toy scenario served in-process over a scratch database."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

from mcp import Client

from kpimcp.scenarios import Scenario, load_path
from kpimcp.servers import RunRegistry, build_server, connect, create_run

TOY = Path(__file__).parent / "fixtures" / "toy"


def toy() -> Scenario:
    return load_path(TOY)


@contextlib.asynccontextmanager
async def toy_client(db: Path | str, run_id: str = "run-toy", variant: str = "mandated") -> AsyncIterator[Client]:
    """An in-process MCP client on the toy scenario's audited server, auditing into `db` as run `run_id`."""
    scenario = toy()
    conn = connect(db)
    create_run(conn, scenario, variant, run_id=run_id)
    server = build_server(scenario, variant, RunRegistry(conn, scenario, variant, default_run_id=run_id))
    try:
        async with Client(server) as client:
            yield client
    finally:
        conn.close()


def rows(db: Path | str, run_id: str = "run-toy") -> list[sqlite3.Row]:
    conn = connect(db)
    try:
        return conn.execute("SELECT * FROM audit WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
    finally:
        conn.close()
