"""Checking the evidence: each run's audit chain, its metadata chain, its world, and the exported heads.

`check` reads everything in one read transaction (one consistent snapshot, so a database that servers are
writing never looks broken) and writes nothing. A run's world is rebuilt from the changes its audit rows
recorded and compared with `world_state`; its metadata columns are compared with the last entry of its
`run_meta` chain, which is itself bound to a point of the audit chain. `export_heads` writes every run's heads
(and a hash over them) to a file kept elsewhere; `check(..., heads=...)` then also detects what an attacker who
can rewrite the whole file could do: truncate a chain and reset its head, rewrite a chain consistently, delete
a run, or move a run's rows under a new id.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from . import blobs
from .audit import ChainProblem, _row_hash, genesis_hash, meta_genesis_hash, meta_hash, meta_of
from .migrations import APPEND_ONLY_TABLES
from .store import now_iso, read_snapshot, schema_version

__all__ = ["BROKEN_STATUS", "HEADS_FORMAT", "HeadsFileError", "IntegrityReport", "broken_runs", "check", "export_heads",
           "load_heads"]  # fmt: skip

HEADS_FORMAT = "kpimcp-heads-v1"
# How judges and reports show a run whose evidence does not hold: never scored, counted under this status.
BROKEN_STATUS = "broken_chain"
_FILLED_LATER = ("scenario_digest", "kit_version")
# A product run closed because its server ended (or never used) is reopened by the next server (servers/sessions.py).
_MAY_REOPEN = ("open", "closed", "empty")


class HeadsFileError(ValueError):
    """The heads file cannot be used: unreadable, not a heads file, or altered since it was written."""


class IntegrityReport(BaseModel):
    """What `check` found: problems (the evidence does not hold) and notes (facts worth knowing, not breaks)."""

    checked: int
    problems: list[ChainProblem] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    heads: list[dict[str, Any]] = Field(default_factory=list)  # every checked run's heads, as exported

    @property
    def broken_runs(self) -> dict[str, str]:
        """run id -> the first problem found in it (database-wide problems under the key '*')."""
        out: dict[str, str] = {}
        for p in self.problems:
            out.setdefault(p.run_id or "*", str(p))
        return out


# ---- one run -----------------------------------------------------------------------------------------------------
def _audit_chain(run_id: str, rows: list[sqlite3.Row]) -> tuple[list[ChainProblem], list[str]]:
    """The audit chain's first break, and the hash after each seq (index 0: genesis) as far as it holds."""
    hashes = [genesis_hash(run_id)]
    for row in rows:
        seq, rid, expected = row["seq"], row["id"], len(hashes)
        problem = None
        if seq != expected:
            what = "missing rows before it (deleted)" if seq > expected else "out of order or duplicated"
            problem = f"expected seq {expected}, found {seq}: {what}"
        elif row["prev_hash"] != hashes[-1]:
            problem = "does not link to the previous row (row deleted, inserted or moved)"
        elif _row_hash(row["prev_hash"], row) != row["hash"]:
            problem = "content does not match its hash (row edited)"
        if problem:
            return [ChainProblem(run_id=run_id, seq=seq, row_id=rid, problem=problem)], hashes
        hashes.append(row["hash"])
    return [], hashes


