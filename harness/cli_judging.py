"""Terminal helpers of `kpimcp judge`: a progress bar on stderr (plain lines when not a terminal)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["JudgeProgress"]


class JudgeProgress:
    """`on_jobs` / `on_verdict` callbacks for `judge_all`: one bar per stage with live scored/error counts."""

    def __init__(self, *, quiet: bool = False) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.quiet = quiet and not self.console.is_terminal  # `--json` into a pipe: the JSON alone
        self.progress: Any = None
        self.task: Any = None
        self.counts = {"ok": 0, "judge_error": 0}
        self.total = 0
        self.name = ""

    def stage(self, name: str, total: int) -> None:
        """A stage (panel, self) starts with `total` requests to make."""
        self.close()
        self.name, self.total, self.counts = name, total, {"ok": 0, "judge_error": 0}
        if not total or self.quiet:
            return
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn(f"[bold]{name}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.description}"), TimeElapsedColumn(),
                                     console=self.console)  # fmt: skip
            self.task = self.progress.add_task("", total=total)
            self.progress.start()
        else:
            print(f"{name}: {total} verdict(s) to request", file=sys.stderr, flush=True)

    def verdict(self, v: Any) -> None:
        self.counts[v.status] = self.counts.get(v.status, 0) + 1
        done = sum(self.counts.values())
        text = f"[green]{self.counts['ok']} scored[/] [red]{self.counts['judge_error']} judge_error[/]"
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=text)
        elif not self.quiet and (done == self.total or done % max(1, self.total // 10) == 0):
            print(f"{self.name}: {done}/{self.total} ({self.counts['ok']} scored, {self.counts['judge_error']} "
                  "judge_error)", file=sys.stderr, flush=True)  # fmt: skip

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
