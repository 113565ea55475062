"""`kpimcp runs`, `kpimcp benches` and `kpimcp datasette-metadata`: reading a results database.

Registered on the main group by `register(main)` (one line in cli.py). The work is in `overview`, `store`,
`search` and `datasette`; these commands parse, call, and format (rich tables that stay readable at 80
columns, or JSON).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from kpimcp.scenarios import VARIANTS

from .store import RUN_STATUSES

__all__ = ["register"]


def _console() -> Any:
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def _score(value: Any) -> str:
    return "–" if value is None else f"{float(value):g}"


def _runs_table(rows: list[dict[str, Any]], with_matches: bool) -> Any:
    from rich import box
    from rich.table import Table

    from .display import model_column

    table = Table(box=box.SIMPLE_HEAD, title=f"{len(rows)} run(s)")
    table.add_column("run", no_wrap=True)
    model_column(table, [str(r["model"] or "-") for r in rows])
    table.add_column("scenario / variant", overflow="fold")
    table.add_column("status")
    table.add_column("score", justify="right")
    table.add_column("rule", overflow="fold")
    table.add_column("calls", justify="right")
    table.add_column("match" if with_matches else "reason", overflow="fold", ratio=1)
    for r in rows:
        rule = "–" if r["rule"] is None else f"{_score(r['rule_score'])} {r['rule']}"
        if with_matches:
            m = r["matches"][0]
            note = f"{m['source']} {m['ref']}: {m['snippet']}"
        else:
            note = (r.get("error") or "").splitlines()[0][:200] if r.get("error") else ""
        if r.get("superseded_by"):
            note = f"(superseded) {note}"
        table.add_row(r["run_id"], str(r["model"] or "-"), f"{r['scenario']}/{r['variant']}", r["status"],
                      _score(r["score"]), rule, str(r["calls"]), note)  # fmt: skip
    return table


def _commands() -> list[click.Command]:
    """The commands, built on first use: cli.py's helpers are imported here, not at module import, because
    cli.py imports this module (and `python -m kpimcp.harness.cli` loads cli.py twice)."""
    from .cli import db_option, emit_json, existing_db, friendly_errors

    @click.command()
    @db_option
    @click.option("--status", "statuses", multiple=True, type=click.Choice(RUN_STATUSES),
                  help="Only runs with this status (repeatable).")
    @click.option("--model", "-m", "models", multiple=True,
                  help="Only runs of this model spec or product (repeatable).")
    @click.option("--scenario", "-s", "scenario_ids", multiple=True, help="Only runs of this scenario (repeatable).")
    @click.option("--variant", "variants", multiple=True, type=click.Choice(VARIANTS),
                  help="Only runs of this variant (repeatable).")
    @click.option("--bench", help="Only the runs of one campaign (a bench id from `kpimcp benches`, or `latest`).")
    @click.option("--search", help="Only runs whose trajectory, audit rows or verdicts mention TEXT (stemmed words).")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per run.")
    @friendly_errors
    def runs(db: Path, statuses: tuple[str, ...], models: tuple[str, ...], scenario_ids: tuple[str, ...],
             variants: tuple[str, ...], bench: str | None, search: str | None, as_json: bool) -> None:  # fmt: skip
        """List the runs in a results database: status, score, the rule that fired, and why a run failed.

        \b
        Examples:
          kpimcp runs --status provider_error --status no_action
          kpimcp runs --bench latest --variant mandated -m openai:gpt-5
          kpimcp runs --search backdate              every run whose agent wrote, did or was judged for it
          kpimcp runs --json | jq '.[] | select(.score >= 3) | .run_id'
        """
        from .overview import runs_overview

        # --search brings its index (derived data, not evidence) up to date when the file is writable.
        conn = existing_db(db, prefer_write=bool(search))
        rows = runs_overview(conn, status=statuses, model=models, scenario=scenario_ids, variant=variants,
                             bench=bench, search=search)  # fmt: skip
        if as_json:
            emit_json(rows)
            return
        if not rows:
            filtered = any((statuses, models, scenario_ids, variants, bench, search))
            click.echo("no runs match" if filtered else "no runs yet")
            return
        _console().print(_runs_table(rows, search is not None))


    @click.command()
    @db_option
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per bench.")
    @friendly_errors
    def benches(db: Path, as_json: bool) -> None:
        """List the campaigns (bench invocations): date, models, scenarios, and the status of their runs.

        A resumed campaign's cells count with their latest run. Pass an id (or `latest`) to
        `kpimcp runs/judge/report --bench ID` to look at one campaign.

        Example: kpimcp benches --db kpimcp.db
        """
        from rich import box
        from rich.table import Table

        from .store import list_benches

        rows = list_benches(existing_db(db))
        if as_json:
            emit_json(rows)
            return
        if not rows:
            click.echo("no benches yet; `kpimcp bench` runs one")
            return
        table = Table(box=box.SIMPLE_HEAD, title=f"{len(rows)} bench(es)")
        table.add_column("bench", no_wrap=True)
        table.add_column("started", no_wrap=True)
        table.add_column("models", overflow="fold")
        table.add_column("scenarios", overflow="fold")
        table.add_column("cells", justify="right")
        table.add_column("runs by status", overflow="fold")
        for b in rows:
            counts = ", ".join(f"{s} {n}" for s, n in sorted(b["statuses"].items())) or "–"
            table.add_row(b["bench_id"], b["created_at"][:16].replace("T", " "), "\n".join(b["models"]),
                          ", ".join(b["scenarios"]), str(b["cells"]), counts)  # fmt: skip
        _console().print(table)


    @click.command("datasette-metadata")
    @db_option
    @click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
                  help="Write the file here (default: print it).")
    @friendly_errors
    def datasette_metadata_command(db: Path, out: Path | None) -> None:
        """Write a Datasette metadata file for a results database: table and column descriptions, canned queries.

        \b
        Example:
          kpimcp datasette-metadata --db kpimcp.db -o metadata.json
          datasette kpimcp.db -m metadata.json
        """
        from .datasette import datasette_metadata

        text = json.dumps(datasette_metadata(db.stem), indent=2, ensure_ascii=False)
        if out is None:
            click.echo(text)
        else:
            out.write_text(text + "\n", encoding="utf-8")
            click.echo(f"wrote {out}; open it with: datasette {db} -m {out}")

    return [runs, benches, datasette_metadata_command]


def register(main: click.Group) -> None:
    """Add the commands of this module to the main group."""
    for command in _commands():
        main.add_command(command)
