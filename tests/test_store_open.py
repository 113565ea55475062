"""Opening results databases: readers change nothing and read read-only media; anything that is not a current
kpimcp database gets one sentence and exit 2; writers create and upgrade the schema (versioned steps)."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from toy_support import TOY, toy_client

from kpimcp.harness.cli import main
from kpimcp.servers.integrity import check
from kpimcp.servers.migrations import MIGRATIONS_TABLE, SCHEMA_VERSION, STEPS, applied_steps
from kpimcp.servers.store import UnusableDatabase, connect, open_readonly, schema_version

READERS = [["runs"], ["audit", "verify"], ["audit", "show", "run-toy"], ["db", "info"]]


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _toy_db(path: Path) -> Path:
    async def go() -> None:
        async with toy_client(path) as c:
            await c.call_tool("recount", {"sku": "B2", "counted": 4})

    anyio.run(go)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def _foreign(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('mine')")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("argv", [*READERS, ["report", "--out", "OUT"], ["judge"], ["audit", "heads", "--out", "H"],
                                  ["db", "upgrade"]])  # fmt: skip
def test_another_applications_database_is_refused_untouched(tmp_path: Path, argv: list[str]) -> None:
    db = _foreign(tmp_path / "other.db")
    before = _digest(db)
    argv = [str(tmp_path / a) if a in ("OUT", "H") else a for a in argv]
    res = run(*argv, "--db", str(db))
    assert res.exit_code == 2, res.output
    assert "is not a kpimcp results database (it holds other tables: notes)" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert _digest(db) == before and not Path(f"{db}-wal").exists() and not (tmp_path / "OUT").exists()


@pytest.mark.parametrize(("make", "words"), [
    (lambda p: p.write_text("hello, not a database\n" * 20), "not an SQLite file"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: (_toy_db(p), p.write_bytes(p.read_bytes()[: 3 * 4096])), "damaged"),
])  # fmt: skip
@pytest.mark.parametrize("argv", [*READERS, ["judge"]])
def test_unusable_files_get_one_sentence_and_exit_2(tmp_path: Path, make, words: str, argv: list[str]) -> None:
    db = tmp_path / "x.db"
    make(db)
    res = run(*argv, "--db", str(db))
    assert res.exit_code == 2 and words in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_missing_directory_and_missing_file(tmp_path: Path) -> None:
    res = run("runs", "--db", str(tmp_path / "nowhere" / "k.db"))
    assert res.exit_code == 2 and "the directory" in res.output and "does not exist" in res.output
    assert not (tmp_path / "nowhere").exists()
    res = run("audit", "verify", "--db", str(tmp_path / "k.db"))
    assert res.exit_code == 2 and "no results database" in res.output and not (tmp_path / "k.db").exists()
    res = run("runs", "--db", str(tmp_path))  # click's own check of --db: exit 2 and a sentence too
    assert res.exit_code == 2 and "is a directory" in res.output


def test_writers_refuse_foreign_files_too(tmp_path: Path) -> None:
    db = _foreign(tmp_path / "other.db")
    before = _digest(db)
    with pytest.raises(UnusableDatabase, match="not a kpimcp results database"):
        connect(db)
    assert _digest(db) == before


def test_readers_change_nothing_not_even_a_dropped_trigger(tmp_path: Path) -> None:
    db = _toy_db(tmp_path / "k.db")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=DELETE")  # a file someone copied out of WAL mode: readers must not switch it
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.commit()
    conn.close()
    before = _digest(db)
    for argv in READERS:
        res = run(*argv, "--db", str(db))
        assert res.exit_code == (1 if argv == ["audit", "verify"] else 0), (argv, res.output)
    assert "trigger audit_no_delete is missing" in run("audit", "verify", "--db", str(db)).output
    assert _digest(db) == before and not Path(f"{db}-wal").exists()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_no_delete'").fetchone() is None


@pytest.fixture
def readonly_dir(tmp_path: Path):
    """A read-only bind mount (read-only media); skipped where this process may not mount."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here (needs root): read-only media not exercised")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield src, ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)  # lazy: connections may still be open


