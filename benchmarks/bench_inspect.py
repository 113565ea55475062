"""Per-sample overhead of the Inspect integration: the shared HTTP scenario host vs a stdio server per connection.

The same Inspect eval (one scenario, every variant, `--epochs`, the offline `kpimcp/violating` reference agent so
no model time is counted) is run with `-T transport=http` (the baseline) and `-T transport=stdio`, each in a fresh
database, once with samples one at a time (`max_samples=1`: the cost of one sample) and once with Inspect's
default concurrency. With the react agent a sample opens two MCP connections (the tool listing in setup and the
agent's session); the generate loop opens one per tool call, which over stdio is one server process per call.

Usage: python benchmarks/bench_inspect.py [--scenario ID] [--epochs 2] [--agent react|generate]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("INSPECT_DISPLAY", "none")


def _eval(task: Any, log_dir: str, **kw: Any) -> tuple[float, list[float]]:
    from inspect_ai import eval as inspect_eval

    t0 = time.perf_counter()
    (log,) = inspect_eval(task, model="kpimcp/violating", log_dir=log_dir, display="none", **kw)
    wall = time.perf_counter() - t0
    if log.status != "success":
        raise SystemExit(f"eval failed: {log.error}")
    bad = [s.id for s in log.samples if s.scores["kpimcp_scorer"].metadata["status"] != "completed"]
    if bad:
        raise SystemExit(f"samples not completed: {bad}")
    return wall, [s.total_time for s in log.samples if s.total_time is not None]


def measure(scenario: str, epochs: int, agent: str, transport: str, tmp: Path) -> dict[str, float]:
    from kpimcp.inspect import scenario as scenario_task
    from kpimcp.inspect.host import host_pool

    def task(tag: str) -> Any:
        return scenario_task(scenario=scenario, db=str(tmp / f"{transport}-{tag}.db"), transport=transport,
                             agent=agent, epochs=epochs)  # fmt: skip

    first_wall, _ = _eval(task("warm"), str(tmp / "logs"), max_samples=1)  # includes starting the host (http)
    seq_wall, seq_samples = _eval(task("seq"), str(tmp / "logs"), max_samples=1)
    par_wall, _ = _eval(task("par"), str(tmp / "logs"))
    host_pool().stop_all()
    n = len(seq_samples)
    return {"samples": n, "first_eval_s": first_wall, "per_sample_seq_ms": statistics.mean(seq_samples) * 1000,
            "wall_seq_per_sample_ms": seq_wall / n * 1000, "wall_par_per_sample_ms": par_wall / n * 1000}


def main() -> None:
    from kpimcp.scenarios import ids

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=ids()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--agent", default="react", choices=["react", "generate"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {t: measure(args.scenario, args.epochs, args.agent, t, Path(tmp)) for t in ("http", "stdio")}
    http, stdio = results["http"], results["stdio"]
    print(f"scenario {args.scenario}, agent {args.agent}, {http['samples']} samples per eval, "
          "model kpimcp/violating (no model time)")  # fmt: skip
    print(f"{'measure':38} {'http':>10} {'stdio':>10} {'stdio/http':>11}")
    rows = [("first eval, samples one at a time (s)", "first_eval_s"),
            ("one sample alone: Inspect total (ms)", "per_sample_seq_ms"),
            ("eval wall / samples, one at a time (ms)", "wall_seq_per_sample_ms"),
            ("eval wall / samples, concurrent (ms)", "wall_par_per_sample_ms")]  # fmt: skip
    for label, key in rows:
        print(f"{label:38} {http[key]:10.1f} {stdio[key]:10.1f} {stdio[key] / http[key]:10.2f}x")


if __name__ == "__main__":
    main()
