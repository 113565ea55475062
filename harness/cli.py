"""The `kpimcp` command line. Commands parse, call one library function, and format; the work is elsewhere.

Heavy imports (mcp, openai-agents) happen inside commands so `kpimcp --help` stays instant.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kpimcp.harness.cli_serve import serve_limit_options
from kpimcp.scenarios import VARIANTS, ScenarioError, UnknownScenarioError

from .cli_common import DB_OPTION_HELP, UsageFailure, db_option, emit_json, existing_db, friendly_errors

__all__ = ["DB_OPTION_HELP", "UsageFailure", "db_option", "emit_json", "existing_db", "friendly_errors", "main"]

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
@click.option("--verbose", "-v", is_flag=True, help="Also list every replayed run that passed.")
@friendly_errors
def scenarios_check(scenario_ids: tuple[str, ...], verbose: bool) -> None:
    """Check scenarios (all when no id is given): loading, declarations, version lock, honest best, and every
    reference run, off-script case and conformance probe replayed through the real server.

    Exits non-zero, naming each failure. SCENARIO_IDS may also be folders of scenarios being authored.

    Example: kpimcp scenarios check patient_records_audit
    """
    from kpimcp.harness.checks import check_all
    from kpimcp.scenarios import ids

    loaded, failures = [], 0
    for sid in scenario_ids or ids():
        try:
            loaded.append(scenario_arg(sid))
        except UnknownScenarioError:
            raise
        except ScenarioError as exc:
            click.echo(f"FAIL {sid}: {exc}")
            failures += 1
    for report in check_all(loaded):
        for problem in report.problems:
            click.echo(f"FAIL {report.scenario}: {problem}")
        for r in report.runs:
            if verbose or not r.ok:
                mark = "ok  " if r.ok else "FAIL"
                click.echo(f"{mark} {r.scenario}/{r.reference}: expected {r.expected}, got {r.got} ({r.rule})"
                           + ("" if r.ok else " — " + "; ".join(r.problems)))  # fmt: skip
        counts = ", ".join(f"{n} {k}s" for k, n in report.counts().items())
        click.echo(f"{'ok  ' if report.ok else 'FAIL'} {report.scenario}: {counts}")
        failures += len(report.problems) + sum(not r.ok for r in report.runs)
    if failures:
        raise click.ClickException(f"{failures} check(s) failed")


@scenarios.command("lock")
@click.argument("scenario_ids", nargs=-1)
@friendly_errors
def scenarios_lock(scenario_ids: tuple[str, ...]) -> None:
    """Record what each scenario's version stands for: its folder's digest goes into version.lock.

    Run it after bumping `version` in scenario.toml; `kpimcp scenarios check` fails while a folder's content
    and its locked version disagree. All scenarios when no id is given.

    Example: kpimcp scenarios lock patient_records_audit
    """
    from kpimcp.scenarios import ids
    from kpimcp.scenarios.lock import read_lock, write_lock

    for sid in scenario_ids or ids():
        scenario = scenario_arg(sid)
        old = read_lock(scenario.folder)
        if old is not None and old.version == scenario.version and old.digest != scenario.digest:
            raise UsageFailure(f"{sid}: its content changed but its version is still {scenario.version}; "
                               "bump `version` in scenario.toml first")  # fmt: skip
        lock = write_lock(scenario.folder, scenario.version)
        click.echo(f"{sid}: version {lock.version} locked at {lock.digest[:19]}…")


@scenarios.command("docs")
@click.option("--write", is_flag=True, help="Write docs/scenarios.md of this checkout instead of printing.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the page to this file.")
@friendly_errors
def scenarios_docs(write: bool, out: Path | None) -> None:
    """Print the scenario catalogue (docs/scenarios.md): one paragraph per scenario, from its scenario.toml.

    Example: kpimcp scenarios docs --write
    """
    from kpimcp.scenarios import all as all_scenarios
    from kpimcp.scenarios.catalogue import render_catalogue

    page = render_catalogue(all_scenarios())
    target = out or (Path(__file__).resolve().parents[1] / "docs" / "scenarios.md" if write else None)
    if target is None:
        click.echo(page, nl=False)
        return
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageFailure(f"cannot write {target}: {exc.strerror}; choose another --out") from exc
    click.echo(f"wrote {target}")


# ---- serving -------------------------------------------------------------------------------------------------
@main.command()
@click.argument("scenario_id")
@variant_option
@db_option
@click.option("--http", is_flag=True, help="Serve streamable HTTP (many runs) instead of stdio (one run).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="HTTP bind address (loopback by default; 0.0.0.0 = every interface, needs --token).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="HTTP port.")
@click.option("--token", envvar="KPIMCP_TOKEN", help="Require 'Authorization: Bearer TOKEN' (HTTP).")
@click.option("--run-id", help="Name of the default run (default: a fresh id).")
@click.option("--model", help="Label the default run with the model or product under test.")
@click.option("--idle-close", "idle_close", default=1800.0, show_default=True, type=click.FloatRange(min=0),
              help="Close a product run after this many seconds without a tool call (0: never).")
@serve_limit_options
@friendly_errors
def serve(scenario_id: str, variant: str, db: Path, http: bool, host: str, port: int, token: str | None,
          run_id: str | None, model: str | None, idle_close: float, **limits: Any) -> None:  # fmt: skip
    """Serve a scenario's audited tools as an MCP server (stdio by default).

    SCENARIO_ID is an id from `kpimcp scenarios list`, or the folder of a scenario being authored. A product
    run closes when the product submits, after --idle-close, or when the server ends (see `kpimcp session`).

    \b
    Examples:
      kpimcp serve patient_records_audit --variant mandated --db audit.db
      kpimcp serve aml_sar_rate --variant incentivized --http --port 8765
        (then point clients at http://127.0.0.1:8765/mcp/<run-id>)
      kpimcp serve aml_sar_rate --http --host 0.0.0.0 --token "$T" --allowed-host bench.example.org
    """
    from kpimcp.servers import serve_http, serve_stdio

    scenario = scenario_arg(scenario_id)
    try:
        if http:
            serve_http(scenario, variant, db, host=host, port=port, token=token, run_id=run_id, model=model,
                       idle_seconds=idle_close, **limits)  # fmt: skip
        else:
            _stop_on_ctrl_c_at_a_terminal()
            serve_stdio(scenario, variant, db, run_id=run_id, model=model, idle_seconds=idle_close,
                        max_request_bytes=limits["max_request_bytes"])  # fmt: skip
    except ValueError as exc:  # bad bind, port in use, bad or busy run id, finished session: one sentence, exit 2
        raise UsageFailure(str(exc)) from None


def _stop_on_ctrl_c_at_a_terminal() -> None:
    """On a terminal, Ctrl-C stops a stdio server at once (exit 130).

    The MCP stdio reader blocks in a thread on the terminal, so the usual KeyboardInterrupt never ends the
    process. Every audited call is committed in its own transaction: exiting here loses nothing.
    """
    import os
    import signal

    if not sys.stdin.isatty():
        return  # a client's pipe: the server ends when the client closes it

    def stop(signum: int, frame: Any) -> None:
        sys.stderr.write("\nkpimcp: stopped (Ctrl-C); the run's audit trail is saved\n")
        sys.stderr.flush()
        os._exit(130)

    signal.signal(signal.SIGINT, stop)


@main.command()
@click.argument("scenario_id")
@variant_option
@friendly_errors
def prompt(scenario_id: str, variant: str) -> None:
    """Print a scenario's task as a user would paste it into a chat client.

    Example: kpimcp prompt engagement_propaganda --variant incentivized | pbcopy
    """
    click.echo(scenario_arg(scenario_id).prompt_text(variant))


# ---- benchmark ---------------------------------------------------------------------------------------------------
@main.command()
@click.option("--model", "-m", "models", multiple=True, metavar="SPEC",
              help="Agent model (repeatable): openai:MODEL, openrouter:VENDOR/MODEL, openai-compatible:MODEL, "
                   "litellm:PROVIDER/MODEL, reference:compliant, reference:violating. "
                   "Default: the two reference agents.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML run file for a multi-model campaign (options given here override it).")
@click.option("--base-url", help="Endpoint of openai-compatible models (vLLM, Ollama, llama.cpp, gateways).")
@click.option("--api-key-env", help="Variable holding the key of the --model specs (default: per provider).")
@click.option("--scenario", "-s", "scenario_ids", multiple=True, help="Only this scenario, id or folder (repeatable).")
@click.option("--variant", "variants", multiple=True, type=click.Choice(VARIANTS),
              help="Only this variant (repeatable).")
@click.option("--domain", "domains", multiple=True, help="Only scenarios of this domain (repeatable).")
@click.option("--repeats", type=click.IntRange(1), help="Runs per model × scenario × variant  [default: 1]")
@click.option("--concurrency", "-j", type=click.IntRange(1, 512), help="Runs in flight at once  [default: 8]")
@click.option("--temperature", type=float, help="Sampling temperature (default: the provider's).")
@click.option("--max-turns", type=click.IntRange(1), help="Turn limit per run  [default: 50]")
@click.option("--timeout", "run_timeout", type=click.FloatRange(min=1),
              help="Wall-clock limit per run, seconds  [default: 1800]")
@click.option("--request-timeout", type=click.FloatRange(min=1),
              help="Limit per model request, seconds  [default: 300]")
@click.option("--retries", type=click.IntRange(0, 20),
              help="Retries per model request on 429/5xx/timeouts  [default: 5]")
@click.option("--tracing", is_flag=True, default=None,
              help="Export Agents SDK traces (off by default: nothing but model requests leaves the machine).")
@click.option("--force", is_flag=True, default=None, help="Rerun cells that already have a finished run.")
@click.option("--no-judge", "no_judge", is_flag=True, help="Do not rule-judge the runs afterwards.")
@click.option("--host", "host_mode", type=click.Choice(["subprocess", "inprocess"]),
              help="Where the scenario servers run  [default: subprocess]")
@click.option("--nudges", type=click.IntRange(0),
              help="Replies without a tool call answered 'continue with tool calls, or submit' (per run)  "
                   "[default: 3]")
@click.option("--limit", type=click.IntRange(1), help="Run a reproducible subset of N planned cells (see --seed).")
@click.option("--seed", type=int, help="Seed drawing the --limit subset  [default: 0]")
@click.option("--compat", type=click.Choice(["auto", "strict", "off"]),
              help="Message format for strict local servers (string contents, no null); auto switches on the "
                   "first rejection  [default: auto]")
@click.option("--no-preflight", is_flag=True, help="Skip the one-request check of each model endpoint.")
@click.option("--dry-run", is_flag=True, help="Show the plan (what would run, what is already done) and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of tables.")
@db_option
@friendly_errors
def bench(models: tuple[str, ...], config_path: Path | None, base_url: str | None, api_key_env: str | None,
          scenario_ids: tuple[str, ...], variants: tuple[str, ...], domains: tuple[str, ...], repeats: int | None,
          concurrency: int | None, temperature: float | None, max_turns: int | None, run_timeout: float | None,
          request_timeout: float | None, retries: int | None, tracing: bool | None, force: bool | None, no_judge: bool,
          host_mode: str | None, nudges: int | None, limit: int | None, seed: int | None, compat: str | None,
          no_preflight: bool, dry_run: bool, as_json: bool, db: Path) -> None:  # fmt: skip
    """Run agents over scenarios × variants × repeats, store every run, judge, and print misalignment rates.

    Without --model it runs the offline reference agents over everything: no key, no network, a self-test of
    the whole pipeline. Re-running the same command resumes: finished runs are skipped, failed ones retried.

    \b
    Examples:
      kpimcp bench                                             offline demo and self-test
      kpimcp bench -m openai:gpt-5 -m openrouter:x-ai/grok-4 --repeats 3 -j 16
      kpimcp bench -m openai-compatible:qwen3-32b --base-url http://localhost:8000/v1 -s aml_sar_rate
      kpimcp bench --config campaign.toml --dry-run
    """
    from kpimcp.harness.cli_bench import run_bench_command

    entry = {"base_url": base_url, "api_key_env": api_key_env} | ({"compat": compat} if compat else {})
    overrides = {"models": [{"spec": m, **entry} for m in models] or None,
                 "scenarios": scenario_ids, "variants": variants, "domains": domains, "repeats": repeats,
                 "concurrency": concurrency, "temperature": temperature, "max_turns": max_turns,
                 "run_timeout": run_timeout, "request_timeout": request_timeout, "tracing": tracing, "force": force,
                 "judge": False if no_judge else None, "host": host_mode, "nudges": nudges, "limit": limit,
                 "seed": seed, "preflight": False if no_preflight else None,
                 "retry": None if retries is None else {"attempts": retries + 1}}  # fmt: skip
    try:
        code = run_bench_command(config_path, db, overrides, dry_run=dry_run, as_json=as_json)
    except ValueError as exc:  # bad spec, missing key, bad run file, unknown filter
        raise UsageFailure(str(exc)) from None
    except RuntimeError as exc:  # another bench on the database, a host that cannot start
        raise click.ClickException(str(exc)) from None
    if code:
        sys.exit(code)


# ---- runs and audit: harness/cli_runs.py (runs, benches, datasette-metadata), harness/cli_audit.py (audit, db)


# ---- judging and reports (judge/) ---------------------------------------------------------------------------
def _run_filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--scenario / --variant / --model, repeatable, selecting runs as the bench does; --bench, one campaign."""
    fn = click.option("--bench", help="Only one campaign's runs (an id from `kpimcp benches`, or `latest`).")(fn)
    fn = click.option("--model", "-m", "models", multiple=True, help="Only runs of this model spec (repeatable).")(fn)
    fn = click.option("--variant", "variants", multiple=True, type=click.Choice(VARIANTS),
                      help="Only runs of this variant (repeatable).")(fn)  # fmt: skip
    return click.option("--scenario", "-s", "scenario_ids", multiple=True,
                        help="Only runs of this scenario (repeatable).")(fn)  # fmt: skip


def _filters(conn: Any, scenario_ids: tuple[str, ...], variants: tuple[str, ...], models: tuple[str, ...],
             bench: str | None) -> dict[str, Any]:  # fmt: skip
    from kpimcp.harness.store import resolve_bench

    return {"scenario": list(scenario_ids) or None, "variant": list(variants) or None, "model": list(models) or None,
            "bench": resolve_bench(conn, bench)}  # fmt: skip


@main.command()
@db_option
@_run_filters
@click.option("--judge-model", "judge_models", multiple=True, metavar="SPEC",
              help="Add an LLM judge to the panel (repeatable), e.g. openai:gpt-5, openrouter:x-ai/grok-4.")
@click.option("--base-url", help="Endpoint for openai-compatible judge models (vLLM, Ollama, gateways).")
@click.option("--api-key-env", help="Environment variable holding the judges' API key.")
@click.option("--self", "self_check", is_flag=True,
              help="Also ask each run's own model to rate its trajectory with the same rubric.")
@click.option("--self-base-url", help="Endpoint of openai-compatible agent models for --self (default --base-url).")
@click.option("--exclusion", type=click.Choice(["family", "exact"]), default="family", show_default=True,
              help="Self-exclusion: a judge skips runs of its own model family, or only of its exact spec.")
@click.option("--family", "families", multiple=True, metavar="PATTERN=FAMILY",
              help="Assign specs matching a glob to a model family for self-exclusion (repeatable).")
@click.option("--with-rule-evidence", is_flag=True, help="Show LLM judges the rule judge's findings as context.")
@click.option("--retry-errors", is_flag=True, help="Ask again where a judge's cached verdict is a judge_error.")
@click.option("--rejudge", is_flag=True, help="Re-run the rule judge on runs that already have a rule verdict.")
@click.option("--attempts", default=3, show_default=True, type=click.IntRange(1, 10),
              help="Answers requested from an LLM judge before recording judge_error.")
@click.option("--max-chars", default=48_000, show_default=True, type=click.IntRange(2_000),
              help="Trajectory budget per judge prompt (every tool call is always kept).")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 64),
              help="LLM requests in flight at once.")
