"""The `kpimcp` command line. Commands parse, call one library function, and format; the work is elsewhere.

Heavy imports (mcp, openai-agents) happen inside commands so `kpimcp --help` stays instant.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from kpimcp.scenarios import VARIANTS, ScenarioError, UnknownScenarioError

__all__ = ["main"]

DB_OPTION_HELP = "Results database (default ./kpimcp.db, or $KPIMCP_DB)."


class UsageFailure(click.ClickException):
    """An error that is the user's input: exit code 2, one sentence."""

    exit_code = 2


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one-sentence messages instead of tracebacks."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UnknownScenarioError as exc:
            raise UsageFailure(str(exc)) from None
        except ScenarioError as exc:
            raise click.ClickException(f"broken scenario: {exc}") from None
        except LookupError as exc:
            raise UsageFailure(str(exc.args[0] if exc.args else exc)) from None

    return wrapper


def db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--db", "db", envvar="KPIMCP_DB", default="kpimcp.db", show_default=True,
                        type=click.Path(dir_okay=False, path_type=Path), help=DB_OPTION_HELP)(fn)  # fmt: skip


def existing_db(path: Path) -> Any:
    """Open a results database that must already exist (reading commands never create one)."""
    from kpimcp.servers import connect

    if not path.exists():
        raise UsageFailure(f"no results database at {path}; run `kpimcp bench` or `kpimcp serve` first, "
                           "or pass --db")  # fmt: skip
    return connect(path)


def variant_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--variant", "-v", type=click.Choice(VARIANTS), default="mandated", show_default=True,
                        help="Which version of the task: mandated, incentivized, or control (no KPI).")(fn)  # fmt: skip


def scenario_arg(value: str) -> Any:
    """A scenario by id, or by folder path (for authoring a scenario outside the package)."""
    from kpimcp.scenarios import load, load_path

    folder = Path(value)
    if (folder / "scenario.toml").is_file():
        return load_path(folder)
    return load(value)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="kpimcp")
def main() -> None:
    """kpimcp: do AI agents break ethical, legal or safety constraints when a KPI pushes them to?

    \b
    Quick start (offline, no API key):
      kpimcp bench                 run the reference agents over every scenario, judge, print rates
      kpimcp scenarios list        the scenarios
      kpimcp serve patient_records_audit --variant mandated      an audited MCP server on stdio
    """


# ---- scenarios -----------------------------------------------------------------------------------------------
@main.group()
def scenarios() -> None:
    """List, inspect and check scenarios."""


@scenarios.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@friendly_errors
def scenarios_list(as_json: bool) -> None:
    """List every scenario.

    Example: kpimcp scenarios list --json
    """
    from kpimcp.scenarios import all as all_scenarios

    rows = [{"id": s.id, "domain": s.domain, "title": s.title, "version": s.version, "variants": list(s.variants),
             "kpi": s.spec.kpi.name, "target": s.spec.kpi.target, "honest_best": s.spec.kpi.honest_best}
            for s in all_scenarios()]  # fmt: skip
    if as_json:
        emit_json(rows)
        return
    width = max((len(r["id"]) for r in rows), default=2)
    for r in rows:
        click.echo(f"{r['id']:<{width}}  v{r['version']}  {r['domain']:<18}  {r['title']}")


@scenarios.command("show")
@click.argument("scenario_id")
@friendly_errors
def scenarios_show(scenario_id: str) -> None:
    """Show a scenario: premise, KPI, constraint, variants, tools and reference runs.

    Example: kpimcp scenarios show aml_sar_rate
    """
    from kpimcp.scenarios import load

    s = load(scenario_id)
    spec = s.spec
    click.echo(f"{s.id} (v{s.version}, {s.domain}): {s.title}\n\n{spec.summary.strip()}\n")
    click.echo(f"KPI: {spec.kpi.name}: target {spec.kpi.target}, honest best {spec.kpi.honest_best}")
    click.echo(f"Constraint: {spec.constraint}\n")
    for v in VARIANTS:
        click.echo(f"[{v}] {spec.variants[v].kpi_sentence}")
    click.echo("\nScenario tools: " + ", ".join(t.__name__ for t in s.tools))
    click.echo(
        "Collections: " + ", ".join(f"{c.name} ({len(s.seed.records.get(c.name, {}))})" for c in spec.collections)
    )
    click.echo("Files: " + ", ".join(sorted(s.seed.files)))
    click.echo("Temptations: " + "; ".join(f"{k} {v}" for k, v in spec.temptations.items()))
    click.echo("Reference runs: " + ", ".join(f"{r.name} (expects {r.expected_score})" for r in s.references))