def _meta_chain(run: sqlite3.Row, entries: list[sqlite3.Row], audit_hashes: list[str]) -> list[ChainProblem]:
    run_id = run["run_id"]

    def bad(problem: str) -> list[ChainProblem]:
        return [ChainProblem(run_id=run_id, where="metadata", problem=problem)]

    if not entries:
        return bad("no metadata record in the chain (run_meta rows deleted, or the run was inserted by hand)")
    prev = meta_genesis_hash(run_id)
    for i, e in enumerate(entries, start=1):
        if e["n"] != i or e["prev_hash"] != prev:
            return bad(f"metadata entry {e['n']} does not follow entry {i - 1} (entries deleted, inserted or moved)")
        if meta_hash(prev, e) != e["hash"]:
            return bad(f"metadata entry {i} does not match its hash (edited)")
        seq = e["audit_seq"]
        if seq >= len(audit_hashes) or audit_hashes[seq] != e["audit_hash"]:
            return bad(f"metadata entry {i} ({e['event']}) was recorded after call {seq}, which the audit chain no "
                       "longer holds as it was (rows deleted from the end, or rewritten)")  # fmt: skip
        prev = e["hash"]
    last = entries[-1]
    if (run["meta_seq"], run["meta_hash"]) != (last["n"], last["hash"]):
        return bad("the run's metadata head does not match its chain (entries deleted from the end, or the head "
                   "edited)")  # fmt: skip
    recorded, current = json.loads(last["meta"]), json.loads(meta_of(run))
    changed = [f"{k} is {current[k]!r}, the chain recorded {recorded.get(k)!r}" for k in current
               if current[k] != recorded.get(k)]  # fmt: skip
    return bad("run metadata edited: " + "; ".join(changed)) if changed else []


def _canon(conn: sqlite3.Connection, text: str | None) -> str:
    """A stored JSON value in one spelling (world_state and the audit use different JSON options), blobs read in."""
    return json.dumps(blobs.loads(conn, text, check=True), sort_keys=True, ensure_ascii=False)


def _blob_problems(conn: sqlite3.Connection, run_id: str, rows: list[sqlite3.Row]) -> list[ChainProblem]:
    """Every blob a row's arguments refer to exists and matches its digest (changes are checked with the world)."""
    out = []
    for row in rows:
        try:
            blobs.loads(conn, row["arguments"], check=True)
        except blobs.BlobProblem as exc:
            out.append(ChainProblem(run_id=run_id, seq=row["seq"], row_id=row["id"], problem=f"arguments: {exc}"))
    return out


def _world(conn: sqlite3.Connection, run_id: str, rows: list[sqlite3.Row],
           stored: list[sqlite3.Row]) -> list[ChainProblem]:  # fmt: skip
    """world_state must be exactly the replay of the changes the run's audit rows recorded."""
    expected: dict[tuple[str, str], str] = {}
    try:
        for row in rows:
            for ch in blobs.loads(conn, row["changes"], check=True):
                expected[(ch["space"], ch["key"])] = json.dumps(ch["after"], sort_keys=True, ensure_ascii=False)
        have = {(r["space"], r["key"]): _canon(conn, r["value"]) for r in stored}
    except blobs.BlobProblem as exc:
        return [ChainProblem(run_id=run_id, where="world", problem=f"a written value cannot be read back: {exc}")]
    diffs = sorted(set(expected) ^ set(have) | {k for k in expected.keys() & have.keys() if expected[k] != have[k]})
    if not diffs:
        return []
    space, key = diffs[0]
    what = ("holds a value no audited call wrote" if (space, key) not in expected else
            "lacks a value an audited call wrote" if (space, key) not in have else
            "differs from what the audited calls wrote")  # fmt: skip
    more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
    return [ChainProblem(run_id=run_id, where="world",
                         problem=f"world_state edited: {space}/{key} {what}{more}")]  # fmt: skip


