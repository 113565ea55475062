"""The results database's schema, as numbered migration steps (sqlite-utils `Migrations`).

Every table of the results database — the audit's, the harness's, the judges' — is created here, so one
version number (`schema_version`, the count of steps applied) says what a file holds. Writers apply pending
steps on open (`kpimcp.servers.store.connect`); readers never do, and refuse an older file with a sentence.

Adding a step (new table, column, index, FTS): append a function decorated `@STEPS(name="NNNN_what")` at the end
of this module, using the next number. Never edit or reorder an existing step: databases in the wild have applied
it. A step runs inside the writer's `BEGIN IMMEDIATE` transaction (sqlite-utils nests it in a savepoint), so a
failing step leaves the file as it was, and two processes opening one file never both apply it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database

__all__ = ["MIGRATIONS_TABLE", "MIGRATION_SET", "SCHEMA_VERSION", "STEPS", "Steps", "applied_steps",
           "create_search_tables", "pending_steps"]  # fmt: skip

MIGRATION_SET = "kpimcp"
# sqlite-utils' `Migrations.migrations_table`: where applied steps are recorded (a test holds the two equal).
MIGRATIONS_TABLE = "_sqlite_migrations"
StepFunction = Callable[["Database"], None]


class Steps:
    """The ordered schema steps, applied with sqlite-utils' `Migrations`.

    sqlite-utils (and numpy, which it imports when present) is imported only when a step is pending: a server
    opening an up-to-date database (every start but the first) reads the applied steps with one query and
    starts about 90 ms sooner.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.steps: list[tuple[str, StepFunction]] = []

    def __call__(self, *, name: str) -> Callable[[StepFunction], StepFunction]:
        """Register the decorated function as the next step, called `name`."""

        def register(fn: StepFunction) -> StepFunction:
            if name in self.names:
                raise ValueError(f"schema step {name!r} is registered twice")
            self.steps.append((name, fn))
            return fn

        return register

    @property
    def names(self) -> list[str]:
        """The steps' names, in order."""
        return [name for name, _ in self.steps]

    def apply(self, conn: sqlite3.Connection) -> None:
        """Apply the steps `conn`'s file has not applied, each recorded as sqlite-utils records it."""
        from sqlite_utils import Database
        from sqlite_utils.migrations import Migrations

        migrations = Migrations(self.name)
        for name, fn in self.steps:
            migrations(name=name)(fn)
        migrations.apply(Database(conn, execute_plugins=False, recursive_triggers=False))


STEPS = Steps(MIGRATION_SET)

# Triggers that make the audit evidence append-only; `verify` reports any that is missing.
APPEND_ONLY_TABLES = ("audit", "run_meta", "blobs")


def _append_only(db: Database, table: str) -> None:
    for verb in ("update", "delete"):
        db.execute(f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb} BEFORE {verb.upper()} ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} rows are append-only'); END")  # fmt: skip


def _add_missing_columns(db: Database, table: str, columns: dict[str, str]) -> None:
    have = db[table].columns_dict
    for name, kind in columns.items():
        if name not in have:
            db[table].add_column(name, kind)


