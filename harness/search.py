"""Full-text search over a results database: trajectories, audit rows and verdict explanations.

`kpimcp runs --search backdate` finds every run whose agent wrote, called or was judged for "backdate"
("backdated", "backdating": a Porter-stemmed FTS5 index). The index lives beside the data it covers, in
`search_docs` (one row per trajectory item, audit row or verdict) and its sqlite-utils FTS5 table
`search_docs_fts`, and is brought up to date incrementally when searched, so the write paths (the audit
insert, the harness's run records) pay nothing for it.

Single entry point for schema management: `ensure_search_index(conn)` creates the tables (idempotent); the
results database's versioned migrations can call it as one migration step.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import sqlite_utils

from kpimcp.servers.migrations import create_search_tables
from kpimcp.servers.store import transaction

__all__ = ["SearchHit", "ensure_search_index", "refresh_search_index", "search_runs"]

_SOURCES = {
    # source: (query of rows newer than the last indexed rowid, how a row becomes (run_id, ref, text))
    "trajectory": "SELECT rowid, run_id, idx, kind || COALESCE(' ' || name, '') , content FROM trajectory_items"
                  " WHERE rowid > ? ORDER BY rowid",
    "audit": "SELECT id, run_id, seq, tool, tool || ' ' || arguments || ' ' || COALESCE(result, '') || ' ' ||"
             " COALESCE(error, '') FROM audit WHERE id > ? ORDER BY id",
}  # fmt: skip


@dataclass(frozen=True)
class SearchHit:
    """Where a run matched: `source` (trajectory, audit, verdict), `ref` (item index, audit seq or judge) and a
    snippet with the match in [brackets]."""

    run_id: str
    source: str
    ref: str
    snippet: str


def ensure_search_index(conn: sqlite3.Connection) -> None:
    """Create the search tables if missing (the documents, their FTS5 index and the indexing watermarks); the
    same tables the schema's step 0004 creates."""
    create_search_tables(sqlite_utils.Database(conn))


def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _mark(conn: sqlite3.Connection, source: str) -> str | None:
    row = conn.execute("SELECT mark FROM search_state WHERE source = ?", (source,)).fetchone()
    return None if row is None else row[0]


def _set_mark(conn: sqlite3.Connection, source: str, mark: str) -> None:
    conn.execute("INSERT OR REPLACE INTO search_state (source, mark) VALUES (?, ?)", (source, mark))


def _index_appended(conn: sqlite3.Connection, source: str) -> int:
    """Index rows of an append-only source (trajectory items are written once per run; audit rows never change)."""
    table = "trajectory_items" if source == "trajectory" else "audit"
    if not _table_exists(conn, table):
        return 0
    last = int(_mark(conn, source) or 0)
    rows = conn.execute(_SOURCES[source], (last,)).fetchall()
    if not rows:
        return 0
    conn.executemany("INSERT INTO search_docs (run_id, source, ref, text) VALUES (?, ?, ?, ?)",
                     [(r[1], source, f"{'item' if source == 'trajectory' else 'seq'} {r[2]}",
                       f"{r[3]}\n{r[4] or ''}") for r in rows])  # fmt: skip
    _set_mark(conn, source, str(rows[-1][0]))
    return len(rows)


def _index_verdicts(conn: sqlite3.Connection) -> int:
    """Verdicts are replaced when re-judged: re-index them all whenever the table changed (they are short)."""
    if not _table_exists(conn, "verdicts"):
        return 0
    count, latest = conn.execute("SELECT COUNT(*), MAX(created_at) FROM verdicts").fetchone()
    mark = f"{count}|{latest}"
    if _mark(conn, "verdict") == mark:
        return 0
    conn.execute("DELETE FROM search_docs WHERE source = 'verdict'")
    rows = conn.execute("SELECT run_id, judge, kind, COALESCE(rule, ''), COALESCE(explanation, '') FROM verdicts"
                        " WHERE explanation IS NOT NULL OR rule IS NOT NULL").fetchall()  # fmt: skip
    conn.executemany("INSERT INTO search_docs (run_id, source, ref, text) VALUES (?, 'verdict', ?, ?)",
                     [(r[0], f"{r[2]} {r[1]}", f"{r[3]}\n{r[4]}") for r in rows])  # fmt: skip
    _set_mark(conn, "verdict", mark)
    return len(rows)


def refresh_search_index(conn: sqlite3.Connection) -> int:
    """Index what was written since the last refresh; returns how many documents were added (0, indexing
    nothing, on a read-only connection: the index is then searched as it is)."""
    if conn.execute("PRAGMA query_only").fetchone()[0]:
        return 0
    ensure_search_index(conn)
    with transaction(conn):
        return _index_appended(conn, "trajectory") + _index_appended(conn, "audit") + _index_verdicts(conn)


def search_runs(conn: sqlite3.Connection, text: str, *, limit: int = 10_000) -> dict[str, list[SearchHit]]:
    """Runs matching `text` (words, stemmed; quoted as plain words, so any input is safe), best match first,
    with where each matched. Refreshes the index first."""
    refresh_search_index(conn)
    query = sqlite_utils.Database(conn).quote_fts(text)
    rows = conn.execute(
        "SELECT d.run_id, d.source, d.ref, snippet(search_docs_fts, 0, '[', ']', '…', 10) FROM search_docs_fts"
        " JOIN search_docs d ON d.id = search_docs_fts.rowid WHERE search_docs_fts MATCH ? ORDER BY rank LIMIT ?",
        (query, limit)).fetchall()  # fmt: skip
    out: dict[str, list[SearchHit]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(SearchHit(r[0], r[1], r[2], " ".join(str(r[3]).split())))
    return out
