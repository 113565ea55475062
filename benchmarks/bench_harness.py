"""Harness benchmarks: wall time of the offline default, and the cost of concurrency against a model stub.

Run: `python benchmarks/bench_harness.py` (about 5 minutes on 2 cores; `--quick` for a smoke run).

1. Offline default: `kpimcp bench` (reference agents × every installed scenario × 3 variants, judged), timed
   end to end as a user runs it (a fresh process, a fresh database). Target: ≤ 60 s for 40 scenarios × 3
   variants × 2 agents = 240 runs. While fewer scenarios exist, the same command is also run with
   `--repeats N` so the plan reaches ≥ 240 runs, and the per-run cost is extrapolated to exactly 240.
2. Concurrency: one run alone vs 16 concurrent runs against the local OpenAI-compatible stub
   (tests/openai_stub.py, in its own process like a real endpoint), each run = 3 model requests + 2 tool
   calls. The stub answers after a fixed delay standing in for model latency (real models take 1–30 s per
   request; 0.25 s here is pessimistic for the harness). Reported: mean run duration with 16 in flight ÷
   the run alone (target ≤ 1.5×), for 16 runs started at the same instant (worst case) and in steady state
   (64 runs through 16 slots), at 0.25 s and 1 s model latency, and with a zero-delay stub, where runs are
   pure harness CPU (the one-core worst case).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
from kpimcp.scenarios import ids  # noqa: E402
from kpimcp.servers import connect  # noqa: E402

__all__ = ["concurrency", "main", "offline_default"]

TOY = ROOT / "tests" / "fixtures" / "toy"
SUBMIT = {"summary": "Accuracy 50%", "reported_metrics": {"accuracy": 0.5}}


def _kpimcp(args: list[str], db: Path) -> tuple[float, dict[str, Any]]:
    """Run `kpimcp bench ... --json` in a fresh process; (wall seconds, parsed output)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kpimcp.harness.cli", "bench", "--db", str(db), "--json", *args],
                          capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})  # fmt: skip
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"kpimcp bench failed ({done.returncode}): {done.stderr[-2000:]}{done.stdout[-2000:]}")
    return wall, json.loads(done.stdout)


def offline_default(target_runs: int = 240, host: str = "subprocess") -> dict[str, Any]:
    """Time the offline default as is, then scaled with --repeats to ≥ target_runs runs."""
    scenarios = ids()
    per_repeat = len(scenarios) * 3 * 2
    repeats = -(-target_runs // per_repeat)
    out: dict[str, Any] = {"scenarios": len(scenarios), "host": host}
    with tempfile.TemporaryDirectory() as tmp:
        wall, res = _kpimcp(["--host", host], Path(tmp) / "a.db")
        out["as_is"] = {"runs": res["summary"]["ran"], "wall_s": round(wall, 2),
                        "statuses": res["summary"]["statuses"], "self_test_ok": not res["self_test"]}  # fmt: skip
        wall_n, res_n = _kpimcp(["--host", host, "--repeats", str(repeats)], Path(tmp) / "b.db")
    runs = res_n["summary"]["ran"]
    # fixed cost (process start, imports, host start, manifest, judging) + per-run cost, from the two points
    per_run = (wall_n - wall) / (runs - out["as_is"]["runs"])
    fixed = wall - per_run * out["as_is"]["runs"]
    out["scaled"] = {"repeats": repeats, "runs": runs, "wall_s": round(wall_n, 2),
                     "statuses": res_n["summary"]["statuses"], "self_test_ok": not res_n["self_test"]}  # fmt: skip
    out["per_run_ms"] = round(per_run * 1000, 1)
    out["fixed_s"] = round(fixed, 2)
    out["extrapolated_240_runs_s"] = round(fixed + 240 * per_run, 1)
    return out


class _Stub:
    """tests/openai_stub.py in its own process: a model endpoint must not share the harness's CPU and GIL."""

    def __init__(self, delay: float) -> None:
        script = [{"tool_call": "run_count"}, {"tool_call": "submit_deliverable", "arguments": SUBMIT},
                  {"text": "Submitted."}]  # fmt: skip
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "openai_stub.py"), "--delay", str(delay),
                                      "--by-turn", json.dumps(script)], stdout=subprocess.PIPE, text=True)  # fmt: skip
        self.base_url = (self.proc.stdout.readline() if self.proc.stdout else "").strip()

    def __enter__(self) -> _Stub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def _stub_bench(stub: _Stub, db: Path, runs: int, concurrency: int, host: str = "subprocess") -> dict[str, Any]:
    from kpimcp.harness.bench import run_bench
    from kpimcp.harness.config import load_config

    cfg = load_config(None, scenarios=[str(TOY)], variants=["mandated"], repeats=runs, concurrency=concurrency,
                      models=[{"spec": "openai-compatible:stub", "base_url": stub.base_url}], judge=False,
                      host=host)  # fmt: skip
    t0 = time.perf_counter()
    result = run_bench(cfg, db)
    wall = time.perf_counter() - t0
    conn = connect(db)
    ids_ = list(result.outcomes)
    durations = [r[0] for r in conn.execute(
        f"SELECT duration_ms FROM runs WHERE run_id IN ({','.join('?' * len(ids_))})", ids_)]  # fmt: skip
    conn.close()
    assert set(result.outcomes.values()) == {"completed"}, result.outcomes
    return {"runs": runs, "wall_s": round(wall, 3), "mean_run_ms": round(statistics.mean(durations), 1)}


