"""The audit trail: one hash-chained row per tool call, appended in the same transaction as the call's changes.

Each row's hash covers its content and the previous row's hash, and the run row keeps the chain's head, so an
edited, deleted, inserted or reordered row, and a truncated tail, are all detectable by `verify`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any, NamedTuple

from pydantic import BaseModel

from .store import now_iso

__all__ = ["AuditRow", "ChainProblem", "Head", "append", "genesis_hash", "read_head", "read_rows", "verify"]

# Column order is part of the hash definition: never reorder, only append (and bump HASH_VERSION).
_HASHED = (
    "run_id", "seq", "started_at", "ended_at", "duration_ms", "tool", "arguments", "status", "result", "error",
    "changes", "client_name", "client_version", "protocol_version", "transport",
)  # fmt: skip
HASH_VERSION = "kpimcp-audit-v1"


class Head(NamedTuple):
    """The last row of a run's chain: its seq and hash (seq 0 and the genesis hash for an empty run)."""

    seq: int
    hash: str
    transport: str | None


class AuditRow(BaseModel):
    """One audited tool call, with JSON columns decoded."""

    id: int
    run_id: str
    seq: int
    started_at: str
    ended_at: str
    duration_ms: float
    tool: str
    arguments: Any
    status: str  # ok | error (the tool refused) | invalid (bad arguments, unknown tool) | crashed | unrecorded
    result: Any = None
    error: str | None = None
    changes: list[dict[str, Any]]
    client_name: str | None = None
    client_version: str | None = None
    protocol_version: str | None = None
    transport: str | None = None
    prev_hash: str
    hash: str

    @classmethod
    def from_db(cls, row: sqlite3.Row) -> AuditRow:
        data = dict(row)
        for col in ("arguments", "result", "changes"):
            if data[col] is not None:
                data[col] = json.loads(data[col])
        return cls.model_validate(data)


class ChainProblem(BaseModel):
    """A place where a run's audit chain does not hold."""

    run_id: str
    seq: int | None
    row_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"row seq {self.seq} (id {self.row_id})" if self.seq is not None else "the chain head"
        return f"run {self.run_id}: {where}: {self.problem}"


def genesis_hash(run_id: str) -> str:
    """The `prev_hash` of a run's first row: binds the chain to its run id."""
    return hashlib.sha256(f"{HASH_VERSION}:{run_id}".encode()).hexdigest()


def _row_hash(prev_hash: str, values: dict[str, Any]) -> str:
    # Length-prefixed fields: unambiguous like a JSON list, without re-escaping large results a second time.
    h = hashlib.sha256()
    for part in (HASH_VERSION, prev_hash, *[values[c] for c in _HASHED]):
        data = b"\x00" if part is None else b"\x01" + str(part).encode()
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def append(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    started_at: str,
    duration_ms: float,
    tool: str,
    arguments: Any,
    status: str,
    result: Any = None,
    error: str | None = None,
    changes: list[dict[str, Any]] | None = None,
    client: dict[str, str | None] | None = None,
    head: Head | None = None,
) -> Head:
    """Append one row to a run's chain and advance the run's head. Call inside `transaction(conn)`.

    `head` is the caller's cached chain head (saves a read per call); a stale one cannot fork the chain,
    because (run_id, seq) is unique. Returns the new head.
    """
    if head is None:
        head = read_head(conn, run_id)
    client = client or {}
    values: dict[str, Any] = {
        "run_id": run_id,
        "seq": head.seq + 1,
        "started_at": started_at,
        "ended_at": now_iso(),
        "duration_ms": round(float(duration_ms), 3),
        "tool": tool,
        "arguments": _dump(arguments),
        "status": status,
        "result": None if result is None else _dump(result),
        "error": error,
        "changes": _dump(changes or []),
        "client_name": client.get("name"),
        "client_version": client.get("version"),
        "protocol_version": client.get("protocol_version"),
        "transport": head.transport,
    }
    values["prev_hash"] = head.hash
    values["hash"] = _row_hash(head.hash, values)
    cols = ", ".join(values)
    conn.execute(f"INSERT INTO audit ({cols}) VALUES ({', '.join('?' * len(values))})", tuple(values.values()))
    conn.execute(
        "UPDATE runs SET head_seq = ?, head_hash = ?, updated_at = ? WHERE run_id = ?",
        (values["seq"], values["hash"], values["ended_at"], run_id),
    )
    return Head(values["seq"], values["hash"], head.transport)


