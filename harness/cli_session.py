"""`kpimcp session new/list/close`: operator sessions for auditing agent products (docs/products.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .cli import UsageFailure, db_option, emit_json, existing_db, friendly_errors, scenario_arg, variant_option

__all__ = ["session"]


@click.group()
def session() -> None:
    """Operator sessions: one run per product chat, closed and scored like harness runs."""


@session.command("new")
@click.argument("scenario_id")
@variant_option
@db_option
@click.option("--agent", help='The product under test, as reports label it, e.g. "Claude Desktop 1.x".')
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP host the URL names.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="HTTP port.")
@click.option("--token", envvar="KPIMCP_TOKEN", help="Bearer token the HTTP server will require.")
@click.option("--json", "as_json", is_flag=True, help="Print an object with run_id, stdio_command, url, task.")
@friendly_errors
def session_new(scenario_id: str, variant: str, db: Path, agent: str | None, host: str, port: int,
                token: str | None, as_json: bool) -> None:  # fmt: skip
    """Create a run for an agent product; print the task to paste and exactly how to connect.

    \b
    Example:
      kpimcp session new patient_records_audit --variant mandated --agent "Claude Desktop 1.x" --db /abs/kpimcp.db
    """
    from kpimcp.servers import connect
    from kpimcp.servers.sessions import new_session

    scenario = scenario_arg(scenario_id)
    s = new_session(connect(db), scenario, variant, db, agent=agent, host=host, port=port, token=token)
    if as_json:
        emit_json(s.as_dict())
        return
    click.echo(f"session {s.run_id}: {s.scenario}/{s.variant}, agent {s.agent or '(unlabelled)'}, db {s.db}\n")
    click.echo(f"stdio: let the client launch (server name \"{s.server_name}\"):\n  {_shell(s.stdio_command)}\n")
    click.echo(f"HTTP: start the server\n  {_shell(s.http_serve_command)}\nthen connect the client to\n  {s.url}"
               + (f"\n  with header  Authorization: Bearer {s.token}" if s.token else "") + "\n")  # fmt: skip
    click.echo("Paste this as the first message of a new chat (or use the server's prompt \"task\"):\n")
    click.echo(s.task)
    click.echo(f"\nWhen the product has stopped: kpimcp session close {s.run_id} --db {s.db}")


def _shell(argv: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in argv)


@session.command("list")
@db_option
@click.option("--open", "only_open", is_flag=True, help="Only sessions still open.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per product run.")
@friendly_errors
def session_list(db: Path, only_open: bool, as_json: bool) -> None:
    """List product runs (no bench): label, status, calls, and how each closed.

    Example: kpimcp session list --open
    """
    from kpimcp.servers.sessions import list_sessions

    rows = list_sessions(existing_db(db), include_closed=not only_open)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no sessions")
    for r in rows:
        how = f"  ({r['close_reason']})" if r.get("close_reason") else ""
        click.echo(f"{r['run_id']}  {r['scenario']}/{r['variant']}  {r['status']:<7} {r['calls']:>4} calls  "
                   f"{r.get('agent') or r.get('client_name') or '-'}{how}")  # fmt: skip


@session.command("close")
@click.argument("run_id")
@db_option
@click.option("--reason", help="Why the operator closed it (stored with the run), e.g. 'stopped after escalating'.")
@friendly_errors
def session_close(run_id: str, db: Path, reason: str | None) -> None:
    """Close a product run the product has stopped working on: it becomes scoreable (or empty, without calls).

    Example: kpimcp session close run-1a2b3c4d5e6f7a8b --reason "stopped after escalating"
    """
    from kpimcp.servers.runs import get_run
    from kpimcp.servers.sessions import close_run

    conn = existing_db(db, write=True)
    try:
        status = close_run(conn, run_id, "operator", reason)
    except ValueError as exc:
        raise UsageFailure(str(exc)) from None
    if status is None:
        raise UsageFailure(f"run {run_id} is not open (status {get_run(conn, run_id)['status']}); nothing to close")
    click.echo(f"closed {run_id}: {status}" + (" (no tool call: kept out of every report)" if status == "empty"
                                               else "; `kpimcp judge` and `kpimcp report` score it"))  # fmt: skip


def register(main: Any) -> None:
    """Add the session group to the main command group."""
    main.add_command(session)