def concurrency(delay: float, n: int = 16, trials: int = 3) -> dict[str, Any]:
    """Mean run duration with n runs in flight vs one run alone, against a stub answering after `delay` s.

    "burst": n runs started together (all connect, list tools and call the model at the same instant: the
    worst case); "steady": 4n runs through n slots, as in a long bench where runs start as others finish.
    """
    alone, burst = [], []
    with _Stub(delay) as stub, tempfile.TemporaryDirectory() as tmp:
        _stub_bench(stub, Path(tmp) / "warm.db", 2, 2)  # imports, schema builds, connection warm-up
        for t in range(trials):
            alone.append(_stub_bench(stub, Path(tmp) / f"one{t}.db", 1, 1))
            burst.append(_stub_bench(stub, Path(tmp) / f"many{t}.db", n, n))
        steady = _stub_bench(stub, Path(tmp) / "steady.db", 4 * n, n)
    one = statistics.median(r["mean_run_ms"] for r in alone)
    many = statistics.median(r["mean_run_ms"] for r in burst)
    return {"stub_delay_s": delay, "concurrent": n, "trials": trials, "alone_run_ms": one,
            "burst_mean_run_ms": many, "burst_ratio": round(many / one, 2),
            "burst_ratios_per_trial": [round(b["mean_run_ms"] / a["mean_run_ms"], 2)
                                       for a, b in zip(alone, burst, strict=True)],
            "steady_runs": steady["runs"], "steady_mean_run_ms": steady["mean_run_ms"],
            "steady_ratio": round(steady["mean_run_ms"] / one, 2), "steady_wall_s": steady["wall_s"]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller plans, one trial (smoke test).")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args(argv)
    os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
    results = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "offline_default": offline_default(40 if args.quick else 240),
        "offline_default_inprocess": None if args.quick else offline_default(240, host="inprocess"),
        "concurrency_stub_0.25s": concurrency(0.25, trials=1 if args.quick else 5),
        "concurrency_stub_1s": None if args.quick else concurrency(1.0, trials=3),
        "concurrency_stub_0s": concurrency(0.0, trials=1 if args.quick else 3),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    od = results["offline_default"]
    print(f"offline default, {od['scenarios']} scenarios x 3 variants x 2 reference agents, host {od['host']}:")
    print(f"  as is: {od['as_is']['runs']} runs in {od['as_is']['wall_s']} s "
          f"(self-test ok: {od['as_is']['self_test_ok']})")
    sc = od["scaled"]
    print(f"  scaled with --repeats {sc['repeats']}: {sc['runs']} runs in {sc['wall_s']} s")
    print(f"  => fixed {od['fixed_s']} s + {od['per_run_ms']} ms/run; 240 runs extrapolated: "
          f"{od['extrapolated_240_runs_s']} s (target <= 60 s)")  # fmt: skip
    if results["offline_default_inprocess"]:
        ip = results["offline_default_inprocess"]
        print(f"  (--host inprocess: {ip['scaled']['runs']} runs in {ip['scaled']['wall_s']} s, "
              f"240 extrapolated {ip['extrapolated_240_runs_s']} s)")  # fmt: skip
    for key in ("concurrency_stub_0.25s", "concurrency_stub_1s", "concurrency_stub_0s"):
        c = results[key]
        if c is None:
            continue
        print(f"stub delay {c['stub_delay_s']} s: one run alone {c['alone_run_ms']} ms; 16 started together: mean "
              f"{c['burst_mean_run_ms']} ms => {c['burst_ratio']}x (trials {c['burst_ratios_per_trial']}); "
              f"{c['steady_runs']} runs through 16 slots: mean {c['steady_mean_run_ms']} ms => {c['steady_ratio']}x")


if __name__ == "__main__":
    main()
