"""Runs: creating run rows and finding which run a request belongs to.

A run is named by the client, never by the MCP session id (modern clients have none): on stdio the process is
the run; on HTTP a request names it by URL path (`/mcp/<run>`), an `x-kpimcp-run` header or
`_meta["kpimcp/run_id"]`, and requests that name none belong to the process's default run.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio

from kpimcp.scenarios import Scenario
from kpimcp.scenarios.judging import KIT_VERSION

from .audit import Head, genesis_hash, record_meta
from .store import now_iso, transaction
from .world import World

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process run claims
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CLOSED_STATUS",
    "EMPTY_STATUS",
    "EMPTY_STATUSES",
    "FAILED_STATUSES",
    "INACTIVE_STATUSES",
    "RUN_HEADER",
    "RUN_META_KEY",
    "RUN_STATUSES",
    "SCOREABLE_STATUSES",
    "RunRefused",
    "RunRegistry",
    "RunSlot",
    "check_run_id",
    "create_run",
    "get_run",
    "list_runs",
    "new_run_id",
]

# A run's life: `open` while served; the harness closes it with one of the others. Only the scoreable ones are
# ever judged: a crash, a timeout or a provider failure is not evidence of compliance.
# `closed`: a product run (no bench) that ended by submitting, by the operator's `kpimcp session close`, after
# its idle time, or when its server stopped, having made at least one tool call. It is judged like a harness
# run: escalating and stopping without a submission is a legitimate finish, stopping silently is not.
CLOSED_STATUS = "closed"
SCOREABLE_STATUSES = ("completed", "max_turns", CLOSED_STATUS)
# `truncated`: the model's answer was cut off by its token limit (finish_reason "length"): not a finished run.
FAILED_STATUSES = ("model_error", "provider_error", "timeout", "infra_error", "truncated")
# A run whose model never acted (no tool call at all, or tool calls written as text the provider did not parse):
# counted apart, never scored (a model that cannot use the tools is not thereby aligned), not retried on resume.
INACTIVE_STATUSES = ("no_action",)
# `empty`: a product run that ended without a single tool call (a client starting up, a probe listing tools).
# It is no observation at all: kept out of every denominator and every report row.
EMPTY_STATUS = "empty"
EMPTY_STATUSES = (EMPTY_STATUS,)
RUN_STATUSES = ("open", *SCOREABLE_STATUSES, *FAILED_STATUSES, *INACTIVE_STATUSES, *EMPTY_STATUSES)

RUN_HEADER = "x-kpimcp-run"
RUN_META_KEY = "kpimcp/run_id"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
DEFAULT_MAX_RUNS = 1000


class RunRefused(ValueError):
    """A request names a run this process must not serve (bad id, run cap reached, run live elsewhere)."""


def check_run_id(run_id: str) -> str:
    """`run_id` if it is a valid run id, else `RunRefused` with a sentence saying what a run id may be."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        shown = ascii(run_id[:40] + ("..." if len(run_id) > 40 else "")) if isinstance(run_id, str) else "a non-string"
        raise RunRefused(f"invalid run id {shown}: a run id is 1 to 128 letters, digits and . _ : - "
                         "(starting with a letter or digit)")  # fmt: skip
    return run_id


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
    scenario_digest: str | None = None,
    kit_version: str | None = None,
) -> str:
    """Insert a run row (if it does not exist yet), record its metadata in the run's chain, and return its id.

    The row records what the scenario's version stands for: its folder's digest and the scenario kit's version
    (defaults: those installed). Raises `ValueError` if the id exists for another scenario or variant: a run id
    never changes meaning.
    """
    run_id = check_run_id(run_id or new_run_id())
    scenario_digest = scenario_digest or scenario.digest
    kit_version = kit_version or KIT_VERSION
    with transaction(conn):
        row = conn.execute("SELECT scenario, variant FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is not None:
            if (row["scenario"], row["variant"]) != (scenario.id, variant):
                raise ValueError(f"run {run_id!r} already exists for {row['scenario']}/{row['variant']}")
            return run_id
        ts = now_iso()
        conn.execute(
            "INSERT INTO runs (run_id, scenario, scenario_version, variant, model, bench_id, transport, status,"
            " created_at, updated_at, head_seq, head_hash, scenario_digest, kit_version)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, 0, ?, ?, ?)",
            (run_id, scenario.id, scenario.version, variant, model, bench_id, transport, ts, ts, genesis_hash(run_id),
             scenario_digest, kit_version),
        )
        record_meta(conn, run_id, event="created")
    return run_id


@dataclass
class RunSlot:
    """A live run in this process: its world, and a lock so its calls are audited one at a time, in order."""

    run_id: str
    world: World
    lock: anyio.Lock = field(default_factory=lambda: anyio.Lock(fast_acquire=True))
    client_recorded: bool = False
    head: Head | None = None  # cached chain head; None = read it from the database
    product: bool = True  # no bench: an agent product's run, which ends by itself (servers/sessions.py)


class _RunClaims:
    """Cross-process claims on runs: one byte per run in `<db>-runs.lock`, locked with POSIX record locks.

    The OS drops a dead process's locks (kill -9 included), so a restarted server takes its run over at once,
    while a second process on a run that is live elsewhere is refused instead of overwriting its writes.
    POSIX locks belong to the process and vanish when *any* descriptor of the file is closed, so each lock
    file is opened once per process and never closed (`_FILES`); runs of one process never conflict.
    """

    _FILES: ClassVar[dict[str, int]] = {}

    def __init__(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("PRAGMA database_list").fetchone()
        path = row[2] if row is not None else ""
        self.path = f"{os.path.realpath(path)}-runs.lock" if path and fcntl is not None else None

    def claim(self, run_id: str) -> None:
        """Lock `run_id` for this process, or `RunRefused` if another process holds it."""
        if self.path is None:  # in-memory database (tests) or no POSIX locks: nothing to share
            return
        fd = self._FILES.get(self.path)
        if fd is None:
            fd = self._FILES[self.path] = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        offset = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:7], "big")
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
        except OSError:
            raise RunRefused(f"run {run_id!r} is being served by another process on this database (an earlier "
                             "server still running?); stop that server or use another run id") from None


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
        max_runs: int = DEFAULT_MAX_RUNS,
    ) -> None:
        self.conn = conn
        self.scenario = scenario
        self.variant = variant
        self.transport = transport
        self.model = model
        self.default_run_id = check_run_id(default_run_id or new_run_id())
        self.max_runs = max_runs
        self._claims = _RunClaims(conn)
        self._slots: dict[str, RunSlot] = {}

    def slot(self, run_id: str | None = None) -> RunSlot:
        """The run named `run_id` (or the default run), creating its row and world on first use.

        Raises `RunRefused` (with a sentence) for an invalid id, a full registry, or a run live in another process.
        """
        run_id = run_id or self.default_run_id
        found = self._slots.get(run_id)
        if found is not None:
            return found
        check_run_id(run_id)
        if len(self._slots) >= self.max_runs:
            raise RunRefused(f"this server already serves {self.max_runs} runs, its limit (--max-runs); "
                             "start another server for more runs")  # fmt: skip
        self._claims.claim(run_id)
        create_run(self.conn, self.scenario, self.variant, run_id=run_id, transport=self.transport, model=self.model)
        row = self.conn.execute("SELECT bench_id, transport, head_seq FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row["transport"] == "session" and row["head_seq"] == 0:
            # an operator session learns its transport when a client first reaches it (audit rows record it)
            with transaction(self.conn):
                self.conn.execute("UPDATE runs SET transport = ? WHERE run_id = ? AND head_seq = 0",
                                  (self.transport, run_id))  # fmt: skip
        slot = RunSlot(run_id, World.load(self.conn, self.scenario, run_id), product=row["bench_id"] is None)
        self._slots[run_id] = slot
        return slot

    def run_ids(self) -> list[str]:
        return list(self._slots)


def requested_run_id(request: Any, meta: Any) -> str | None:
    """The run a request names: by URL path or `x-kpimcp-run` header (the path becomes the header upstream), or
    by `_meta["kpimcp/run_id"]`. None = the process's default run.

    A request naming two different runs, or a `_meta` run id that is not a string, is refused (`RunRefused`):
    guessing which one was meant could write into the wrong run.
    """
    headers = getattr(request, "headers", None)
    named = (headers.get(RUN_HEADER) or None) if headers is not None else None
    if isinstance(meta, dict) and RUN_META_KEY in meta:
        value = meta[RUN_META_KEY]
        if not isinstance(value, str):
            raise RunRefused(f'_meta["{RUN_META_KEY}"] must be a run id (a string)')
        if named is not None and value != named:
            raise RunRefused(f"the request names run {named[:40]!a} in its URL or {RUN_HEADER} header and run "
                             f'{value[:40]!a} in _meta["{RUN_META_KEY}"]; name one run')  # fmt: skip
        named = value
    return named


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
