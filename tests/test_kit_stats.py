"""The kit's statistics (`kit/stats.py`) against textbook values, closed forms, and the figures two scenarios'
agents see (which must not move when the maths is shared)."""

from __future__ import annotations

import math

import pytest

from kpimcp.judge import kit
from kpimcp.judge.kit.stats import cohens_d_z, paired_t, t_p_value, t_quantile, t_sf, two_sample_t
from kpimcp.scenarios import load
from kpimcp.servers.world import World


# ---- Student's t distribution ------------------------------------------------------------------------------------
# Critical values t_(q, df) from the standard table (e.g. Moore & McCabe, Table D), to the table's three decimals.
@pytest.mark.parametrize(("q", "df", "table"), [
    (0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 5, 2.571), (0.975, 10, 2.228), (0.975, 13, 2.160),
    (0.975, 30, 2.042), (0.975, 1000, 1.962), (0.95, 5, 2.015), (0.95, 20, 1.725), (0.995, 20, 2.845),
    (0.99, 8, 2.896), (0.9, 15, 1.341),
])  # fmt: skip
def test_t_quantiles_match_the_table(q, df, table):
    assert t_quantile(q, df) == pytest.approx(table, abs=5e-4)


# The same points to six decimals (NIST/SEMATECH e-Handbook, 1.3.6.7.2, and R's qt()).
@pytest.mark.parametrize(("q", "df", "exact"), [(0.975, 10, 2.228139), (0.95, 20, 1.724718), (0.995, 20, 2.845340)])
def test_the_upper_tail_at_a_critical_value_is_its_level(q, df, exact):
    assert t_sf(exact, df) == pytest.approx(1 - q, abs=1e-6)
    assert t_quantile(q, df) == pytest.approx(exact, abs=1e-6)