@STEPS(name="0001_baseline")
def _baseline(db: Database) -> None:
    """Runs, the audit chain, the worlds, the harness's and the judges' tables, as they were before versioning.

    Idempotent over the unversioned databases written before it (tables exist, some columns may not).
    """
    db["runs"].create({
        "run_id": str, "scenario": str, "scenario_version": int, "variant": str, "model": str, "bench_id": str,
        "transport": str, "client_name": str, "client_version": str, "protocol_version": str, "status": str,
        "created_at": str, "updated_at": str, "head_seq": int, "head_hash": str,
    }, pk="run_id", not_null={"scenario", "scenario_version", "variant", "status", "created_at", "updated_at",
                              "head_seq", "head_hash"},
        defaults={"status": "open", "head_seq": 0}, if_not_exists=True)  # fmt: skip
    db.execute("CREATE INDEX IF NOT EXISTS runs_scenario ON runs(scenario, variant)")
    db.execute("""CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(run_id), seq INTEGER NOT NULL,
        started_at TEXT NOT NULL, ended_at TEXT NOT NULL, duration_ms REAL NOT NULL, tool TEXT NOT NULL,
        arguments TEXT NOT NULL, status TEXT NOT NULL, result TEXT, error TEXT, changes TEXT NOT NULL,
        client_name TEXT, client_version TEXT, protocol_version TEXT, transport TEXT,
        prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""")
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS audit_run_seq ON audit(run_id, seq)")
    _append_only(db, "audit")
    db.execute("""CREATE TABLE IF NOT EXISTS world_state (
        run_id TEXT NOT NULL, space TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
        PRIMARY KEY (run_id, space, key)) WITHOUT ROWID""")
    _harness_tables(db)
    _verdicts_table(db)


def _harness_tables(db: Database) -> None:
    db["benches"].create({"bench_id": str, "created_at": str, "finished_at": str, "hostname": str, "pid": int,
                          "config": str, "versions": str, "manifest": str, "summary": str}, pk="bench_id",
                         not_null={"created_at", "config", "versions", "manifest"}, if_not_exists=True)  # fmt: skip
    db["trajectory_items"].create({"run_id": str, "idx": int, "kind": str, "role": str, "name": str, "call_id": str,
                                   "content": str, "created_at": str}, pk=("run_id", "idx"),
                                  not_null={"run_id", "idx", "kind"}, if_not_exists=True)  # fmt: skip
    db["model_calls"].create({
        "run_id": str, "idx": int, "started_at": str, "finished_at": str, "duration_ms": float, "attempts": int,
        "status": str, "error": str, "input_tokens": int, "output_tokens": int, "reasoning_tokens": int,
        "cached_tokens": int,
    }, pk=("run_id", "idx"), not_null={"run_id", "idx", "started_at", "finished_at", "duration_ms", "attempts",
                                       "status"}, if_not_exists=True)  # fmt: skip
    _add_missing_columns(db, "runs", {
        "cell": "TEXT", "attempt": "INTEGER", "repeat": "INTEGER", "superseded_by": "TEXT", "error": "TEXT",
        "usage": "TEXT", "started_at": "TEXT", "finished_at": "TEXT", "duration_ms": "REAL", "turns": "INTEGER",
    })  # fmt: skip
    db.execute("CREATE INDEX IF NOT EXISTS runs_cell ON runs(cell)")
    db.execute("CREATE INDEX IF NOT EXISTS runs_bench ON runs(bench_id)")
    db.execute("CREATE VIEW IF NOT EXISTS current_runs AS SELECT * FROM runs WHERE superseded_by IS NULL")


def _verdicts_table(db: Database) -> None:
    # Raw SQL: sqlite-utils cannot express the CHECK constraints that keep a judge_error from carrying a score.
    db.execute("""CREATE TABLE IF NOT EXISTS verdicts (
        run_id TEXT NOT NULL, judge TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('rule', 'llm', 'self', 'product')),
        prompt_version TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('ok', 'judge_error')),
        score INTEGER CHECK ((status = 'ok' AND score BETWEEN 0 AND 5)
                             OR (status = 'judge_error' AND score IS NULL)),
        rule TEXT, explanation TEXT, evidence TEXT NOT NULL DEFAULT '[]', raw TEXT, created_at TEXT NOT NULL,
        PRIMARY KEY (run_id, judge, prompt_version))""")
    db.execute("CREATE INDEX IF NOT EXISTS verdicts_kind ON verdicts(kind, prompt_version)")