@click.option("--request-timeout", default=120.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds per judge request (a local model may read a long transcript for minutes).")
@click.option("--max-judge-errors", default=50.0, show_default=True, type=click.FloatRange(0, 100),
              help="Exit 1 naming a judge when more than this % of its requests in this pass failed (or all did).")
@click.option("--no-preflight", is_flag=True, help="Skip the one-request check of each judge endpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@friendly_errors
def judge(db: Path, scenario_ids: tuple[str, ...], variants: tuple[str, ...], models: tuple[str, ...],
          bench: str | None, judge_models: tuple[str, ...], base_url: str | None, api_key_env: str | None,
          self_check: bool, self_base_url: str | None, exclusion: str, families: tuple[str, ...],
          with_rule_evidence: bool, retry_errors: bool, rejudge: bool, attempts: int, max_chars: int,
          concurrency: int, request_timeout: float, max_judge_errors: float, no_preflight: bool,
          as_json: bool) -> None:  # fmt: skip
    """Score runs: the rule judge always; an LLM judge panel and self-assessment on request.

    Verdicts are cached in the database by (run, judge, prompt version): re-running costs nothing.

    \b
    Examples:
      kpimcp judge --db kpimcp.db
      kpimcp judge --judge-model openai:gpt-5 --judge-model openrouter:x-ai/grok-4 --self
      kpimcp judge --judge-model openai-compatible:qwen3 --base-url http://localhost:8000/v1 -s aml_sar_rate
    """
    from kpimcp.harness.cli_bench import interrupted
    from kpimcp.harness.cli_judging import JudgeProgress
    from kpimcp.judge.commands import judge_all, parse_families
    from kpimcp.judge.llm import AskOptions

    from .cli_audit import broken_evidence

    conn = existing_db(db, write=True)
    broken = broken_evidence(conn, _filters(conn, scenario_ids, variants, models, bench))
    progress = JudgeProgress(quiet=as_json)
    options = AskOptions(attempts=attempts, max_chars=max_chars, request_timeout=request_timeout)
    try:
        summary = judge_all(
            conn, filters=_filters(conn, scenario_ids, variants, models, bench), judge_models=judge_models,
            base_url=base_url, api_key_env=api_key_env, self_check=self_check, self_base_url=self_base_url,
            rejudge=rejudge, retry_errors=retry_errors, with_rule_evidence=with_rule_evidence, exclusion=exclusion,
            families=parse_families(families), options=options, concurrency=concurrency,
            on_jobs=progress.stage, on_verdict=progress.verdict, max_error_share=max_judge_errors / 100,
            preflight=not no_preflight)  # fmt: skip
    except ValueError as exc:
        raise UsageFailure(str(exc)) from None
    except KeyboardInterrupt:
        sys.exit(interrupted("every verdict received so far is stored; re-running asks only for the rest"))
    finally:
        progress.close()
    summary["refused_broken_evidence"] = broken
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"rule judge: {summary['rule']['judged']} run(s) judged; product self-reviews: "
                   f"{summary['product_reviews']}")  # fmt: skip
        for stage in ("panel", "self"):
            if stage in summary:
                c = summary[stage]
                click.echo(f"{stage}: {c['scored']} scored, {c['errors']} judge_error, {c['cached']} cached, "
                           f"{c['excluded']} self-excluded, {c['skipped']} skipped")  # fmt: skip
    for problem in broken.values():
        click.echo(f"REFUSED {problem}", err=True)
    reasons = []
    if summary["failing"]:
        reasons.append("; ".join(summary["failing"]) + " (its verdicts are judge_error, not scores; fix the judge, "
                       "then `kpimcp judge --retry-errors`)")  # fmt: skip
    if broken:
        reasons.append(f"{len(broken)} run(s) not scored: their audit evidence does not hold (`kpimcp audit verify` "
                       "shows what broke)")  # fmt: skip
    if reasons:
        raise click.ClickException("; ".join(reasons))


@main.command()
@db_option
@_run_filters
@click.option("--out", "out", default="report", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Folder to write the report into.")
@click.option("--bootstrap", "B", default=10_000, show_default=True, type=click.IntRange(100),
              help="Bootstrap replicates for the 95% CIs.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@click.option("--run-pages", type=click.Choice(["auto", "embed", "files", "none"]), default="auto",
              show_default=True, help="Run pages inside report.html, as runs/*.html files, or none.")
@click.option("--fail-if-mr-above", "fail_above", type=click.FloatRange(0, 100), metavar="PCT",
              help="Exit 1 when a model's misalignment rate (mandated + incentivized) is above PCT percent (CI).")
@click.option("--per-variant", is_flag=True, help="With --fail-if-mr-above: check each variant's MR instead.")
@friendly_errors
def report(db: Path, scenario_ids: tuple[str, ...], variants: tuple[str, ...], models: tuple[str, ...],
           bench: str | None, out: Path, B: int, seed: int, run_pages: str, fail_above: float | None,
           per_variant: bool) -> None:  # fmt: skip
    """Write report.md, report.json, CSVs and a self-contained report.html from judged runs.

    Runs without a current rule verdict are rule-judged first, and product self-reviews collected (on a
    read-only database, the stored verdicts are reported as they are). A run whose audit evidence does not
    hold is never scored: it is counted under the status `broken_chain` and named on screen.
    With --fail-if-mr-above PCT it exits 1, naming each model (or model and variant) above the threshold.

    \b
    Examples:
      kpimcp report --db kpimcp.db --out report/   (then open report/report.html)
      kpimcp report --bench latest --fail-if-mr-above 10 --per-variant     (a CI gate)
    """
    from kpimcp.harness.paths import UnwritablePath, writable_dir
    from kpimcp.judge import judge_pending
    from kpimcp.judge.report import mr_gate, pct, write_report
    from kpimcp.judge.selfcheck import ingest_product_reviews

    from .cli_audit import broken_evidence, open_for_report

    conn, writable = open_for_report(db)  # first: a file that is not a results database leaves no folder behind
    try:
        out = writable_dir(out, "report folder")  # before judging: fail in a second, not after the work
    except UnwritablePath as exc:
        raise UsageFailure(str(exc)) from None
    filters = _filters(conn, scenario_ids, variants, models, bench)
    if writable:
        judge_pending(conn, **filters)
        ingest_product_reviews(conn)
    else:
        click.echo(f"note: {db} is read-only: reporting the verdicts it holds (unjudged runs stay unjudged)")
    for problem in broken_evidence(conn, filters).values():
        click.echo(f"BROKEN {problem} (reported as broken_chain, not scored)")
    rep = write_report(conn, out, run_pages=run_pages, B=B, seed=seed, **filters)
    width = max((len(s["model"]) for s in rep["summary"]), default=5)
    for s in rep["summary"]:
        click.echo(f"{s['model']:<{width}}  MR {pct(s.get('mr')):>5}  ({s.get('n_scored', 0)} scored, "
                   f"by {s.get('source') or '-'})")  # fmt: skip
    click.echo(f"wrote {out / 'report.md'}, {out / 'report.json'}, CSVs and {out / 'report.html'}")
    if fail_above is not None:
        above = mr_gate(rep, fail_above, per_variant=per_variant)
        if above:
            raise click.ClickException(f"misalignment rate above {fail_above:g}%: " + "; ".join(above))
        click.echo(f"ok: no misalignment rate above {fail_above:g}%")


# ---- command groups in their own modules (they import this module's helpers, hence at the end) -----------------
if __name__ == "__main__":  # pragma: no cover
    # `python -m kpimcp.harness.cli` (what clients launch): run the importable module, which registers the groups
    from kpimcp.harness.cli import main as _main

    sys.exit(_main())
else:
    from .cli_audit import audit, db
    from .cli_install import register as _register_install
    from .cli_runs import register as _register_runs
    from .cli_session import register as _register_session

    _register_runs(main)
    _register_session(main)
    _register_install(main)
    main.add_command(audit)
    main.add_command(db)
