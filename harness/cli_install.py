"""`kpimcp install` / `kpimcp uninstall`: a scenario server in an agent product's MCP configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .cli import UsageFailure, db_option, friendly_errors, scenario_arg, variant_option
from .install import CLIENTS

__all__ = ["install", "uninstall"]

_CLIENT = click.Choice(list(CLIENTS))
_CONFIG_HELP = "The client's configuration file (default: its usual place on this OS; see docs/products.md)."


@click.command()
@click.argument("client_name", metavar="CLIENT", type=_CLIENT)
@click.argument("scenario_id")
@variant_option
@db_option
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), help=_CONFIG_HELP)
@click.option("--agent", help="Label the session's run (default: the client's name, e.g. 'Claude Desktop').")
@click.option("--http", is_flag=True, help="Write the session's URL instead of a stdio command (not Claude Desktop).")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP host of the URL.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="HTTP port of the URL.")
@click.option("--token", envvar="KPIMCP_TOKEN", help="Bearer token the HTTP server requires (written as a header).")
@click.option("--dry-run", is_flag=True, help="Print the file as it would be written; change nothing.")
@friendly_errors
def install(client_name: str, scenario_id: str, variant: str, db: Path, config: Path | None, agent: str | None,
            http: bool, host: str, port: int, token: str | None, dry_run: bool) -> None:  # fmt: skip
    """Add a scenario server, as a fresh operator session, to CLIENT's MCP configuration.

    CLIENT is claude-desktop, claude-code, cursor or vscode. The file is backed up first; other entries stay.

    \b
    Examples:
      kpimcp install claude-desktop patient_records_audit --variant mandated --db ~/audits/kpimcp.db
      kpimcp install vscode aml_sar_rate --http --port 8765 --dry-run
    """
    from kpimcp.servers import connect, new_run_id
    from kpimcp.servers.server import workspace_name
    from kpimcp.servers.sessions import new_session, stdio_command

    from .install import ConfigFileError, apply_plan, plan_install

    scenario = scenario_arg(scenario_id)
    run_id, name = new_run_id(), workspace_name(scenario)
    url = f"http://{host}:{port}/mcp/{run_id}" if http else None
    try:
        plan = plan_install(client_name, name, stdio_command=stdio_command(scenario, variant, db, run_id), url=url,
                            token=token, config=config)  # fmt: skip
    except (ConfigFileError, OSError) as exc:
        raise UsageFailure(str(exc)) from None
    if dry_run:
        click.echo(f"would write {plan.path} (session {run_id} not created):\n{plan.text()}", nl=False)
        return
    session = new_session(connect(db), scenario, variant, db, agent=agent or CLIENTS[client_name].label,
                          host=host, port=port, token=token, run_id=run_id)  # fmt: skip
    backup = apply_plan(plan)
    click.echo(f"installed \"{name}\" in {plan.path}" + (f" (backup {backup})" if backup else "") +
               f"\nsession {run_id} for {session.agent}, db {session.db}")  # fmt: skip
    if http:
        click.echo("start the server before connecting:\n  " + " ".join(session.http_serve_command))
    click.echo(f"restart or reload {CLIENTS[client_name].label}, then start a new chat with the task "
               f"(`kpimcp prompt {scenario.id} --variant {variant}`, or the server's prompt \"task\").")  # fmt: skip


@click.command()
@click.argument("client_name", metavar="CLIENT", type=_CLIENT)
@click.argument("scenario_id")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), help=_CONFIG_HELP)
@click.option("--dry-run", is_flag=True, help="Print the file as it would be written; change nothing.")
@friendly_errors
def uninstall(client_name: str, scenario_id: str, config: Path | None, dry_run: bool) -> None:
    """Remove a scenario server that `kpimcp install` wrote from CLIENT's MCP configuration.

    The file is backed up first; other entries stay. Close the session with `kpimcp session close`.

    Example: kpimcp uninstall claude-desktop patient_records_audit
    """
    from kpimcp.servers.server import workspace_name

    from .install import ConfigFileError, apply_plan, plan_uninstall

    name = workspace_name(scenario_arg(scenario_id))
    try:
        plan = plan_uninstall(client_name, name, config=config)
    except (ConfigFileError, OSError) as exc:
        raise UsageFailure(str(exc)) from None
    if dry_run:
        click.echo(f"would remove {plan.path}\n" if plan.remove_file else f"would write {plan.path}:\n{plan.text()}",
                   nl=False)  # fmt: skip
        return
    backup = apply_plan(plan)
    click.echo(f"removed \"{name}\" from {plan.path}" + (f" (backup {backup})" if backup else ""))


def register(main: Any) -> None:
    """Add install and uninstall to the main command group."""
    main.add_command(install)
    main.add_command(uninstall)