@STEPS(name="0002_run_metadata_chain")
def _run_metadata_chain(db: Database) -> None:
    """The run's metadata joins the evidence: `scenario_digest`, `kit_version` (filled by the scenario kit), and
    `run_meta`, an append-only hash chain of the run's metadata recorded at creation and at each change.

    Runs that predate it get one `upgrade` entry: their metadata is covered from the upgrade on.
    """
    from .audit import record_meta  # the hash definition lives with the audit chain

    _add_missing_columns(db, "runs", {"scenario_digest": "TEXT", "kit_version": "TEXT", "meta_seq": "INTEGER",
                                      "meta_hash": "TEXT"})  # fmt: skip
    db.execute("""CREATE TABLE IF NOT EXISTS run_meta (
        id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, n INTEGER NOT NULL, recorded_at TEXT NOT NULL,
        event TEXT NOT NULL, meta TEXT NOT NULL, audit_seq INTEGER NOT NULL, audit_hash TEXT NOT NULL,
        prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""")
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS run_meta_run_n ON run_meta(run_id, n)")
    _append_only(db, "run_meta")
    for (run_id,) in db.execute("SELECT run_id FROM runs WHERE meta_seq IS NULL ORDER BY created_at").fetchall():
        record_meta(db.conn, run_id, event="upgrade")


@STEPS(name="0003_model_call_finish_reason")
def _model_call_finish_reason(db: Database) -> None:
    """`model_calls.finish_reason` (the harness records why a model answer ended: `stop`, `length`, ...)."""
    _add_missing_columns(db, "model_calls", {"finish_reason": "TEXT"})


@STEPS(name="0004_search_index")
def _search_index(db: Database) -> None:
    """Full-text search over trajectories, audit rows and verdicts (`kpimcp runs --search`, harness/search.py):
    the documents, their Porter-stemmed FTS5 index, and the indexing watermarks. Filled incrementally by
    searches that can write; a read-only search reads it as it is."""
    create_search_tables(db)


def create_search_tables(db: Database) -> None:
    """The search documents, their FTS5 index and the indexing watermarks, where missing (idempotent)."""
    docs = db.table("search_docs")
    if not docs.exists():
        docs.create({"id": int, "run_id": str, "source": str, "ref": str, "text": str}, pk="id")
        docs.create_index(["run_id"])
    if not docs.detect_fts():
        docs.enable_fts(["text"], fts_version="FTS5", tokenize="porter", create_triggers=True)
    state = db.table("search_state")
    if not state.exists():
        state.create({"source": str, "mark": str}, pk="source")


@STEPS(name="0005_sessions")
def _sessions(db: Database) -> None:
    """Operator sessions of product runs (servers/sessions.py): label, transport, how they closed."""
    db["sessions"].create({"run_id": str, "agent": str, "transport": str, "created_at": str,
                           "closed_at": str, "close_reason": str, "close_note": str}, pk="run_id",
                          not_null={"created_at"}, if_not_exists=True)  # fmt: skip


@STEPS(name="0006_blobs")
def _blobs(db: Database) -> None:
    """Long written values stored once, by digest (servers/blobs.py); append-only like the audit."""
    db.execute("CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, chars INTEGER NOT NULL, text TEXT NOT NULL)")
    _append_only(db, "blobs")


# ---- reading the version (never writes) ---------------------------------------------------------------------------
SCHEMA_VERSION = len(STEPS.steps)
_KNOWN = STEPS.names


def applied_steps(conn: sqlite3.Connection) -> list[str]:
    """Names of this set's steps recorded in the file, in order ([] for a new or unversioned database)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (MIGRATIONS_TABLE,)).fetchone() is None:  # fmt: skip
        return []
    return [r[0] for r in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ?"
                                       " ORDER BY rowid", (MIGRATION_SET,))]  # fmt: skip


def pending_steps(applied: list[str]) -> list[str]:
    """Known steps not applied yet; `ValueError` if the file has steps this code does not know (it is newer)."""
    unknown = [name for name in applied if name not in _KNOWN]
    if unknown:
        raise ValueError(f"it was written by a newer kpimcp (schema step {unknown[0]!r} is unknown here); "
                         "upgrade kpimcp to open it")  # fmt: skip
    return [name for name in _KNOWN if name not in applied]
