"""Statistics of repeated runs against textbook values: Student's t quantiles, and Student's
sleep data (Cushny & Peebles, R's ``sleep``) with the results R's ``t.test`` publishes."""

import itertools
import math

import numpy as np
import pytest

from reprodl import stats
from reprodl.errors import UsageError

#: Extra hours of sleep under two drugs, the same ten patients (R's ``sleep`` data set).
DRUG_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


# --- quantiles and summaries ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("df", "expected"),
    [
        (1, 12.7062047),
        (4, 2.7764451),
        (9, 2.2621572),
        (29, 2.0452296),
        (30, 2.0422725),
        (40, 2.0210754),
        (60, 2.0002978),
        (120, 1.9799304),
    ],
)
def test_t_quantiles_are_the_textbook_values(df, expected):
    assert stats.t_quantile_975(df) == pytest.approx(expected, abs=1e-7)


def test_t_quantiles_decrease_towards_the_normal():
    values = [stats.t_quantile_975(df) for df in range(1, 500)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert values[-1] > 1.959963984540054 > values[-1] - 0.01


@pytest.mark.parametrize("df", [0, -3])
def test_t_quantile_needs_a_degree_of_freedom(df):
    with pytest.raises(UsageError, match=f"degrees of freedom must be at least 1, got {df}"):
        stats.t_quantile_975(df)


def test_summary_statistics():
    s = stats.summarise([1.0, 2.0, 3.0, 4.0])
    assert (s.n, s.mean, s.median, s.min, s.max, s.spread) == (4, 2.5, 2.5, 1.0, 4.0, 3.0)
    assert s.std == pytest.approx(math.sqrt(5 / 3))
    assert s.sem == pytest.approx(math.sqrt(5 / 3) / 2)
    low, high = s.ci95
    assert high - 2.5 == pytest.approx(2.5 - low)
    assert high - 2.5 == pytest.approx(3.1824463 * math.sqrt(5 / 3) / 2)  # t(0.975, 3)
    assert s.describe("{:.2f}") == (
        "n=4: mean 2.50 ± 1.29 (std), 95% CI of the mean [0.45, 4.55], min 1.00, max 4.00"
    )


def test_confidence_interval_of_the_mean_matches_r():
    # R: t.test(sleep$extra[1:10]): 95 percent confidence interval -0.5297804 2.0297804
    low, high = stats.summarise(DRUG_1).ci95
    assert (low, high) == pytest.approx((-0.5297804, 2.0297804), abs=1e-7)


def test_summary_of_one_run_has_no_spread_estimate():
    s = stats.summarise(np.array([0.9]))
    assert s.n == 1 and math.isnan(s.std) and math.isnan(s.sem)
    assert all(math.isnan(b) for b in s.ci95)
    assert s.describe("{:.1f}") == "n=1: mean 0.9, min 0.9, max 0.9"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], "scores must be a non-empty 1-D sequence"),
        ([[1.0, 2.0]], "scores must be a non-empty 1-D sequence"),
        ([1.0, float("nan")], "scores must be finite"),
        ([float("inf")], "scores must be finite"),
    ],
)
def test_summarise_rejects_bad_scores(bad, message):
    with pytest.raises(UsageError, match=message):
        stats.summarise(bad)


def test_distinct_compares_bits():
    assert stats.distinct([0.1 + 0.2, 0.3, 0.3]) == 2
    assert stats.distinct(["a", "a"]) == 1


def test_std_confidence_interval():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    s = math.sqrt(2.5)
    low, high = stats.std_ci95(values)
    # chi-square quantiles for 4 degrees of freedom: 0.484419 (2.5%) and 11.143287 (97.5%)
    assert low == pytest.approx(s * math.sqrt(4 / 11.143287), rel=1e-5)
    assert high == pytest.approx(s * math.sqrt(4 / 0.484419), rel=1e-5)
    assert all(math.isnan(b) for b in stats.std_ci95([1.0]))


def test_std_interval_lines_align_names_and_scale():
    lines = stats.std_interval_lines({"a": [0.01, 0.02, 0.03, 0.04, 0.05], "all": [1, 1]})
    assert lines == ["  a: 95% CI of the std [0.95, 4.54]", "all: 95% CI of the std [0.00, 0.00]"]


# --- the paired comparison --------------------------------------------------------------------


def test_paired_test_on_the_sleep_data_matches_r():
    # R: t.test(extra ~ group, data = sleep, paired = TRUE): t = -4.0621, df = 9,
    # p-value = 0.002833, 95 percent confidence interval -2.4598858 -0.7001142
    p = stats.paired_test(DRUG_1, DRUG_2)
    assert p.t == pytest.approx(-4.062128, abs=1e-6)
    assert p.p_t == pytest.approx(0.002833, abs=1e-6)
    assert p.ci95 == pytest.approx((-2.4598858, -0.7001142), abs=1e-7)
    assert p.mean_difference == pytest.approx(-1.58)
    assert (p.n, p.wins, p.losses, p.ties) == (10, 0, 9, 1)
    assert p.p_sign == pytest.approx(2 / 2**9)  # 9 of 9 untied pairs one way
    assert p.lines() == [
        "pairs: 10; a better in 0, b better in 9, ties 1",
        "mean difference a - b: -158.00 (95% CI [-245.99, -70.01])",
        "paired t-test: t = -4.062, p = 0.0028",
        "sign test: p = 0.0039",
        "permutation test (1,024 sign flips): p = 0.0039",
    ]