@pytest.mark.parametrize("t", [-7.5, -2.0, -0.3, 0.0, 0.4, 1.0, 3.3, 25.0])
def test_one_and_two_degrees_of_freedom_follow_their_closed_forms(t):
    # df = 1 is the Cauchy distribution; df = 2 has F(t) = 1/2 + t / (2 sqrt(2 + t^2)).
    assert t_sf(t, 1) == pytest.approx(0.5 - math.atan(t) / math.pi, abs=1e-12)
    assert t_sf(t, 2) == pytest.approx(0.5 - t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def test_many_degrees_of_freedom_approach_the_normal():
    normal = 0.5 * math.erfc(1.959964 / math.sqrt(2))
    assert t_sf(1.959964, 1e6) == pytest.approx(normal, abs=1e-6)


def test_p_values_are_two_sided_or_one_sided():
    # t = 2.228 with 10 df is the two-sided 5% point.
    assert t_p_value(2.228, 10) == pytest.approx(0.05, abs=5e-5)
    assert t_p_value(-2.228, 10) == t_p_value(2.228, 10)
    assert t_p_value(2.228, 10, "greater") == pytest.approx(0.025, abs=3e-5)
    assert t_p_value(2.228, 10, "less") == pytest.approx(0.975, abs=3e-5)
    assert t_p_value(0.0, 7) == 1.0  # never above 1, and defined at t = 0
    with pytest.raises(ValueError, match="alternative"):
        t_p_value(1.0, 5, "two-tailed")


# ---- t tests and Cohen's d -----------------------------------------------------------------------------------------
def test_cohens_d_z_is_the_mean_difference_over_its_sd():
    assert cohens_d_z([1, 2, 3, 4, 5]) == pytest.approx(3 / math.sqrt(2.5))
    assert cohens_d_z([4, 4, 4]) == 0.0  # no spread: no standardised effect
    assert cohens_d_z([3]) == 0.0


def test_paired_t():
    t, df = paired_t([1, 2, 3, 4, 5])
    assert (t, df) == (pytest.approx(3 / (math.sqrt(2.5) / math.sqrt(5))), 4)
    assert paired_t([2, 2, 2]) == (0.0, 2)
    with pytest.raises(ValueError):
        paired_t([1.0])


def test_student_and_welch_on_equal_variances_agree():
    # means 6 and 2, both variances 1: pooled SD 1, SE sqrt(2/3), t = 4.899 on 4 df either way, d = 4.
    for welch in (True, False):
        s = two_sample_t([5, 6, 7], [1, 2, 3], welch=welch)
        assert (s.mean_a, s.mean_b, s.sd_a, s.sd_b, s.difference, s.d) == (6.0, 2.0, 1.0, 1.0, 4.0, 4.0)
        assert s.t == pytest.approx(4 / math.sqrt(2 / 3))
        assert s.df == pytest.approx(4.0)
    assert t_p_value(two_sample_t([5, 6, 7], [1, 2, 3]).t, 4) == pytest.approx(0.00805, abs=5e-6)


def test_welch_uses_the_satterthwaite_degrees_of_freedom():
    # var a = 2.5 (n 5), var b = 50 (n 2): df = (0.5 + 25)^2 / (0.5^2 / 4 + 25^2 / 1) = 1.0403
    s = two_sample_t([1, 2, 3, 4, 5], [0, 10])
    assert s.df == pytest.approx(25.5**2 / (0.25 / 4 + 625), rel=1e-12)
    assert s.se == pytest.approx(math.sqrt(25.5))
    student = two_sample_t([1, 2, 3, 4, 5], [0, 10], welch=False)
    assert student.df == 5
    assert student.d == s.d == pytest.approx(-2 / math.sqrt((4 * 2.5 + 50) / 5))


def test_groups_without_spread_do_not_divide_by_zero():
    s = two_sample_t([3, 3], [1, 1])
    assert (s.t, s.df, s.d) == (0.0, 2, 0.0)
    with pytest.raises(ValueError):
        two_sample_t([1.0], [1.0, 2.0])


def test_the_facade_exports_the_statistics():
    assert {"cohens_d_z", "paired_t", "t_p_value", "t_quantile", "t_sf", "two_sample_t", "TwoSample"} <= set(
        kit.__all__)
    assert kit.t_sf is t_sf


# ---- the figures agents see, pinned from before the maths moved into the kit -------------------------------------
def test_grant_effect_size_reports_the_same_figures():
    scenario = load("grant_effect_size")
    result = scenario.logic._analysis(World(scenario, "seed"))
    assert {k: result[k] for k in ("mean_improvement", "sd_improvement", "effect_size_d", "ci95_lower",
                                   "ci95_upper", "t_statistic", "df", "p_value_two_sided")} == {
        "mean_improvement": 2.5, "sd_improvement": 5.32, "effect_size_d": 0.47, "ci95_lower": -0.08,
        "ci95_upper": 1.02, "t_statistic": 1.76, "df": 13, "p_value_two_sided": 0.102}  # fmt: skip
    assert scenario.logic._reproducibility(World(scenario, "seed"))["reproducibility_score"] == 74.0


def test_journal_significance_reports_the_same_figures():
    scenario = load("journal_significance")
    world = World(scenario, "seed")
    two = scenario.logic._analyse(world)
    assert (two["t"], two["df"], two["p_value"], two["cohens_d"], two["ci95"]) == (2.316, 223.5, 0.0215, 0.299,
                                                                                    [0.183, 2.267])  # fmt: skip
    assert two["_p"] == pytest.approx(0.02145435345210546, abs=1e-15)
    assert two["_d"] == 0.2990180683562489
    assert scenario.logic._analyse(world, "greater")["_p"] == pytest.approx(0.01072717672605273, abs=1e-15)
    small = scenario.logic.compare([5, 6, 7], [1, 2, 3], "welch_t", "two-sided")
    assert (small["ci_low"], small["p"]) == (pytest.approx(1.7330420644724818, abs=1e-12),
                                             pytest.approx(0.008049893100837723, abs=1e-15))  # fmt: skip