def read_head(conn: sqlite3.Connection, run_id: str) -> Head:
    """The run's chain head as stored."""
    row = conn.execute("SELECT head_seq, head_hash, transport FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise LookupError(f"run {run_id!r} does not exist")
    return Head(row["head_seq"], row["head_hash"], row["transport"])


def read_rows(conn: sqlite3.Connection, run_id: str) -> list[AuditRow]:
    """A run's audit rows in chain order."""
    rows = conn.execute("SELECT * FROM audit WHERE run_id = ? ORDER BY seq, id", (run_id,)).fetchall()
    return [AuditRow.from_db(r) for r in rows]


def _verify_run(conn: sqlite3.Connection, run_id: str, head_seq: int, head_hash: str) -> list[ChainProblem]:
    problems: list[ChainProblem] = []
    prev = genesis_hash(run_id)
    expected_seq = 1
    for row in conn.execute("SELECT * FROM audit WHERE run_id = ? ORDER BY id", (run_id,)):
        seq, rid = row["seq"], row["id"]
        if seq != expected_seq:
            what = "missing rows before it (deleted)" if seq > expected_seq else "out of order or duplicated"
            problems.append(ChainProblem(run_id=run_id, seq=seq, row_id=rid, problem=f"expected seq {expected_seq}, "
                                         f"found {seq}: {what}"))  # fmt: skip
        if row["prev_hash"] != prev:
            problem = "does not link to the previous row (row deleted, inserted or moved)"
            problems.append(ChainProblem(run_id=run_id, seq=seq, row_id=rid, problem=problem))
        if _row_hash(row["prev_hash"], dict(row)) != row["hash"]:
            problems.append(ChainProblem(run_id=run_id, seq=seq, row_id=rid,
                                         problem="content does not match its hash (row edited)"))  # fmt: skip
        prev, expected_seq = row["hash"], seq + 1
        if problems:
            return problems  # the first break is what matters; later rows fail as a consequence
    if expected_seq - 1 != head_seq or prev != head_hash:
        problem = (f"run records {head_seq} rows but the chain ends at seq {expected_seq - 1} "
                   "(rows deleted from the end, or the head edited)")  # fmt: skip
        problems.append(ChainProblem(run_id=run_id, seq=None, row_id=None, problem=problem))
    return problems


def verify(conn: sqlite3.Connection, run_id: str | None = None) -> tuple[int, list[ChainProblem]]:
    """Check the chain of one run, or of every run. Returns (runs checked, problems found)."""
    if run_id is None:
        runs = conn.execute("SELECT run_id, head_seq, head_hash FROM runs ORDER BY created_at").fetchall()
    else:
        runs = conn.execute("SELECT run_id, head_seq, head_hash FROM runs WHERE run_id = ?", (run_id,)).fetchall()
        if not runs:
            raise LookupError(f"no run {run_id!r} in this database")
    problems: list[ChainProblem] = []
    for r in runs:
        problems += _verify_run(conn, r["run_id"], r["head_seq"], r["head_hash"])
    orphans = conn.execute("SELECT DISTINCT run_id FROM audit WHERE run_id NOT IN (SELECT run_id FROM runs)")
    problems += [ChainProblem(run_id=o[0], seq=None, row_id=None, problem="audit rows for a run that does not exist")
                 for o in orphans]  # fmt: skip
    return len(runs), problems
