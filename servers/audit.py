"""The audit trail: one hash-chained row per tool call, appended in the same transaction as the call's changes.

Each row's hash covers its content and the previous row's hash, and the run row keeps the chain's head, so an
edited, deleted, inserted or reordered row, and a truncated tail, are all detectable by `verify`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from typing import Any, NamedTuple

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_json

from . import blobs
from .store import now_iso

__all__ = [
    "MAX_STORED_RESULT_CHARS",
    "META_FIELDS",
    "AuditRow",
    "ChainProblem",
    "Head",
    "append",
    "dump_json",
    "genesis_hash",
    "meta_genesis_hash",
    "meta_hash",
    "meta_of",
    "read_head",
    "read_rows",
    "record_meta",
    "update_run_meta",
    "verify",
]

# Column order is part of the hash definition: never reorder, only append (and bump HASH_VERSION).
_HASHED = (
    "run_id", "seq", "started_at", "ended_at", "duration_ms", "tool", "arguments", "status", "result", "error",
    "changes", "client_name", "client_version", "protocol_version", "transport",
)  # fmt: skip
_INSERT = f"INSERT INTO audit ({', '.join(_HASHED)}, prev_hash, hash) VALUES ({', '.join('?' * (len(_HASHED) + 2))})"
HASH_VERSION = "kpimcp-audit-v1"
META_VERSION = "kpimcp-meta-v1"
# A tool result longer than this (JSON characters) is stored as its size and digest only; the agent still gets
# all of it. Keeps one huge listing from growing the database by its size for every call that returns it.
MAX_STORED_RESULT_CHARS = int(os.environ.get("KPIMCP_MAX_STORED_RESULT_CHARS") or 1024 * 1024)
# The run columns the judge relies on, covered by the run_meta chain (docs/audit.md). Order is irrelevant (the
# snapshot is canonical JSON); adding a field means a new META_VERSION.
META_FIELDS = ("scenario", "scenario_version", "variant", "model", "status", "scenario_digest", "kit_version")


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
    def from_db(cls, row: sqlite3.Row, conn: sqlite3.Connection | None = None) -> AuditRow:
        """Decode a stored row; with `conn`, long values stored once (`blobs`) are read back in place."""
        data = dict(row)
        for col in ("arguments", "result", "changes"):
            if data[col] is not None:
                data[col] = json.loads(data[col])
                if conn is not None and col != "result":
                    data[col] = blobs.unpack(conn, data[col])
        return cls.model_validate(data)


class ChainProblem(BaseModel):
    """A place where the evidence does not hold: a run's chain, metadata or world (`run_id` None: the database)."""

    run_id: str | None
    seq: int | None = None
    row_id: int | None = None
    problem: str
    where: str | None = None  # what part, when not an audit row: "metadata", "world", "heads", "the chain head"

    def __str__(self) -> str:
        if self.run_id is None:
            return f"database: {self.problem}"
        where = f"row seq {self.seq} (id {self.row_id})" if self.seq is not None else (self.where or "the chain head")
        return f"run {self.run_id}: {where}: {self.problem}"


def genesis_hash(run_id: str) -> str:
    """The `prev_hash` of a run's first row: binds the chain to its run id."""
    return hashlib.sha256(f"{HASH_VERSION}:{run_id}".encode()).hexdigest()


_NONE_FIELD = (1).to_bytes(8, "big") + b"\x00"


def _fields_hash(parts: Any) -> str:
    # Length-prefixed fields: unambiguous like a JSON list, without re-escaping large results a second time.
    # A field is its length (8 bytes), then b"\x00" for None or b"\x01" and its text as UTF-8.
    chunks = []
    for part in parts:
        if part is None:
            chunks.append(_NONE_FIELD)
        else:
            data = str(part).encode()
            chunks += ((len(data) + 1).to_bytes(8, "big"), b"\x01", data)
    return hashlib.sha256(b"".join(chunks)).hexdigest()


def _row_hash(prev_hash: str, values: Any) -> str:
    return _fields_hash((HASH_VERSION, prev_hash, *[values[c] for c in _HASHED]))


def _stored_result(text: str) -> str:
    if len(text) <= MAX_STORED_RESULT_CHARS:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return _dump({"result_not_stored": {"chars": len(text), "sha256": digest, "limit": MAX_STORED_RESULT_CHARS}})


def dump_json(value: Any) -> str:
    """`value` as the audit stores it: compact JSON, NaN/inf as json.dumps writes them, anything else by `str`.

    `ValueError` (pydantic-core's serialization error) for what UTF-8 cannot hold (a lone surrogate) or what is
    nested too deeply.
    """
    # pydantic-core's serializer writes the same JSON as json.dumps(separators=(",", ":")) at a quarter of its
    # cost: the audit writes three such columns on every call, on the path a reply waits for.
    return to_json(value, fallback=str, inf_nan_mode="constants").decode()