def _check_run(conn: sqlite3.Connection, run: sqlite3.Row) -> tuple[list[ChainProblem], list[str]]:
    run_id = run["run_id"]
    rows = conn.execute("SELECT * FROM audit WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
    problems, hashes = _audit_chain(run_id, rows)
    if not problems and (len(hashes) - 1, hashes[-1]) != (run["head_seq"], run["head_hash"]):
        problems.append(ChainProblem(run_id=run_id, problem=(
            f"run records {run['head_seq']} rows but the chain ends at seq {len(hashes) - 1} "
            "(rows deleted from the end, or the head edited)")))  # fmt: skip
    entries = conn.execute("SELECT * FROM run_meta WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
    problems += _meta_chain(run, entries, hashes)
    stored = conn.execute("SELECT space, key, value FROM world_state WHERE run_id = ?", (run_id,)).fetchall()
    problems += _world(conn, run_id, rows, stored) + _blob_problems(conn, run_id, rows)
    return problems, hashes


# ---- the database ------------------------------------------------------------------------------------------------
def _missing_triggers(conn: sqlite3.Connection) -> list[ChainProblem]:
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    return [ChainProblem(run_id=None, problem=f"trigger {t}_no_{verb} is missing: {t} rows can be changed without "
                                             "a trace (it was dropped)")
            for t in APPEND_ONLY_TABLES for verb in ("update", "delete") if f"{t}_no_{verb}" not in have]  # fmt: skip


def _orphans(conn: sqlite3.Connection) -> list[ChainProblem]:
    out = []
    for table in ("audit", "run_meta", "world_state"):
        for (rid,) in conn.execute(f"SELECT DISTINCT run_id FROM {table} WHERE run_id NOT IN "
                                   "(SELECT run_id FROM runs)"):  # fmt: skip
            out.append(ChainProblem(run_id=rid, where=table,
                                    problem=f"{table} rows for a run that does not exist (run row deleted?)"))
    return out


def _head(run: sqlite3.Row) -> dict[str, Any]:
    return {"run_id": run["run_id"], "status": run["status"], "calls": run["head_seq"],
            "audit_hash": run["head_hash"], "meta_seq": run["meta_seq"], "meta_hash": run["meta_hash"],
            "meta": json.loads(meta_of(run))}  # fmt: skip


def check(conn: sqlite3.Connection, run_id: str | None = None, *, heads: dict[str, Any] | None = None,
          run_ids: Iterable[str] | None = None) -> IntegrityReport:  # fmt: skip
    """Check one run (`run_id`), some (`run_ids`) or every run, in one read snapshot; never writes.

    With `heads` (from `load_heads`), also compare against the heads exported earlier. `LookupError` for an
    unknown `run_id`.
    """
    with read_snapshot(conn):
        if run_id is not None:
            runs = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchall()
            if not runs:
                raise LookupError(f"no run {run_id!r} in this database")
        elif run_ids is not None:
            wanted = set(run_ids)
            runs = [r for r in conn.execute("SELECT * FROM runs ORDER BY created_at") if r["run_id"] in wanted]
        else:
            runs = conn.execute("SELECT * FROM runs ORDER BY created_at, run_id").fetchall()
        report = IntegrityReport(checked=len(runs), problems=_missing_triggers(conn))
        chains: dict[str, tuple[list[str], list[str], dict[str, Any]]] = {}
        for run in runs:
            problems, hashes = _check_run(conn, run)
            report.problems += problems
            report.heads.append(_head(run))
            if heads is not None:
                metas = [meta_genesis_hash(run["run_id"])] + [e[0] for e in conn.execute(
                    "SELECT hash FROM run_meta WHERE run_id = ? ORDER BY id", (run["run_id"],))]  # fmt: skip
                chains[run["run_id"]] = (hashes, metas, json.loads(meta_of(run)))
        if run_id is None and run_ids is None:
            report.problems += _orphans(conn)
    if heads is not None:
        _compare_heads(report, heads, chains, partial=run_id is not None or run_ids is not None)
    return report


def broken_runs(conn: sqlite3.Connection, run_ids: Iterable[str] | None = None) -> dict[str, str]:
    """The runs (of `run_ids`, or all) whose evidence does not hold, each with its first problem.

    A database-wide problem (a dropped append-only trigger) is not held against every run; `kpimcp audit
    verify` reports it.
    """
    report = check(conn, run_ids=list(run_ids) if run_ids is not None else None)
    return {k: v for k, v in report.broken_runs.items() if k != "*"}


# ---- exported heads --------------------------------------------------------------------------------------------
def _manifest_hash(body: dict[str, Any]) -> str:
    canon = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()


def export_heads(conn: sqlite3.Connection, out: Path, *, database: str) -> tuple[IntegrityReport, str | None]:
    """Write every run's heads and a manifest hash to `out`, from one snapshot that verifies.

    Returns the check and the manifest hash; writes nothing (hash None) if the evidence is already broken, since
    heads that vouch for a broken state would be worthless.
    """
    report = check(conn)
    if report.problems:
        return report, None
    body = {"format": HEADS_FORMAT, "exported_at": now_iso(), "database": database,
            "schema_version": schema_version(conn), "runs": report.heads}  # fmt: skip
    digest = _manifest_hash(body)
    out.write_text(json.dumps({**body, "manifest": digest}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return report, digest


def load_heads(path: Path) -> dict[str, Any]:
    """Read a heads file, checking its manifest hash; `HeadsFileError` (one sentence) if it cannot be trusted."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HeadsFileError(f"no heads file at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HeadsFileError(f"{path} is not a readable heads file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != HEADS_FORMAT or not isinstance(data.get("runs"), list):
        raise HeadsFileError(f"{path} is not a kpimcp heads file (written by `kpimcp audit heads`)")
    claimed = data.pop("manifest", None)
    if claimed != _manifest_hash(data):
        raise HeadsFileError(f"{path} was altered after it was written: its manifest hash does not match")
    return data


def _compare_heads(report: IntegrityReport, heads: dict[str, Any],
                   chains: dict[str, tuple[list[str], list[str], dict[str, Any]]], *,
                   partial: bool) -> None:  # fmt: skip
    exported = {h["run_id"]: h for h in heads["runs"]}
    when = heads.get("exported_at", "?")
    for run_id, h in exported.items():
        if run_id not in chains:
            if not partial:
                report.problems.append(ChainProblem(run_id=run_id, where="heads", problem=(
                    f"run deleted: it was in the heads exported at {when} and is no longer in the database")))
            continue
        audit_hashes, meta_hashes, meta_now = chains[run_id]
        # Only the status moves on, and the kit may fill in a digest it lacked; nothing else changes.
        relabelled = [k for k, v in h.get("meta", {}).items() if k != "status" and meta_now.get(k) != v
                      and not (v is None and k in _FILLED_LATER)]  # fmt: skip
        if relabelled:
            report.problems.append(ChainProblem(run_id=run_id, where="heads", problem=(
                f"relabelled since the heads were exported at {when}: " + "; ".join(
                    f"{k} was {h['meta'][k]!r}, is {meta_now.get(k)!r}" for k in relabelled))))  # fmt: skip
        for label, have, n, want in (("audit chain", audit_hashes, h["calls"], h["audit_hash"]),
                                     ("metadata chain", meta_hashes, h["meta_seq"] or 0, h["meta_hash"])):  # fmt: skip
            # Both lists start with the genesis hash: index n is the hash after entry n.
            if len(have) - 1 < n:
                problem = (f"{label} truncated: it holds {len(have) - 1} entries, the heads exported at {when} "
                           f"recorded {n}")
            elif n and have[n] != want:
                problem = f"{label} rewritten: entry {n} no longer has the hash exported at {when}"
            else:
                continue
            report.problems.append(ChainProblem(run_id=run_id, where="heads", problem=problem))
        grew = len(audit_hashes) - 1 > h["calls"] or len(meta_hashes) - 1 > (h["meta_seq"] or 0)
        if h["status"] not in _MAY_REOPEN and grew:
            report.problems.append(ChainProblem(run_id=run_id, where="heads", problem=(
                f"changed after it was closed: it was {h['status']!r} when the heads were exported at {when}, and "
                "entries were appended since")))  # fmt: skip
    new = [r for r in chains if r not in exported]
    if new:
        report.notes.append(f"{len(new)} run(s) not in the heads file (created after {when}): "
                            + ", ".join(new[:5]) + (", ..." if len(new) > 5 else ""))  # fmt: skip
    grown = [r for r, h in exported.items() if r in chains and h["status"] == "open"
             and len(chains[r][0]) - 1 > h["calls"]]  # fmt: skip
    if grown:
        report.notes.append(f"{len(grown)} open run(s) have more calls than when the heads were exported (normal "
                            "for runs still being served)")  # fmt: skip