def test_read_only_media_are_read_fine(readonly_dir, tmp_path: Path) -> None:
    src, ro = readonly_dir
    _toy_db(src / "k.db")
    db = ro / "k.db"
    with pytest.raises(OSError):
        (ro / "probe").write_text("x")
    for argv in READERS:
        res = run(*argv, "--db", str(db))
        assert res.exit_code == 0, (argv, res.output)
    assert "run-toy" in run("runs", "--db", str(db)).output
    rep = run("report", "--db", str(db), "--out", str(tmp_path / "rep"), "--bootstrap", "100")
    assert rep.exit_code == 0 and "read-only" in rep.output and (tmp_path / "rep" / "report.json").exists()
    res = run("judge", "--db", str(db))
    assert res.exit_code == 2 and "cannot write" in res.output and len(res.output.strip().splitlines()) == 1


# ---- schema versions ----------------------------------------------------------------------------------------------
LEGACY_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, scenario TEXT NOT NULL, scenario_version INTEGER NOT NULL,
    variant TEXT NOT NULL, model TEXT, bench_id TEXT, transport TEXT, client_name TEXT, client_version TEXT,
    protocol_version TEXT, status TEXT NOT NULL DEFAULT 'open', created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    head_seq INTEGER NOT NULL DEFAULT 0, head_hash TEXT NOT NULL);
CREATE TABLE audit (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(run_id), seq INTEGER NOT NULL,
    started_at TEXT NOT NULL, ended_at TEXT NOT NULL, duration_ms REAL NOT NULL, tool TEXT NOT NULL,
    arguments TEXT NOT NULL, status TEXT NOT NULL, result TEXT, error TEXT, changes TEXT NOT NULL,
    client_name TEXT, client_version TEXT, protocol_version TEXT, transport TEXT, prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL);
CREATE TABLE world_state (run_id TEXT NOT NULL, space TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
    PRIMARY KEY (run_id, space, key)) WITHOUT ROWID;
"""


def _legacy(path: Path) -> Path:
    """A database as kpimcp wrote it before schema versions, with one run (its chain made by today's code)."""
    new = _toy_db(path.with_name("new.db"))
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_SCHEMA)
    conn.execute(f"ATTACH '{new}' AS n")
    cols = (
        "run_id, scenario, scenario_version, variant, model, bench_id, transport, client_name, client_version, "
        "protocol_version, status, created_at, updated_at, head_seq, head_hash"
    )
    conn.execute(f"INSERT INTO runs ({cols}) SELECT {cols} FROM n.runs")
    conn.execute("INSERT INTO audit SELECT * FROM n.audit")
    conn.execute("INSERT INTO world_state SELECT * FROM n.world_state")
    conn.commit()
    conn.close()
    return path


def test_an_older_database_is_refused_by_readers_and_upgraded_in_place_by_writers(tmp_path: Path) -> None:
    db = _legacy(tmp_path / "old.db")
    res = run("runs", "--db", str(db))
    assert res.exit_code == 2 and "older schema (version 0" in res.output and "kpimcp db upgrade" in res.output
    info = run("db", "info", "--db", str(db))
    assert info.exit_code == 0 and "schema version 0" in info.output
    up = run("db", "upgrade", "--db", str(db))
    assert up.exit_code == 0 and "0001_baseline" in up.output
    conn = open_readonly(db)
    assert schema_version(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT event FROM run_meta").fetchall()[0][0] == "upgrade"
    assert check(conn).problems == []  # the old chain verifies; its metadata is covered from the upgrade on
    assert run("db", "upgrade", "--db", str(db)).output.strip().endswith("already current")


def test_a_newer_database_is_refused_by_readers_and_writers(tmp_path: Path) -> None:
    db = _toy_db(tmp_path / "k.db")
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('kpimcp', '9999_future', 'later')"
    )
    conn.commit()
    conn.close()
    for argv in (["runs"], ["judge"], ["db", "upgrade"]):
        res = run(*argv, "--db", str(db))
        assert res.exit_code == 2 and "newer kpimcp" in res.output and "9999_future" in res.output, res.output
    with pytest.raises(UnusableDatabase, match="newer kpimcp"):
        connect(db)