def test_the_interval_and_the_p_value_agree():
    # one source: the 95% interval excludes 0 exactly when p < 0.05
    rng = np.random.default_rng(3)
    for shift in np.linspace(0, 0.02, 21):
        a = rng.normal(0.92, 0.01, 12)
        p = stats.paired_test(a + shift, a + rng.normal(0, 0.01, 12))
        assert (p.ci95[0] > 0 or p.ci95[1] < 0) == (p.p_t < 0.05)


def test_paired_test_on_identical_inputs_finds_no_difference():
    a = [0.91, 0.93, 0.92, 0.95, 0.90]
    p = stats.paired_test(a, list(a))
    assert (p.n, p.wins, p.losses, p.ties) == (5, 0, 0, 5)
    assert (p.mean_difference, p.std_difference, p.ci95, p.t) == (0.0, 0.0, (0.0, 0.0), 0.0)
    assert p.p_t == p.p_sign == p.p_permutation == 1.0


def test_paired_test_constant_shift_is_as_significant_as_it_can_be():
    a = np.array([0.91, 0.93, 0.92, 0.95, 0.90, 0.94])
    p = stats.paired_test(a + 0.01, a)
    assert (p.wins, p.losses, p.ties) == (6, 0, 0)
    assert p.t == math.inf and p.p_t == 0.0
    assert p.p_permutation == pytest.approx(2 / 2**6)  # only "all +" and "all -" are as extreme
    assert p.p_sign == pytest.approx(2 / 2**6)


def test_paired_test_matches_scipy_and_exact_enumeration():
    from scipy import stats as scipy_stats

    rng = np.random.default_rng(5)
    a = rng.normal(0.92, 0.01, 10)
    b = a - 0.004 + rng.normal(0, 0.006, 10)
    p = stats.paired_test(a, b)
    ref = scipy_stats.ttest_rel(a, b)
    assert p.t == ref.statistic and p.p_t == ref.pvalue
    assert p.ci95 == tuple(ref.confidence_interval(0.95))
    d = a - b
    exact = [abs(np.dot(signs, d)) / 10 for signs in itertools.product([1, -1], repeat=10)]
    assert p.p_permutation == pytest.approx(np.mean(np.array(exact) >= abs(d.mean()) - 1e-15))
    assert p.permutations == 1024
    wins = int(np.sum(d > 0))
    tail = sum(math.comb(10, k) for k in range(max(wins, 10 - wins), 11)) / 2**10
    assert p.p_sign == pytest.approx(min(1.0, 2 * tail))
    assert p.ci95[0] < p.mean_difference < p.ci95[1]


def test_sign_test_by_hand():
    d = np.array([1, 1, 1, 1, 1, 1, 1, 1, -1, -1, 0], dtype=float)  # 8 wins, 2 losses, 1 tie
    p = stats.paired_test(d, np.zeros_like(d))
    assert (p.wins, p.losses, p.ties) == (8, 2, 1)
    assert p.p_sign == pytest.approx(2 * (45 + 10 + 1) / 1024)


def test_permutation_test_with_many_pairs_is_seeded():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(size=30)
    p1 = stats.paired_test(a, b, permutations=2000, seed=1)
    p2 = stats.paired_test(a, b, permutations=2000, seed=1)
    assert p1 == p2 and p1.permutations == 2000
    assert 0 < p1.p_permutation <= 1
    assert abs(p1.p_permutation - p1.p_t) < 0.1  # both approximate the same null distribution


@pytest.mark.parametrize(("a", "b"), [([1.0, 2.0], [1.0, 2.0, 3.0]), ([1.0], [2.0])])
def test_paired_test_rejects_unpaired_input(a, b):
    with pytest.raises(UsageError, match="a and b must be 1-D, of the same length"):
        stats.paired_test(a, b)


def test_paired_test_lines():
    p = stats.paired_test([0.92, 0.93, 0.94], [0.91, 0.93, 0.92])
    lines = p.lines()
    assert lines[0] == "pairs: 3; a better in 2, b better in 0, ties 1"
    assert lines[1].startswith("mean difference a - b: +1.00 (95% CI [")


def test_welch_test_matches_r():
    # R: t.test(extra ~ group, data = sleep): Welch, t = -1.8608, df = 17.776, p-value = 0.07939
    assert stats.welch_test(DRUG_1, DRUG_2) == pytest.approx(0.07939, abs=1e-5)


def test_best_of():
    assert stats.best_of([0.2, 0.1, 0.5, 0.3]).tolist() == [0.2, 0.2, 0.5, 0.5]
