"""The body of `kpimcp bench`: options → config → plan or run → tables (or JSON) → exit code.

Kept out of cli.py so the command stays a thin parser and `kpimcp --help` imports nothing heavy.
Exit codes: 0 all runs scoreable (and, for reference agents, scored as expected); 1 some runs failed or the
self-test failed (re-running the same command retries the failed runs).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["INTERRUPTED", "interrupted", "resume_command", "run_bench_command"]


INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM closes runs in flight like Ctrl-C does, instead of leaving them open


def resume_command() -> str:
    """The command line that was typed, quoted for a shell: re-running it resumes the bench."""
    import shlex

    return " ".join(shlex.quote(a) for a in ["kpimcp", *sys.argv[1:]])


def interrupted(what: str) -> int:
    """Say what a Ctrl-C kept and how to go on; returns the exit code 130."""
    Console(stderr=True).print(f"[yellow]interrupted:[/] {what}. Resume with:\n  {resume_command()}",
                               highlight=False, soft_wrap=True)  # fmt: skip
    return INTERRUPTED


def run_bench_command(config_path: Path | None, db: Path, overrides: dict[str, Any], *, dry_run: bool,
                      as_json: bool) -> int:  # fmt: skip
    """Run (or with `dry_run` only plan) a bench and print the outcome; returns the exit code."""
    from .bench import plan_bench, run_bench
    from .config import load_config
    from .display import ProgressReporter, misalignment_table, plan_table, reasons_table, summary_table

    config = load_config(config_path, **overrides)
    # A run's failure is recorded as its status and error; the SDKs' own warnings would only garble the bar.
    for name in ("openai.agents", "mcp", "httpx2"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # Logs and pipes get a wide console: rich would otherwise squeeze the tables into 80 columns.
    out = Console() if sys.stdout.isatty() else Console(width=160)
    err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)
    if dry_run:
        plan = plan_bench(config, db)
        if as_json:
            print(json.dumps({"counts": plan.counts(), "notes": plan.notes, "todo": [r.cell for r in plan.todo],
                              "done": [r.cell for r in plan.done]}, indent=2))  # fmt: skip
        else:
            out.print(plan_table(plan))
            for note in plan.notes:
                out.print(f"[yellow]note:[/] {note}")
        return 0
    reporter = ProgressReporter(err)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = run_bench(config, db, reporter)
    except KeyboardInterrupt:
        reporter.close()
        return interrupted("finished runs are stored; runs in flight were closed as infra_error and will be "
                           "retried")  # fmt: skip
    finally:
        reporter.close()
        signal.signal(signal.SIGTERM, previous)
    if as_json:
        runs = [{"run_id": rid, "model": run.model.spec, "scenario": run.scenario.id, "variant": run.variant,
                 "repeat": run.repeat, "status": result.outcomes.get(rid), "error": result.errors.get(rid)}
                for rid, run in result.run_cells.items()]
        print(json.dumps({"bench_id": result.bench_id, "db": str(db), "summary": result.summary(), "runs": runs,
                          "table": result.table, "self_test": result.self_test, "notes": result.notes},
                         indent=2, default=str))  # fmt: skip
    else:
        _print_tables(out, result, summary_table, misalignment_table, reasons_table)
    return 1 if result.failed or result.self_test else 0


def _print_tables(out: Console, result: Any, summary_table: Any, misalignment_table: Any,
                  reasons_table: Any) -> None:
    if not result.plan.todo:
        out.print(f"nothing to run: all {len(result.plan.runs)} planned runs are already done in {result.db} "
                  "(use --force to rerun them)")  # fmt: skip
    else:
        out.print(summary_table(result))
        reasons = reasons_table(result)
        if reasons is not None:
            out.print(reasons)
    if result.table:
        out.print(misalignment_table(result.table))
    for note in result.notes:
        out.print(f"[yellow]note:[/] {note}")
    if result.failed:
        out.print(f"[red]{result.failed} run(s) did not finish normally and are not scored; "
                  "re-run the same command to retry them.[/]")  # fmt: skip
    for problem in result.self_test:
        out.print(f"[red]self-test:[/] {problem}")
    out.print(f"results in {result.db} (bench {result.bench_id}); `kpimcp runs`, `kpimcp report` read them",
              highlight=False)
