import numpy as np
import pytest

from experiments.science.stats import fmt_ci, mean_ci, paired, spearman, wilcoxon_p


def test_mean_ci_by_hand():
    # mean 2.5, sd sqrt(5/3), t(0.975, 3) = 3.182446; half-width = t * sd / 2
    ci = mean_ci(np.array([1.0, 2.0, 3.0, 4.0]))
    assert ci.mean == 2.5 and ci.n == 4
    assert ci.half_width == pytest.approx(3.182446305 * np.sqrt(5 / 3) / 2, rel=1e-6)
    assert np.isnan(mean_ci(np.array([1.0])).half_width)


def test_wilcoxon_exact_by_hand():
    # n = 5 differences of one sign: the exact two-sided p is 2 / 2^5
    assert wilcoxon_p(np.array([0.1, 0.2, 0.3, 0.4, 0.5])) == pytest.approx(2 / 32)
    # ranks of |d| = 1..4 with signs (+, −, +, +): W− = 2; of the 16 rank subsets, {}, {1}, {2} sum to ≤ 2,
    # so P(W ≤ 2) = 3/16 and the two-sided p is 6/16
    assert wilcoxon_p(np.array([0.1, -0.2, 0.3, 0.4])) == pytest.approx(6 / 16)
    assert wilcoxon_p(np.zeros(6)) == 1.0


def test_paired_direction_and_wins():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    b = a + np.array([0.5, 0.5, -0.1, 0.5, 0.5])
    lower = paired(a, b, lower_is_better=True)
    assert lower.wins == 4 and lower.n == 5 and lower.win_text == "4/5"
    assert lower.diff.mean == pytest.approx(-0.38)
    assert paired(a, b, lower_is_better=False).wins == 1
    with pytest.raises(ValueError, match="equal shapes"):
        paired(a, b[:3], lower_is_better=True)


def test_spearman_of_monotone_data():
    rho, p = spearman(np.arange(10.0), np.arange(10.0) ** 3)
    assert rho == pytest.approx(1.0) and p < 1e-6
    assert spearman(np.arange(10.0), -np.arange(10.0))[0] == pytest.approx(-1.0)


def test_formatting():
    assert fmt_ci(0.01234, 0.00111) == "0.0123 ± 0.0011"
    assert fmt_ci(12.3456, 1.2) == "12.346 ± 1.200"
    assert fmt_ci(1.5, float("nan")) == "1.500"
