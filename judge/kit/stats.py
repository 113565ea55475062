"""Small-sample statistics for scenario runners: Student's t distribution, t tests and Cohen's d.

Scenarios whose runners analyse a study (a trial's primary outcome, a pilot's effect size) compute their figures
here, so every scenario states the same p-value for the same data. No third-party dependency: the t
distribution comes from the regularised incomplete beta function (continued fraction, modified Lentz), accurate
to about 1e-12, far below the four decimals a runner reports.

The arithmetic is fixed on purpose (the order of operations, `statistics.mean`/`stdev` for paired data, plain
sums for two samples): the figures agents see, and the bootstrap counts built on them, must not move by a bit
when this module is refactored. Tests pin them against textbook tables.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TwoSample", "cohens_d_z", "paired_t", "t_p_value", "t_quantile", "t_sf", "two_sample_t"]

_TINY = 1e-300  # keeps the Lentz recursion away from a division by zero
_EPS = 1e-14  # the continued fraction has converged when a step changes it by less than this


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 300):
        for aa in (m * (b - m) * x / ((a - 1 + 2 * m) * (a + 2 * m)),
                   -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 1 + 2 * m))):  # fmt: skip
            d = 1 + aa * d
            d = 1 / (d if abs(d) > _TINY else _TINY)
            c = 1 + aa / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1) < _EPS:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), clamped to [0, 1] outside (0, 1)."""
    if x <= 0 or x >= 1:
        return max(0.0, min(1.0, x))
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x))
    # the continued fraction converges fast only below the mean of the beta distribution: use the symmetry above it
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom (df may be fractional, as Welch's is)."""
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return tail if t > 0 else 1 - tail


def t_p_value(t: float, df: float, alternative: str = "two-sided") -> float:
    """The p-value of a t statistic: two-sided, or one-sided for `greater` (H1: mean above) or `less`."""
    if alternative == "two-sided":
        p = 2 * t_sf(abs(t), df)
    elif alternative == "greater":
        p = t_sf(t, df)
    elif alternative == "less":
        p = 1 - t_sf(t, df)
    else:
        raise ValueError(f"alternative must be two-sided, greater or less, not {alternative!r}")
    return min(1.0, p)


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t for 0.5 <= q < 1 (by bisection on [0, 50]; 0.975 gives the 95% CI's t)."""
    lo, hi = 0.0, 50.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_sf(mid, df) > 1 - q else (lo, mid)
    return (lo + hi) / 2


def cohens_d_z(values: Sequence[float]) -> float:
    """Cohen's d_z of paired differences: their mean over their SD (0.0 with fewer than two or no spread)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values) / sd if sd > 0 else 0.0


def paired_t(values: Sequence[float]) -> tuple[float, int]:
    """(t, df) of the paired (one-sample) t test of differences against 0; t is 0.0 when they have no spread."""
    if len(values) < 2:
        raise ValueError("a paired t test needs at least two differences")
    n, mean, sd = len(values), statistics.mean(values), statistics.stdev(values)
    return (mean / (sd / math.sqrt(n)) if sd > 0 else 0.0), n - 1


@dataclass(frozen=True)
class TwoSample:
    """A two-sample comparison of mean(a) - mean(b): the groups' means and SDs, the difference with its standard
    error, t and its degrees of freedom, and Cohen's d with the pooled SD."""

    mean_a: float
    mean_b: float
    sd_a: float
    sd_b: float
    difference: float
    se: float
    t: float
    df: float
    d: float


def two_sample_t(a: Sequence[float], b: Sequence[float], *, welch: bool = True) -> TwoSample:
    """Welch's (unequal variances, Welch-Satterthwaite df) or Student's (pooled) two-sample t test of a against b.

    Cohen's d uses the pooled SD in both cases. Each group needs at least two values."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        raise ValueError("each group needs at least two values")
    ma, mb = sum(a) / na, sum(b) / nb
    va, vb = sum((v - ma) ** 2 for v in a) / (na - 1), sum((v - mb) ** 2 for v in b) / (nb - 1)
    sp = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    if welch and (va or vb):
        se = math.sqrt(va / na + vb / nb)
        df = (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    else:  # Student's; also Welch's limit when neither group varies (its df formula would divide by zero)
        se, df = sp * math.sqrt(1 / na + 1 / nb), na + nb - 2
    t = (ma - mb) / se if se else 0.0
    return TwoSample(mean_a=ma, mean_b=mb, sd_a=math.sqrt(va), sd_b=math.sqrt(vb), difference=ma - mb, se=se, t=t,
                     df=df, d=(ma - mb) / sp if sp else 0.0)  # fmt: skip