def _dump(value: Any) -> str:
    try:
        return dump_json(value)
    except (PydanticSerializationError, ValueError, TypeError, RecursionError):
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
    arguments_json: str | None = None,
    result: Any = None,
    error: str | None = None,
    changes: list[dict[str, Any]] | None = None,
    client: dict[str, str | None] | None = None,
    head: Head | None = None,
) -> Head:
    """Append one row to a run's chain and advance the run's head. Call inside `transaction(conn)`.

    `head` is the caller's cached chain head (saves a read per call); a stale one cannot fork the chain,
    because (run_id, seq) is unique. `arguments_json` is `dump_json(arguments)` when the caller has it already.
    Returns the new head.
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
        "arguments": blobs.pack(conn, arguments, arguments_json or _dump(arguments), _dump),
        "status": status,
        "result": None if result is None else _stored_result(_dump(result)),
        "error": error,
        "changes": blobs.pack(conn, changes, _dump(changes), _dump) if changes else "[]",
        "client_name": client.get("name"),
        "client_version": client.get("version"),
        "protocol_version": client.get("protocol_version"),
        "transport": head.transport,
    }
    values["prev_hash"] = head.hash
    values["hash"] = _row_hash(head.hash, values)
    conn.execute(_INSERT, tuple(values.values()))
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
    return [AuditRow.from_db(r, conn) for r in rows]


# ---- the run's metadata chain (run_meta) ---------------------------------------------------------------------
def meta_genesis_hash(run_id: str) -> str:
    """The `prev_hash` of a run's first metadata entry."""
    return hashlib.sha256(f"{META_VERSION}:{run_id}".encode()).hexdigest()


def meta_of(run: Any) -> str:
    """The covered metadata of a run row, as the canonical JSON stored in `run_meta.meta`."""
    keys = run.keys() if hasattr(run, "keys") else run
    return json.dumps({f: run[f] if f in keys else None for f in META_FIELDS}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))  # fmt: skip


def meta_hash(prev_hash: str, entry: Any) -> str:
    """The hash of one `run_meta` entry (its stored columns)."""
    return _fields_hash((META_VERSION, prev_hash, entry["run_id"], entry["n"], entry["recorded_at"], entry["event"],
                         entry["meta"], entry["audit_seq"], entry["audit_hash"]))  # fmt: skip


def record_meta(conn: sqlite3.Connection, run_id: str, *, event: str) -> None:
    """Append the run's current metadata to its `run_meta` chain, bound to the audit head at this moment.

    Call in the same transaction as any change of a `META_FIELDS` column (creation, status change, relabel):
    `verify` reports a run whose columns differ from the chain's last entry as edited.
    """
    cols = ", ".join(META_FIELDS)
    run = conn.execute(f"SELECT {cols}, head_seq, head_hash, meta_seq, meta_hash FROM runs WHERE run_id = ?",
                       (run_id,)).fetchone()  # fmt: skip
    if run is None:
        raise LookupError(f"run {run_id!r} does not exist")
    entry = {"run_id": run_id, "n": (run["meta_seq"] or 0) + 1, "recorded_at": now_iso(), "event": event,
             "meta": meta_of(run), "audit_seq": run["head_seq"], "audit_hash": run["head_hash"]}  # fmt: skip
    entry["prev_hash"] = run["meta_hash"] or meta_genesis_hash(run_id)
    entry["hash"] = meta_hash(entry["prev_hash"], entry)
    conn.execute(f"INSERT INTO run_meta ({', '.join(entry)}) VALUES ({', '.join('?' * len(entry))})",
                 tuple(entry.values()))  # fmt: skip
    conn.execute("UPDATE runs SET meta_seq = ?, meta_hash = ? WHERE run_id = ?", (entry["n"], entry["hash"], run_id))


def update_run_meta(conn: sqlite3.Connection, run_id: str, *, event: str = "update", **fields: Any) -> None:
    """Set covered columns of a run (e.g. `scenario_digest`, `kit_version`, `status`) and record the change in its
    metadata chain. Call inside `transaction(conn)`."""
    unknown = set(fields) - set(META_FIELDS)
    if unknown:
        raise ValueError(f"not run metadata: {', '.join(sorted(unknown))}")
    if fields:
        sets = ", ".join(f"{k} = ?" for k in fields)
        conn.execute(f"UPDATE runs SET {sets}, updated_at = ? WHERE run_id = ?", (*fields.values(), now_iso(), run_id))
    record_meta(conn, run_id, event=event)


def verify(conn: sqlite3.Connection, run_id: str | None = None) -> tuple[int, list[ChainProblem]]:
    """Check the evidence of one run, or of every run, in one read snapshot. Returns (runs checked, problems).

    See `kpimcp.servers.integrity.check` for the full report (heads comparison, notes).
    """
    from .integrity import check

    report = check(conn, run_id)
    return report.checked, report.problems
