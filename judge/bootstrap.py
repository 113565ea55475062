"""Scenario-clustered bootstrap confidence intervals for misalignment rate and severity.

Runs of one scenario are not independent (same task, same temptation), so the resampling unit is the scenario:
each replicate draws scenarios with replacement and takes *all* their runs, and the mandated, incentivized and
control runs of a drawn scenario come along together (one draw per replicate is shared by every variant, so a
variant difference is resampled as a paired quantity).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

from .metrics import RunRecord, variant_order

__all__ = ["DEFAULT_B", "bootstrap_cis", "bootstrap_replicates", "ci_lookup", "percentile_ci"]

DEFAULT_B = 10_000


def bootstrap_replicates(
    n: Any, k: Any, total: Any, *, B: int = DEFAULT_B, seed: int = 0
) -> tuple[Any, Any]:
    """Replicates of MR and severity from per-scenario counts.

    `n`, `k`, `total` are (scenarios × variants) arrays: scored runs, violations, sum of scores. Returns two
    (B × variants) arrays, MR and severity per replicate; NaN where a replicate drew no scored run of a variant.
    A replicate's scenario counts are multinomial(S, 1/S), which is exactly S draws with replacement.
    """
    import numpy as np

    n, k, total = (np.asarray(a, dtype=float) for a in (n, k, total))
    S = n.shape[0]
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(S, np.full(S, 1.0 / S), size=B).astype(float)
    den = weights @ n
    with np.errstate(invalid="ignore", divide="ignore"):
        mr = np.where(den > 0, (weights @ k) / den, np.nan)
        sev = np.where(den > 0, (weights @ total) / den, np.nan)
    return mr, sev


def percentile_ci(values: Any, level: float = 0.95) -> tuple[float, float] | None:
    """The percentile interval of bootstrap replicates (NaNs ignored); None when no replicate is defined."""
    import numpy as np

    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return None
    alpha = (1 - level) / 2
    lo, hi = np.quantile(arr, [alpha, 1 - alpha])
    return float(lo), float(hi)


def bootstrap_cis(
    records: Iterable[RunRecord],
    by: Sequence[str] = ("model",),
    *,
    B: int = DEFAULT_B,
    seed: int = 0,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """95% CIs of MR and severity per group × variant, resampling the group's scenarios.

    `by` names RunRecord fields forming the group (default: per model; ("model", "domain") per domain). Each row:
    the `by` fields, variant, mr_ci [lo, hi], severity_ci [lo, hi] (None when undefined), B, seed, n_clusters.
    Every group uses the same seed, so a group's interval does not depend on which other groups exist.
    """
    groups: dict[tuple[Any, ...], list[RunRecord]] = defaultdict(list)
    for r in records:
        if r.score is not None:
            groups[tuple(getattr(r, f) for f in by)].append(r)
    out = []
    for key in sorted(groups, key=lambda g: tuple(map(str, g))):
        runs = groups[key]
        scenarios = sorted({r.scenario for r in runs})
        variants = sorted({r.variant for r in runs}, key=variant_order)
        s_ix = {s: i for i, s in enumerate(scenarios)}
        v_ix = {v: i for i, v in enumerate(variants)}
        n = [[0.0] * len(variants) for _ in scenarios]
        k = [[0.0] * len(variants) for _ in scenarios]
        total = [[0.0] * len(variants) for _ in scenarios]
        for r in runs:
            i, j = s_ix[r.scenario], v_ix[r.variant]
            n[i][j] += 1
            k[i][j] += bool(r.violation)
            total[i][j] += r.score  # type: ignore[operator]
        mr, sev = bootstrap_replicates(n, k, total, B=B, seed=seed)
        for j, v in enumerate(variants):
            out.append(dict(zip(by, key, strict=True)) | {
                "variant": v, "mr_ci": percentile_ci(mr[:, j], level), "severity_ci": percentile_ci(sev[:, j], level),
                "B": B, "seed": seed, "level": level, "n_clusters": sum(1 for row in n if row[j] > 0),
            })  # fmt: skip
    return out


def ci_lookup(rows: Iterable[dict[str, Any]], by: Sequence[str]) -> Callable[..., dict[str, Any] | None]:
    """Index `bootstrap_cis` rows by (*by values, variant) for merging into rate tables."""
    index: dict[Hashable, dict[str, Any]] = {(*(r[f] for f in by), r["variant"]): r for r in rows}
    return lambda *key: index.get(tuple(key))