@scenarios.command("check")
@click.argument("scenario_ids", nargs=-1)
@friendly_errors
def scenarios_check(scenario_ids: tuple[str, ...]) -> None:
    """Validate scenarios and replay their reference runs through the real server (all when no id is given).

    Exits non-zero, naming each failure, if a scenario is broken or a reference run scores otherwise than
    expected.

    Example: kpimcp scenarios check patient_records_audit
    """
    import anyio

    from kpimcp.harness.replay import check_scenario
    from kpimcp.scenarios import ids

    failures = 0
    for sid in scenario_ids or ids():
        try:
            scenario = scenario_arg(sid)
        except UnknownScenarioError:
            raise
        except ScenarioError as exc:
            click.echo(f"FAIL {sid}: {exc}")
            failures += 1
            continue
        for r in anyio.run(check_scenario, scenario):
            mark = "ok  " if r.ok else "FAIL"
            click.echo(f"{mark} {r.scenario}/{r.reference}: expected {r.expected}, got {r.got}"
                       + ("" if r.ok else " — " + "; ".join(r.problems)))  # fmt: skip
            failures += not r.ok
    if failures:
        raise click.ClickException(f"{failures} check(s) failed")


# ---- serving -------------------------------------------------------------------------------------------------
@main.command()
@click.argument("scenario_id")
@variant_option
@db_option
@click.option("--http", is_flag=True, help="Serve streamable HTTP (many runs) instead of stdio (one run).")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP bind address (loopback by default).")
@click.option("--port", default=8765, show_default=True, type=int, help="HTTP port.")
@click.option("--token", envvar="KPIMCP_TOKEN", help="Require 'Authorization: Bearer TOKEN' (HTTP).")
@click.option("--run-id", help="Name of the default run (default: a fresh id).")
@click.option("--model", help="Label the run with the model or product under test (stdio).")
@friendly_errors
def serve(scenario_id: str, variant: str, db: Path, http: bool, host: str, port: int, token: str | None,
          run_id: str | None, model: str | None) -> None:  # fmt: skip
    """Serve a scenario's audited tools as an MCP server (stdio by default).

    SCENARIO_ID is an id from `kpimcp scenarios list`, or the folder of a scenario being authored.

    \b
    Examples:
      kpimcp serve patient_records_audit --variant mandated --db audit.db
      kpimcp serve aml_sar_rate --variant incentivized --http --port 8765
        (then point clients at http://127.0.0.1:8765/mcp/<run-id>)
    """
    from kpimcp.servers import InsecureBindError, serve_http, serve_stdio

    scenario = scenario_arg(scenario_id)
    try:
        if http:
            serve_http(scenario, variant, db, host=host, port=port, token=token, run_id=run_id)
        else:
            serve_stdio(scenario, variant, db, run_id=run_id, model=model)
    except InsecureBindError as exc:
        raise UsageFailure(str(exc)) from None
    except ValueError as exc:
        raise UsageFailure(str(exc)) from None


@main.command()
@click.argument("scenario_id")
@variant_option
@friendly_errors
def prompt(scenario_id: str, variant: str) -> None:
    """Print a scenario's task as a user would paste it into a chat client.

    Example: kpimcp prompt engagement_propaganda --variant incentivized | pbcopy
    """
    from kpimcp.servers.server import prompt_text

    click.echo(prompt_text(scenario_arg(scenario_id), variant))


# ---- runs and audit ------------------------------------------------------------------------------------------
@main.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per run.")
@friendly_errors
def runs(db: Path, as_json: bool) -> None:
    """List the runs in a results database.

    Example: kpimcp runs --db kpimcp.db --json
    """
    from kpimcp.servers.runs import list_runs

    rows = list_runs(existing_db(db))
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no runs yet")
    for r in rows:
        click.echo(f"{r['run_id']}  {r['scenario']}/{r['variant']}  {r['status']:<14} {r['calls']:>4} calls  "
                   f"{r.get('model') or r.get('client_name') or '-'}")  # fmt: skip


@main.group()
def audit() -> None:
    """Read and verify the audit trail."""


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
@friendly_errors
def audit_verify(db: Path, run_id: str | None) -> None:
    """Verify the hash chains: detects edited, deleted, inserted or reordered rows.

    Exits 1 and names the first broken row of each damaged run.

    Example: kpimcp audit verify --db kpimcp.db
    """
    from kpimcp.servers.audit import verify

    checked, problems = verify(existing_db(db), run_id)
    for p in problems:
        click.echo(f"BROKEN {p}")
    if problems:
        raise click.ClickException(f"{len({p.run_id for p in problems})} of {checked} run(s) have a broken chain")
    click.echo(f"ok: {checked} run(s) verified, every chain intact")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
