"""`kpimcp audit ...` (reading and verifying the evidence) and `kpimcp db ...` (the database file itself).

Every reading command opens the database read-only (`kpimcp.servers.store.open_readonly`): it changes nothing,
works on read-only media, and refuses with one sentence a file that is not a kpimcp results database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .cli_common import UsageFailure, db_option, emit_json, existing_db, friendly_errors, writable

__all__ = ["audit", "broken_evidence", "db", "open_for_report"]


def broken_evidence(conn: Any, filters: dict[str, Any]) -> dict[str, str]:
    """The filtered runs whose audit evidence does not hold: run id -> first problem (what judge/report name)."""
    from kpimcp.judge.store import run_filter_sql
    from kpimcp.servers.integrity import broken_runs

    where, args = run_filter_sql(**{k: v for k, v in filters.items() if k in ("scenario", "variant", "model",
                                                                                "bench")})  # fmt: skip
    ids = [r[0] for r in conn.execute(f"SELECT r.run_id FROM runs r WHERE 1 = 1{where}", args)]
    return broken_runs(conn, ids)


def open_for_report(path: Path) -> tuple[Any, bool]:
    """The database for `kpimcp report`: writable (to rule-judge pending runs) when it can be, else read-only."""
    from kpimcp.servers.store import open_readonly

    conn = open_readonly(path)  # refuses a missing, foreign or damaged file with a sentence, changing nothing
    if writable(path):
        conn.close()
        return existing_db(path, write=True), True
    return conn, False


@click.group()
def audit() -> None:
    """Read and verify the audit trail (never writes the database)."""


@audit.command("show")
@click.argument("run_id")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the rows as a JSON array.")
@friendly_errors
def audit_show(run_id: str, db: Path, as_json: bool) -> None:
    """Show a run's audit rows: every tool call with its arguments, outcome and changes.

    Example: kpimcp audit show run-1a2b3c4d5e6f7a8b --db kpimcp.db
    """
    from kpimcp.servers.audit import read_rows
    from kpimcp.servers.runs import get_run

    conn = existing_db(db)
    get_run(conn, run_id)
    rows = read_rows(conn, run_id)
    if as_json:
        emit_json([r.model_dump() for r in rows])
        return
    for r in rows:
        args = json.dumps(r.arguments, ensure_ascii=False)
        click.echo(f"#{r.seq:<3} {r.started_at[11:23]} {r.duration_ms:7.1f} ms  {r.status:<8} {r.tool}({args[:150]})")
        if r.error:
            click.echo(f"      error: {r.error[:200]}")
        for ch in r.changes:
            click.echo(f"      changed {ch['space']}/{ch['key']}: {_short(ch['before'])} -> {_short(ch['after'])}")


def _short(value: Any, limit: int = 90) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@audit.command("verify")
@db_option
@click.option("--run", "run_id", help="Verify one run (default: every run).")
@click.option("--heads", "heads_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also compare with heads exported earlier by `kpimcp audit heads` (kept elsewhere).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@friendly_errors
def audit_verify(db: Path, run_id: str | None, heads_file: Path | None, as_json: bool) -> None:
    """Verify the evidence: each run's audit chain, its metadata (scenario, version, variant, model, status,
    digest, kit) and its world, plus the append-only triggers; with --heads, also truncation, rewrites, deleted
    runs and runs moved under a new id since the heads were exported.

    Reads one consistent snapshot and writes nothing, so it is safe on a database that servers are writing.
    Exits 1 and names the first problem of each damaged run.

    \b
    Examples:
      kpimcp audit verify --db kpimcp.db
      kpimcp audit verify --db kpimcp.db --heads /safe/place/kpimcp-heads.json
    """
    from kpimcp.servers.integrity import HeadsFileError, check, load_heads

    try:
        heads = load_heads(heads_file) if heads_file else None
    except HeadsFileError as exc:
        raise UsageFailure(str(exc)) from None
    report = check(existing_db(db), run_id, heads=heads)
    if as_json:
        emit_json({"checked": report.checked, "problems": [p.model_dump() | {"text": str(p)} for p in report.problems],
                   "notes": report.notes})  # fmt: skip
    else:
        for p in report.problems:
            click.echo(f"BROKEN {p}")
        for note in report.notes:
            click.echo(f"note: {note}")
    if report.problems:
        runs = {p.run_id for p in report.problems if p.run_id}
        db_level = len(report.problems) - sum(1 for p in report.problems if p.run_id)
        what = f"{len(runs)} of {report.checked} run(s) have broken evidence" + (
            f", {db_level} database-wide problem(s)" if db_level else "")  # fmt: skip
        raise click.ClickException(what)
    if not as_json:
        against = f", matching the heads in {heads_file}" if heads_file else ""
        click.echo(f"ok: {report.checked} run(s) verified, every chain intact{against}")


@audit.command("heads")
@db_option
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write the heads to; keep it (or its printed hash) somewhere the database's writers "
                   "cannot reach.")  # fmt: skip
@friendly_errors
def audit_heads(db: Path, out: Path) -> None:
    """Export every run's chain heads, with a manifest hash, to a file to keep elsewhere.

    Later, `kpimcp audit verify --heads FILE` detects what a consistent rewrite of the database could hide:
    truncated chains with reset heads, rewritten chains, deleted runs, runs moved under a new id. Refuses (exit 1)
    if the evidence is already broken: such heads would vouch for nothing.

    Example: kpimcp audit heads --db kpimcp.db --out /safe/place/kpimcp-heads.json
    """
    from kpimcp.servers.integrity import export_heads

    if out.parent and not out.parent.is_dir():
        raise UsageFailure(f"cannot write {out}: the directory {out.parent} does not exist")
    try:
        report, digest = export_heads(existing_db(db), out, database=str(db.resolve()))
    except OSError as exc:
        raise UsageFailure(f"cannot write {out}: {exc.strerror or exc}") from None
    if digest is None:
        for p in report.problems:
            click.echo(f"BROKEN {p}")
        raise click.ClickException("not exporting heads of broken evidence; see `kpimcp audit verify`")
    click.echo(f"wrote the heads of {report.checked} run(s) to {out}\nmanifest {digest}")


@click.group()
def db() -> None:
    """The results database file: its schema version, and upgrading it in place."""


@db.command("info")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
def db_info(db: Path, as_json: bool) -> None:
    """Show the database's schema version and table sizes (read-only).

    Example: kpimcp db info --db kpimcp.db
    """
    from kpimcp.servers.store import database_info

    info = database_info(db)
    if as_json:
        emit_json(info)
        return
    click.echo(f"{db}: kpimcp results database, schema version {info['schema_version']} "
               f"(this kpimcp: {info['supported']})")  # fmt: skip
    for name, count in info["tables"].items():
        click.echo(f"  {name:<20} {count:>9} rows")


@db.command("upgrade")
@db_option
@friendly_errors
def db_upgrade(db: Path) -> None:
    """Upgrade an existing results database's schema in place (what any writing command also does).

    Example: kpimcp db upgrade --db old-results.db
    """
    from kpimcp.servers.store import upgrade

    applied = upgrade(db)
    click.echo(f"{db}: applied {', '.join(applied)}" if applied else f"{db}: already current")
