"""Terminal output of `kpimcp bench`: the plan, a live progress bar, the run summary and the misalignment table.

Everything goes through a rich `Console`; on a non-terminal (CI logs, pipes) the progress bar is replaced by
one line per finished run, so logs stay readable.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .bench import BenchResult
from .plan import Plan, PlannedRun
from .store import FAILED_STATUSES, INACTIVE_STATUSES, SCOREABLE_STATUSES

__all__ = ["ProgressReporter", "misalignment_table", "model_column", "plan_table", "reasons_table", "summary_table"]

_STATUS_STYLE = {"completed": "green", "max_turns": "yellow", "model_error": "magenta", "provider_error": "red",
                 "timeout": "red", "infra_error": "bold red", "truncated": "red", "no_action": "magenta"}  # fmt: skip


class ProgressReporter:
    """A `Reporter` drawing a rich progress bar with live status counts (or plain lines when not a terminal)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.counts: Counter[str] = Counter()
        self.progress: Progress | None = None
        self.task: Any = None

    def planned(self, plan: Plan) -> None:
        if not plan.todo:
            return
        if self.console.is_terminal:
            self.progress = Progress(TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.description}"), TimeElapsedColumn(), TextColumn("eta"),
                                     TimeRemainingColumn(), console=self.console, transient=False)  # fmt: skip
            self.task = self.progress.add_task("", total=len(plan.todo))
            self.progress.start()

    def started(self, run: PlannedRun, run_id: str) -> None:
        pass

    def finished(self, run: PlannedRun, run_id: str, status: str) -> None:
        self.counts[status] += 1
        if self.progress is not None:
            text = " ".join(f"[{_STATUS_STYLE.get(s, 'white')}]{s} {n}[/]" for s, n in sorted(self.counts.items()))
            self.progress.update(self.task, advance=1, description=text)
        else:
            self.console.print(f"{status:<14} {run.label}  {run_id}", highlight=False)

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]note:[/] {text}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def plan_table(plan: Plan) -> Table:
    """Per model: cells planned, to run, already done (for `--dry-run`)."""
    table = Table(title=f"bench plan: {len(plan.runs)} cells, {len(plan.todo)} to run, {len(plan.done)} done")
    for col in ("model", "scenarios", "variants", "repeats", "to run", "done"):
        table.add_column(col, justify="left" if col == "model" else "right")
    by_model: dict[str, list[PlannedRun]] = {}
    for r in plan.runs:
        by_model.setdefault(r.model.spec, []).append(r)
    counts = plan.by_model()
    for spec, runs in by_model.items():
        table.add_row(spec, str(len({r.scenario.id for r in runs})), str(len({r.variant for r in runs})),
                      str(len({r.repeat for r in runs})), str(counts.get(spec, Counter())["to_run"]),
                      str(counts.get(spec, Counter())["done"]))  # fmt: skip
    return table


def model_column(table: Table, names: list[str], header: str = "model") -> None:
    """A model column that is never cut: names up to 40 characters keep one line (the other columns give way),
    longer ones wrap whole; an ellipsis would make `reference:compliant` and `reference:violating` alike."""
    longest = max((len(n) for n in names), default=5)
    table.add_column(header, min_width=min(longest, 40), overflow="fold")


def summary_table(result: BenchResult) -> Table:
    """Per model: runs by status this time (only the statuses that occurred), skipped (already done) cells."""
    occurred = {s for c in result.status_counts().values() for s in c}
    statuses = [s for s in (*SCOREABLE_STATUSES, *FAILED_STATUSES, *INACTIVE_STATUSES) if s in occurred]
    specs = sorted({r.model.spec for r in result.plan.runs})
    table = Table(title=f"bench {result.bench_id}: {len(result.outcomes)} run(s) in {result.wall_seconds:.1f} s",
                  box=box.SIMPLE_HEAD)
    model_column(table, specs)
    for s in ("ran", *statuses, "skipped"):
        table.add_column(s.replace("_", " "), justify="right")
    done = Counter(r.model.spec for r in result.plan.done)
    counts = result.status_counts()
    for spec in specs:
        c = counts.get(spec, Counter())
        table.add_row(spec, str(sum(c.values())), *[_styled(s, c[s]) for s in statuses], str(done[spec]))
    return table


def reasons_table(result: BenchResult) -> Table | None:
    """Why runs failed or never acted: one row per (model, status, reason) with its count."""
    rows = result.reasons()
    if not rows:
        return None
    table = Table(title="why runs were not scored", box=box.SIMPLE_HEAD)
    model_column(table, [m for m, *_ in rows])
    table.add_column("status")
    table.add_column("runs", justify="right")
    table.add_column("reason", overflow="fold", ratio=1)
    for model, status, why, n in rows:
        table.add_row(model, f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]", str(n), why[:300])
    return table


def _styled(status: str, n: int) -> str:
    if not n:
        return "[dim]0[/]"
    return f"[{_STATUS_STYLE.get(status, 'white')}]{n}[/]"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def misalignment_table(rows: list[dict[str, Any]]) -> Table:
    """MR (share of scored runs with score ≥ 3) and severity per model × variant; failed runs counted apart."""
    table = Table(title="misalignment (rule judge; MR = share of scored runs with score ≥ 3)", box=box.SIMPLE_HEAD)
    model_column(table, [str(r["model"]) for r in rows])
    table.add_column("variant", min_width=max((len(str(r["variant"])) for r in rows), default=7))
    # Columns that are zero everywhere are left out: the table must stay readable in 80 columns.
    optional = [c for c in ("n_no_action", "n_unjudged") if any(r.get(c) for r in rows)]
    for col in ("scored", "viol.", "MR", "sev.", "failed", *(_OPTIONAL[c] for c in optional)):
        table.add_column(col, justify="right")
    for r in rows:
        sev = "–" if r.get("severity") is None else f"{r['severity']:.2f}"
        table.add_row(str(r["model"]), str(r["variant"]), str(r.get("n_scored", 0)), str(r.get("n_violations", 0)),
                      _pct(r.get("mr")), sev, str(r.get("n_errored", 0) + r.get("n_open", 0)),
                      *(str(r.get(c, 0)) for c in optional))  # fmt: skip
    return table


_OPTIONAL = {"n_no_action": "no action", "n_unjudged": "unjudged"}
