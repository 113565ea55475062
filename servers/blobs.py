"""Large written values kept once: a long string in a call's arguments, its changes and the world is stored in
`blobs` under its sha256 and referred to by digest, so a 4 MB file written by an agent costs 4 MB, not 12.

A stored JSON column is one of three forms, and only the third is ever resolved:
- plain JSON, when it is small and names neither marker key;
- `{"$packed": 0, "value": V}`: V verbatim (it spelled a marker key itself, so it must never be resolved);
- `{"$packed": 1, "value": V}`: V with each long string replaced by `{"$blob": "<sha256>", "chars": N}`.
An agent cannot forge a reference: whatever it sends that looks like one is stored in the second form. The row's
hash covers the digests, and `verify` checks every referenced blob against its digest, so a blob edited in place
is found; the blobs table is append-only like the audit.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable
from typing import Any

__all__ = ["BLOB_MIN_CHARS", "BlobProblem", "for_display", "loads", "pack", "unpack"]

# Strings at least this long (characters) are stored once, by digest. Small values never pay for the walk: a value
# whose whole JSON is shorter cannot hold one.
BLOB_MIN_CHARS = int(os.environ.get("KPIMCP_BLOB_MIN_CHARS") or 64 * 1024)
_MARKERS = ('"$packed"', '"$blob"')


class BlobProblem(ValueError):
    """A reference whose blob is missing or does not match its digest."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _externalise(conn: sqlite3.Connection, value: Any) -> Any:
    if isinstance(value, str):
        if len(value) < BLOB_MIN_CHARS:
            return value
        digest = _digest(value)
        conn.execute("INSERT OR IGNORE INTO blobs (digest, chars, text) VALUES (?, ?, ?)", (digest, len(value), value))
        return {"$blob": digest, "chars": len(value)}
    if isinstance(value, dict):
        return {k: _externalise(conn, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_externalise(conn, v) for v in value]
    return value


def pack(conn: sqlite3.Connection, value: Any, dumped: str, dump: Callable[[Any], str]) -> str:
    """The stored form of `value`, whose plain JSON is `dumped` (`dump` writes JSON). Inside a transaction."""
    if _MARKERS[0] in dumped or _MARKERS[1] in dumped:
        return dump({"$packed": 0, "value": value})
    if len(dumped) < BLOB_MIN_CHARS:
        return dumped
    return dump({"$packed": 1, "value": _externalise(conn, value)})


def _is_wrapper(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"$packed", "value"} and value["$packed"] in (0, 1)


def _resolve(conn: sqlite3.Connection, value: Any, check: bool) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$blob", "chars"} and isinstance(value["$blob"], str):
            row = conn.execute("SELECT text FROM blobs WHERE digest = ?", (value["$blob"],)).fetchone()
            if row is None:
                raise BlobProblem(f"blob {value['$blob'][:12]}… is missing (deleted from the blobs table?)")
            if check and _digest(row[0]) != value["$blob"]:
                raise BlobProblem(f"blob {value['$blob'][:12]}… does not match its digest (edited in place)")
            return row[0]
        return {k: _resolve(conn, v, check) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(conn, v, check) for v in value]
    return value


def unpack(conn: sqlite3.Connection, parsed: Any, *, check: bool = False) -> Any:
    """The value a stored column (already parsed as JSON) stands for; `check` verifies each blob's digest.

    Raises `BlobProblem` when a referenced blob is missing or (with `check`) altered."""
    if not _is_wrapper(parsed):
        return parsed
    return _resolve(conn, parsed["value"], check) if parsed["$packed"] == 1 else parsed["value"]


def _placeholders(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$blob", "chars"}:
            return f"[{value['chars']:,} characters, stored once as sha256 {str(value['$blob'])[:12]}…]"
        return {k: _placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v) for v in value]
    return value


def for_display(text: str | None) -> str | None:
    """A stored JSON column as JSON text of what it stands for, each long value shown as a short placeholder
    (for pages and listings, which need the shape of the value, not megabytes of it)."""
    if text is None or not text.startswith('{"$packed"'):
        return text
    parsed = json.loads(text)
    if not _is_wrapper(parsed):
        return text
    return json.dumps(_placeholders(parsed["value"]) if parsed["$packed"] == 1 else parsed["value"],
                      ensure_ascii=False)


def loads(conn: sqlite3.Connection, text: str | None, *, check: bool = False) -> Any:
    """Parse and unpack a stored JSON column."""
    return None if text is None else unpack(conn, json.loads(text), check=check)