def test_timestamps_are_utc_iso_with_microseconds_and_follow_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # now_iso formats the date and time of day once a second; the text must stay datetime.isoformat's, and the
    # cached part must be refreshed at each second boundary (a clock stepping across one, and across midnight).
    from datetime import UTC, datetime, timedelta

    from kpimcp.servers import store

    before = datetime.now(UTC)
    live = store.now_iso()
    clock = [1_796_255_999_999_998_000, 1_796_255_999_999_999_000, 1_796_256_000_000_000_000, 1_796_256_001_250_000_000]
    ticks = iter(clock)
    monkeypatch.setattr(store.time, "time_ns", lambda: next(ticks))
    stamps = [store.now_iso() for _ in clock]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    expected = [(epoch + timedelta(microseconds=ns // 1000)).isoformat(timespec="microseconds") for ns in clock]
    assert stamps == expected  # "...T23:59:59.999998+00:00" ... "...T00:00:01.250000+00:00"
    parsed = [datetime.fromisoformat(s) for s in [live, *stamps]]
    assert all(len(s) == 32 and s.endswith("+00:00") and p.tzinfo == UTC
               for s, p in zip([live, *stamps], parsed, strict=True))  # fmt: skip
    assert parsed[1:] == sorted(parsed[1:]) and before - timedelta(milliseconds=1) <= parsed[0] <= datetime.now(UTC)
    assert parsed[-1] - parsed[1] >= timedelta(seconds=1.25)


def test_steps_are_numbered_in_order_so_others_can_append_one() -> None:
    names = STEPS.names
    assert names == sorted(names) and len(set(names)) == len(names) == SCHEMA_VERSION
    assert [int(n.split("_")[0]) for n in names] == list(range(1, len(names) + 1))
    with pytest.raises(ValueError, match="registered twice"):
        STEPS(name=names[0])(lambda db: None)


def test_applied_steps_are_read_where_sqlite_utils_records_them(tmp_path: Path) -> None:
    from sqlite_utils.migrations import Migrations

    assert Migrations.migrations_table == MIGRATIONS_TABLE
    conn = connect(tmp_path / "k.db")
    assert applied_steps(conn) == STEPS.names


def test_opening_an_up_to_date_database_does_not_import_sqlite_utils(tmp_path: Path) -> None:
    # The server's cold start: sqlite-utils (and numpy through it) cost ~90 ms and are needed only to apply a step.
    connect(tmp_path / "k.db").close()
    # What a stdio server does before its first call: load its scenario, open the database, build the server.
    code = (
        "import sys; from kpimcp.servers import RunRegistry, build_server, connect; "
        "from kpimcp.harness.cli import scenario_arg; "
        f"s = scenario_arg({str(TOY)!r}); runs = RunRegistry(connect({str(tmp_path / 'k.db')!r}), s, 'mandated'); "
        "build_server(s, 'mandated', runs); runs.slot(); "
        "print('sqlite_utils' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_concurrent_writers_creating_one_database_apply_each_step_once(tmp_path: Path) -> None:
    db = tmp_path / "race.db"
    errors: list[BaseException] = []

    start = threading.Barrier(6)

    def open_it() -> None:
        try:
            start.wait()  # all at once: the race on a new file is at its switch to WAL and its first schema step
            connect(db).close()
        except BaseException as exc:  # collected: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0] == SCHEMA_VERSION


def test_the_wal_switch_waits_out_a_lock_sqlite_reports_without_waiting() -> None:
    # Writers opening a new file together: SQLite may answer "locked" to the WAL switch at once, without its busy
    # handler (seen in CI as an Inspect eval failing to open its run). The switch retries until the busy timeout.
    from kpimcp.servers.store import _switch_to_wal

    class Racing:  # the file is "delete" until the other writer's switch lands; two switches are refused at once
        def __init__(self, refusals: int, error: str = "database is locked") -> None:
            self.mode, self.refusals, self.error, self.switches = "delete", refusals, error, 0

        def execute(self, sql: str) -> Racing:
            if sql == "PRAGMA journal_mode=WAL":
                self.switches += 1
                if self.switches <= self.refusals:
                    raise sqlite3.OperationalError(self.error)
                self.mode = "wal"
            return self

        def fetchone(self) -> tuple[str]:
            return (self.mode,)

    conn = Racing(refusals=2)
    _switch_to_wal(conn)
    assert conn.mode == "wal" and conn.switches == 3
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # a lock that never ends is still reported
        _switch_to_wal(Racing(refusals=10**9), timeout=0.05)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):  # other errors are not retried
        _switch_to_wal(Racing(refusals=1, error="disk I/O error"))


# ---- verify on a live database ------------------------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import os, sys, anyio
    from mcp import Client
    from kpimcp.scenarios import load_path
    from kpimcp.servers import RunRegistry, build_server, connect, transaction
    from kpimcp.servers.audit import update_run_meta

    db, seconds = sys.argv[1], float(sys.argv[2])
    scenario = load_path(sys.argv[3])
    conn = connect(db)

    async def main():
        import time
        end, i = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            run_id = f"live-{os.getpid()}-{i}"
            server = build_server(scenario, "mandated", RunRegistry(conn, scenario, "mandated", default_run_id=run_id))
            async with Client(server) as c:
                for k in range(8):
                    await c.call_tool("recount", {"sku": "B2", "counted": k})
            with transaction(conn):
                update_run_meta(conn, run_id, event="status", status="completed")
            i += 1
        print(i)

    anyio.run(main)
""")


@pytest.mark.slow
def test_verify_on_a_database_being_written_never_raises_a_false_alarm(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    connect(db).close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writers = [subprocess.Popen([sys.executable, str(script), str(db), "6", str(TOY)], stdout=subprocess.PIPE,
                                text=True) for _ in range(2)]  # fmt: skip
    checks, seen = 0, set()
    try:
        deadline = time.monotonic() + 30
        while any(w.poll() is None for w in writers) and time.monotonic() < deadline:
            report = check(open_readonly(db))
            assert report.problems == [], [str(p) for p in report.problems]
            checks += 1
            seen.add(report.checked)
    finally:
        outs = [w.communicate(timeout=60)[0] for w in writers]
    assert all(w.returncode == 0 for w in writers)
    assert checks >= 5 and len(seen) >= 3, (checks, seen)  # verify really ran while runs were being added
    assert sum(int(o) for o in outs) >= 2
    assert check(open_readonly(db)).problems == []


def test_opening_again_in_one_process_keeps_the_first_connections_locks(tmp_path: Path) -> None:
    """Regression: checking a file by opening and closing it drops the POSIX locks this process's SQLite
    connections hold on it; another process then deletes the WAL under them and later commits are lost."""
    from toy_support import toy

    from kpimcp.servers import create_run, transaction
    from kpimcp.servers.audit import update_run_meta

    db = tmp_path / "locks.db"
    first = connect(db)
    create_run(first, toy(), "mandated", run_id="run-l")
    connect(db).close()  # e.g. a second thread's connection in a server process
    peek = [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
            " print(c.execute('SELECT count(*) FROM run_meta').fetchone()[0]); c.close()", str(db)]  # fmt: skip
    assert subprocess.run(peek, capture_output=True, text=True).stdout.strip() == "1"
    with transaction(first):
        update_run_meta(first, "run-l", event="status", status="closed")
    assert subprocess.run(peek, capture_output=True, text=True).stdout.strip() == "2"
