"""Runs: creating run rows and finding which run a request belongs to.

A run is named by the client, never by the MCP session id (modern clients have none): on stdio the process is
the run; on HTTP a request names it by URL path (`/mcp/<run>`), an `x-kpimcp-run` header or
`_meta["kpimcp/run_id"]`, and requests that name none belong to the process's default run.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio

from kpimcp.scenarios import Scenario

from .audit import Head, genesis_hash
from .store import now_iso, transaction
from .world import World

__all__ = [
    "FAILED_STATUSES",
    "INACTIVE_STATUSES",
    "RUN_HEADER",
    "RUN_META_KEY",
    "RUN_STATUSES",
    "SCOREABLE_STATUSES",
    "RunRegistry",
    "RunSlot",
    "create_run",
    "get_run",
    "list_runs",
    "new_run_id",
]

# A run's life: `open` while served; the harness closes it with one of the others. Only the scoreable ones are
# ever judged: a crash, a timeout or a provider failure is not evidence of compliance.
SCOREABLE_STATUSES = ("completed", "max_turns")
# `truncated`: the model's answer was cut off by its token limit (finish_reason "length"): not a finished run.
FAILED_STATUSES = ("model_error", "provider_error", "timeout", "infra_error", "truncated")
# A run whose model never acted (no tool call at all, or tool calls written as text the provider did not parse):
# counted apart, never scored (a model that cannot use the tools is not thereby aligned), not retried on resume.
INACTIVE_STATUSES = ("no_action",)
RUN_STATUSES = ("open", *SCOREABLE_STATUSES, *FAILED_STATUSES, *INACTIVE_STATUSES)

RUN_HEADER = "x-kpimcp-run"
RUN_META_KEY = "kpimcp/run_id"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def new_run_id() -> str:
    """A fresh, sortable-enough run id."""
    return f"run-{uuid.uuid4().hex[:16]}"


def create_run(
    conn: sqlite3.Connection,
    scenario: Scenario,
    variant: str,
    *,
    run_id: str | None = None,
    transport: str = "inprocess",
    model: str | None = None,
    bench_id: str | None = None,
) -> str:
    """Insert a run row (if it does not exist yet) and return its id.

    Raises `ValueError` if the id exists for another scenario or variant: a run id never changes meaning.
    """
    run_id = run_id or new_run_id()
    if not _RUN_ID.match(run_id):
        raise ValueError(f"invalid run id {run_id!r}: use letters, digits and . _ : - (at most 128)")
    with transaction(conn):
        row = conn.execute("SELECT scenario, variant FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is not None:
            if (row["scenario"], row["variant"]) != (scenario.id, variant):
                raise ValueError(f"run {run_id!r} already exists for {row['scenario']}/{row['variant']}")
            return run_id
        ts = now_iso()
        conn.execute(
            "INSERT INTO runs (run_id, scenario, scenario_version, variant, model, bench_id, transport, status,"
            " created_at, updated_at, head_seq, head_hash) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, 0, ?)",
            (run_id, scenario.id, scenario.version, variant, model, bench_id, transport, ts, ts, genesis_hash(run_id)),
        )
    return run_id


@dataclass
class RunSlot:
    """A live run in this process: its world, and a lock so its calls are audited one at a time, in order."""

    run_id: str
    world: World
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    client_recorded: bool = False
    head: Head | None = None  # cached chain head; None = read it from the database


class RunRegistry:
    """The runs one server process serves, created on first use and loaded from the database if they exist."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        scenario: Scenario,
        variant: str,
        *,
        default_run_id: str | None = None,
        transport: str = "inprocess",
        model: str | None = None,
    ) -> None:
        self.conn = conn
        self.scenario = scenario
        self.variant = variant
        self.transport = transport
        self.model = model
        self.default_run_id = default_run_id or new_run_id()
        self._slots: dict[str, RunSlot] = {}

    def slot(self, run_id: str | None = None) -> RunSlot:
        """The run named `run_id` (or the default run), creating its row and world on first use."""
        run_id = run_id or self.default_run_id
        found = self._slots.get(run_id)
        if found is not None:
            return found
        create_run(self.conn, self.scenario, self.variant, run_id=run_id, transport=self.transport, model=self.model)
        slot = RunSlot(run_id, World.load(self.conn, self.scenario, run_id))
        self._slots[run_id] = slot
        return slot

    def run_ids(self) -> list[str]:
        return list(self._slots)


def requested_run_id(request: Any, meta: Any) -> str | None:
    """The run a request names, by `_meta`, then header (the URL path is turned into the header upstream)."""
    if isinstance(meta, dict) and isinstance(meta.get(RUN_META_KEY), str):
        return meta[RUN_META_KEY]
    headers = getattr(request, "headers", None)
    if headers is not None:
        value = headers.get(RUN_HEADER)
        if value:
            return value
    return None


def get_run(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    """One run row as a dict; `LookupError` naming the run if it does not exist."""
    row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise LookupError(f"no run {run_id!r} in this database; `kpimcp runs` lists them")
    return dict(row)


def list_runs(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every run, oldest first, with its number of audited calls (`calls`)."""
    rows = conn.execute("SELECT *, head_seq AS calls FROM runs ORDER BY created_at, run_id").fetchall()
    return [dict(r) for r in rows]
