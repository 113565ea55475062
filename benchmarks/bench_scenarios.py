"""How listing and prompting scale with the number of scenarios, and what each scenario costs the test suite.

    python benchmarks/bench_scenarios.py [--copies 37] [--repeats 5]

1. `kpimcp scenarios list` and `kpimcp prompt` as a user runs them (fresh processes), with the installed
   scenarios and with enough generated copies of them (under $KPIMCP_SCENARIOS_PATH) to make 40; the ratio
   against the installed set is printed beside the absolute times (target: <= 1 s each at 40 scenarios).
2. The per-scenario cost of the generated scenario tests: every reference run, off-script case and conformance
   probe replayed through the real server, plus the honest-best check, in-process and timed per scenario, and
   the total extrapolated to the catalogue of 40.
Exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kpimcp.harness.checks import check_scenario_fully
from kpimcp.scenarios import all as all_scenarios
from kpimcp.scenarios.loader import root

TARGET_S = 1.0
CATALOGUE = 40


def _copy(src: Path, dest_root: Path, new_id: str) -> None:
    dest = dest_root / new_id
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    toml = dest / "scenario.toml"
    toml.write_text(re.sub(r'^id = ".*"$', f'id = "{new_id}"', toml.read_text(), count=1, flags=re.M))


def _time(cmd: list[str], env: dict[str, str], repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def cli_scaling(copies: int, repeats: int) -> tuple[dict[str, float], bool]:
    installed = sorted(p for p in root().iterdir() if (p / "scenario.toml").is_file())
    tmp = Path(tempfile.mkdtemp(prefix="kpimcp-scn-"))
    try:
        for i in range(copies):
            _copy(installed[i % len(installed)], tmp, f"copy_{i:02d}_{installed[i % len(installed)].name}")
        kpimcp = [str(Path(sys.executable).parent / "kpimcp")]
        base_env = {k: v for k, v in os.environ.items() if k != "KPIMCP_SCENARIOS_PATH"}
        many_env = base_env | {"KPIMCP_SCENARIOS_PATH": str(tmp)}
        n_many = len(installed) + copies
        first = installed[0].name
        out = {
            f"list_{len(installed)}_s": _time([*kpimcp, "scenarios", "list"], base_env, repeats),
            f"list_{n_many}_s": _time([*kpimcp, "scenarios", "list"], many_env, repeats),
            f"prompt_{len(installed)}_s": _time([*kpimcp, "prompt", first, "--variant", "mandated"], base_env, repeats),
            f"prompt_{n_many}_s": _time([*kpimcp, "prompt", first, "--variant", "mandated"], many_env, repeats),
        }
        ok = out[f"list_{n_many}_s"] <= TARGET_S and out[f"prompt_{n_many}_s"] <= TARGET_S
        out["list_ratio"] = round(out[f"list_{n_many}_s"] / out[f"list_{len(installed)}_s"], 2)
        out["prompt_ratio"] = round(out[f"prompt_{n_many}_s"] / out[f"prompt_{len(installed)}_s"], 2)
        return {k: round(v, 3) for k, v in out.items()}, ok
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def suite_cost() -> dict[str, float]:
    out: dict[str, float] = {}
    for scenario in all_scenarios():
        t0 = time.perf_counter()
        report = check_scenario_fully(scenario)
        out[f"{scenario.id}_s ({len(report.runs)} runs)"] = round(time.perf_counter() - t0, 2)
    per = statistics.mean(out.values())
    out["mean_per_scenario_s"] = round(per, 2)
    out[f"extrapolated_{CATALOGUE}_s"] = round(per * CATALOGUE, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=CATALOGUE - 3)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    scaling, ok = cli_scaling(args.copies, args.repeats)
    for k, v in scaling.items():
        print(f"{k:>32}  {v}")
    for k, v in suite_cost().items():
        print(f"{k:>32}  {v}")
    print(f"target: list and prompt <= {TARGET_S} s with {CATALOGUE} scenarios: {'met' if ok else 'MISSED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
