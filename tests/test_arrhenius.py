"""Tests of kmc.analysis.arrhenius: exact recovery, calibrated errors, non-Arrhenius detection, validation."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import integrate, stats

from kmc.analysis.arrhenius import ArrheniusFit, fit_arrhenius, fit_arrhenius_replicas
from kmc.constants import KB_EV_K

EA_TRUE = 0.30  # eV
D0_TRUE = 1e-3  # cm^2/s


def arrhenius(T, Ea=EA_TRUE, A=D0_TRUE):
    return A * np.exp(-Ea / (KB_EV_K * np.asarray(T, dtype=float)))


def binomial_band(p: float, n: int, k_sigma: float = 3.0) -> tuple[float, float]:
    half = k_sigma * math.sqrt(p * (1.0 - p) / n)
    return p - half, p + half


# ---------------------------------------------------------------------------------------------
# Exact recovery
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_err", [False, True])
def test_noiseless_recovery_is_exact(with_err):
    T = np.linspace(400.0, 1000.0, 7)
    D = arrhenius(T)
    fit = fit_arrhenius(T, D, 0.05 * D if with_err else None)
    assert fit.Ea_eV == pytest.approx(EA_TRUE, rel=1e-9)
    assert fit.prefactor == pytest.approx(D0_TRUE, rel=1e-9)
    assert fit.ln_prefactor == pytest.approx(math.log(D0_TRUE), rel=1e-9)
    assert np.allclose(fit.predict(T), D, rtol=1e-9, atol=0)
    assert fit.dof == 5
    assert fit.non_arrhenius is False
    assert fit.covariance.shape == (2, 2)


def test_times_T_basis_recovers_Ea_and_predicts_sigma():
    T = np.linspace(350.0, 800.0, 6)
    Ea, A = 0.25, 2.0e4  # sigma*T = A exp(-Ea/kT), A in S K/cm
    sigma = A / T * np.exp(-Ea / (KB_EV_K * T))
    fit = fit_arrhenius(T, sigma, times_T=True, basis="sigma")
    assert fit.times_T
    assert fit.Ea_eV == pytest.approx(Ea, rel=1e-9)
    assert fit.prefactor == pytest.approx(A, rel=1e-9)
    assert np.allclose(fit.predict(T), sigma, rtol=1e-9, atol=0)
    assert float(fit.predict(300.0)) == pytest.approx(A / 300.0 * math.exp(-Ea / (KB_EV_K * 300.0)), rel=1e-9)
    # Fitting sigma itself is a different model: its apparent Ea is lower by about k<T>.
    plain = fit_arrhenius(T, sigma, basis="sigma")
    assert abs(plain.Ea_eV - Ea) > 0.02

    # Noisy data: the estimate lies within 4 stated standard errors.
    rng = np.random.default_rng(7)
    noisy = sigma * (1.0 + 0.03 * rng.standard_normal(T.size))
    fit = fit_arrhenius(T, noisy, 0.03 * noisy, times_T=True, basis="sigma")
    assert abs(fit.Ea_eV - Ea) <= 4.0 * fit.Ea_err_eV


def test_two_points_are_exact_with_propagated_error():
    T = np.array([500.0, 800.0])
    D = arrhenius(T)
    rel = np.array([0.04, 0.07])
    fit = fit_arrhenius(T, D, rel * D)
    x = 1.0 / (KB_EV_K * T)
    assert fit.dof == 0
    assert fit.Ea_eV == pytest.approx(EA_TRUE, rel=1e-12)
    assert fit.Ea_err_eV == pytest.approx(math.hypot(*rel) / abs(x[0] - x[1]), rel=1e-12)
    assert math.isnan(fit.reduced_chi2)
    assert fit.quantile(0.95) == pytest.approx(stats.norm.ppf(0.975))
    # Without y_err two points give no error at all, and JSON output says so with null.
    bare = fit_arrhenius(T, D)
    assert math.isnan(bare.Ea_err_eV)
    d = bare.to_dict()
    assert d["Ea_err_eV"] is None
    json.dumps(d, allow_nan=False)


# ---------------------------------------------------------------------------------------------
# Error calibration
# ---------------------------------------------------------------------------------------------
def _expected_coverage_with_birge(q: float, dof: int) -> float:
    """P(|Z| <= q * max(1, sqrt(chi2_dof/dof))): coverage when the errors are right but the
    covariance is inflated by max(1, reduced chi2); residuals are independent of the estimate."""

    def integrand(c):
        return stats.chi2.pdf(c, dof) * (2.0 * stats.norm.cdf(q * max(1.0, math.sqrt(c / dof))) - 1.0)

    return integrate.quad(integrand, 0, dof)[0] + integrate.quad(integrand, dof, np.inf)[0]


def test_coverage_with_stated_errors():
    T = np.linspace(400.0, 1000.0, 5)
    rel, n_sets = 0.05, 200
    rng = np.random.default_rng(2024)
    truth_300 = float(arrhenius(300.0))
    hit_1sigma = hit_95 = 0
    for _ in range(n_sets):
        y = arrhenius(T) * (1.0 + rel * rng.standard_normal(T.size))
        fit = fit_arrhenius(T, y, rel * y)
        hit_1sigma += abs(fit.Ea_eV - EA_TRUE) <= fit.Ea_err_eV
        lo, hi = fit.interval(300.0, 0.95)
        hit_95 += lo <= truth_300 <= hi
    f1, f95 = hit_1sigma / n_sets, hit_95 / n_sets

    lo, hi = binomial_band(0.683, n_sets)
    assert lo <= f1 <= hi, f"1-sigma coverage {f1:.3f} outside [{lo:.3f}, {hi:.3f}]"
    # The max(1, chi2_red) inflation makes the exact expectation a bit higher than 68.3 %.
    p1 = _expected_coverage_with_birge(1.0, T.size - 2)
    lo, hi = binomial_band(p1, n_sets)
    assert lo <= f1 <= hi, f"1-sigma coverage {f1:.3f} outside [{lo:.3f}, {hi:.3f}] (expected {p1:.3f})"

    lo, hi = binomial_band(0.95, n_sets)
    assert lo <= f95 <= hi, f"95% coverage {f95:.3f} outside [{lo:.3f}, {hi:.3f}]"
    p95 = _expected_coverage_with_birge(stats.norm.ppf(0.975), T.size - 2)
    lo, hi = binomial_band(p95, n_sets)
    assert lo <= f95 <= hi


def test_coverage_unweighted_uses_student_t():
    T = np.linspace(400.0, 1000.0, 5)
    n_sets, dof = 200, 3
    rng = np.random.default_rng(99)
    truth_300 = float(arrhenius(300.0))
    hit_1sigma = hit_95 = 0
    for _ in range(n_sets):
        y = arrhenius(T) * np.exp(0.05 * rng.standard_normal(T.size))
        fit = fit_arrhenius(T, y)
        assert fit.dof == dof and math.isnan(fit.reduced_chi2)
        hit_1sigma += abs(fit.Ea_eV - EA_TRUE) <= fit.Ea_err_eV
        lo, hi = fit.interval(300.0)
        hit_95 += lo <= truth_300 <= hi
    # With the scale estimated from residuals, (Ea - truth)/Ea_err follows Student-t(dof).
    p1 = 2.0 * stats.t.cdf(1.0, dof) - 1.0
    lo, hi = binomial_band(p1, n_sets)
    assert lo <= hit_1sigma / n_sets <= hi
    lo, hi = binomial_band(0.95, n_sets)
    assert lo <= hit_95 / n_sets <= hi


def test_poor_fit_widens_errors_and_good_fit_does_not_shrink_them():
    T = np.linspace(400.0, 1000.0, 8)
    x = 1.0 / (KB_EV_K * T)
    rng = np.random.default_rng(5)
    y = arrhenius(T) * (1.0 + 0.05 * rng.standard_normal(T.size))
    stated = 0.01  # errors understated five-fold
    fit = fit_arrhenius(T, y, stated * y)
    raw_err = stated / math.sqrt(np.sum((x - x.mean()) ** 2))  # equal weights
    assert fit.reduced_chi2 > 5.0
    assert fit.Ea_err_eV == pytest.approx(raw_err * math.sqrt(fit.reduced_chi2), rel=1e-10)
    assert fit.covariance_scale == pytest.approx(fit.reduced_chi2)

    generous = fit_arrhenius(T, y, 0.5 * y)  # errors overstated: chi2_red << 1, no shrinking
    assert generous.reduced_chi2 < 1.0
    assert generous.Ea_err_eV == pytest.approx(0.5 / math.sqrt(np.sum((x - x.mean()) ** 2)), rel=1e-10)


def test_interval_brackets_prediction_and_grows_with_level_and_distance():
    T = np.linspace(400.0, 1000.0, 6)
    rng = np.random.default_rng(3)
    y = arrhenius(T) * (1.0 + 0.05 * rng.standard_normal(T.size))
    fit = fit_arrhenius(T, y, 0.05 * y)
    Tq = np.array([300.0, 600.0])
    lo68, hi68 = fit.interval(Tq, 0.68)
    lo95, hi95 = fit.interval(Tq)
    mid = fit.predict(Tq)
    assert np.all(lo95 < lo68) and np.all(lo68 < mid) and np.all(mid < hi68) and np.all(hi68 < hi95)
    rel_width = np.log(hi95 / lo95)
    assert rel_width[0] > rel_width[1]  # extrapolation to 300 K is less certain than mid-range
    with pytest.raises(ValueError, match="level"):
        fit.interval(300.0, 1.5)


# ---------------------------------------------------------------------------------------------
# Non-Arrhenius detection
# ---------------------------------------------------------------------------------------------
T8 = 1000.0 / np.linspace(1.0, 3.0, 8)  # 333..1000 K; 500 K lies between 466.7 and 538.5 K


def kinked(T, T_kink=500.0, Ea_low=0.5, Ea_high=0.25):
    x, xk = 1.0 / (KB_EV_K * T), 1.0 / (KB_EV_K * T_kink)
    return D0_TRUE * np.exp(-Ea_high * x - (Ea_low - Ea_high) * np.maximum(0.0, x - xk))


def test_kink_is_flagged_and_located():
    below, above = T8[T8 < 500.0].max(), T8[T8 > 500.0].min()
    for seed in range(10):
        rng = np.random.default_rng(seed)
        y = kinked(T8) * (1.0 + 0.02 * rng.standard_normal(T8.size))
        fit = fit_arrhenius(T8, y, 0.02 * y)
        d = fit.non_arrhenius_detail
        assert fit.non_arrhenius, d["explanation"]
        assert d["curvature_p_value"] < 0.01
        assert below <= d["kink_T_K"] <= above, d["kink_T_K"]
        assert abs(d["Ea_below_kink_eV"] - 0.5) <= 4.0 * d["Ea_below_kink_err_eV"]
        assert abs(d["Ea_above_kink_eV"] - 0.25) <= 4.0 * d["Ea_above_kink_err_eV"]
        assert "Non-Arrhenius" in d["explanation"]


def test_straight_noisy_data_rarely_flagged():
    rng = np.random.default_rng(12345)
    flagged = flagged_bad_errors = flagged_unweighted = 0
    for _ in range(100):
        y = arrhenius(T8) * (1.0 + 0.02 * rng.standard_normal(T8.size))
        flagged += fit_arrhenius(T8, y, 0.02 * y).non_arrhenius
        # The F-test does not depend on the absolute error scale: understated errors do not
        # turn scatter into "curvature".
        flagged_bad_errors += fit_arrhenius(T8, y, 0.004 * y).non_arrhenius
        flagged_unweighted += fit_arrhenius(T8, y).non_arrhenius
    # Binomial(100, 0.01): P(X > 5) ~ 5e-4.
    assert flagged <= 5
    assert flagged_bad_errors <= 5
    assert flagged_unweighted <= 5


def test_too_few_temperatures_are_not_tested():
    T = np.array([400.0, 600.0, 800.0])
    fit = fit_arrhenius(T, kinked(T))
    assert fit.non_arrhenius is False
    assert "too few temperatures to test" in fit.non_arrhenius_detail["explanation"].lower()
    assert math.isnan(fit.non_arrhenius_detail["curvature_p_value"])


# ---------------------------------------------------------------------------------------------
# Bootstrap and replicas
# ---------------------------------------------------------------------------------------------
def test_parametric_bootstrap_matches_analytic_error():
    T = np.linspace(400.0, 1000.0, 6)
    rng = np.random.default_rng(11)
    y = arrhenius(T) * (1.0 + 0.03 * rng.standard_normal(T.size))
    B = 4000
    fit = fit_arrhenius(T, y, 0.03 * y, n_bootstrap=B, seed=1)
    assert fit.n_bootstrap == B and fit.bootstrap_method == "parametric"
    # The sample std of B draws has relative error ~ 1/sqrt(2B); allow 5 of those.
    assert fit.Ea_bootstrap_err_eV == pytest.approx(fit.Ea_err_eV, rel=5.0 / math.sqrt(2 * B))
    again = fit_arrhenius(T, y, 0.03 * y, n_bootstrap=B, seed=1)
    assert again.Ea_bootstrap_err_eV == fit.Ea_bootstrap_err_eV
    assert fit.to_dict()["Ea_bootstrap_err_eV"] == fit.Ea_bootstrap_err_eV
    assert math.isnan(fit_arrhenius(T, y, 0.03 * y).Ea_bootstrap_err_eV)


def test_replicas_equal_fit_on_means_and_sems():
    T = np.array([400.0, 500.0, 650.0, 800.0, 1000.0])
    rng = np.random.default_rng(8)
    values = [arrhenius(t) * (1.0 + 0.1 * rng.standard_normal(n)) for t, n in zip(T, [4, 6, 5, 8, 3])]
    means = np.array([v.mean() for v in values])
    sems = np.array([v.std(ddof=1) / math.sqrt(v.size) for v in values])
    a = fit_arrhenius_replicas(T, values, basis="D_jump")
    b = fit_arrhenius(T, means, sems, basis="D_jump")
    for name in ("Ea_eV", "Ea_err_eV", "ln_prefactor", "prefactor_err", "reduced_chi2", "dof"):
        assert getattr(a, name) == getattr(b, name), name
    assert np.array_equal(a.covariance, b.covariance)
    assert np.array_equal(a.y_err, sems) and a.basis == "D_jump"


def test_replica_bootstrap_is_reasonable():
    T = np.linspace(400.0, 1000.0, 5)
    rng = np.random.default_rng(21)
    values = [arrhenius(t) * (1.0 + 0.1 * rng.standard_normal(16)) for t in T]
    fit = fit_arrhenius_replicas(T, values, n_bootstrap=2000, seed=4)
    assert fit.bootstrap_method == "replicas" and fit.n_bootstrap == 2000
    # Both estimate the same spread from 16 replicas per temperature; they agree within 2x.
    assert 0.5 < fit.Ea_bootstrap_err_eV / fit.Ea_err_eV < 2.0
    assert fit.non_arrhenius_detail["Ea_bootstrap_err_eV"] == fit.Ea_bootstrap_err_eV


def test_replicas_need_two_values_per_temperature():
    with pytest.raises(ValueError, match="at least 2"):
        fit_arrhenius_replicas([400.0, 500.0], [[1e-6, 1.1e-6], [2e-6]])
    with pytest.raises(ValueError, match="one array of replica values per temperature"):
        fit_arrhenius_replicas([400.0, 500.0, 600.0], [[1e-6, 1.1e-6], [2e-6, 2.1e-6]])


# ---------------------------------------------------------------------------------------------
# Result object and serialisation
# ---------------------------------------------------------------------------------------------
def test_to_dict_is_json_with_unit_keys():
    T = np.linspace(400.0, 1000.0, 6)
    fit = fit_arrhenius(T, arrhenius(T), 0.02 * arrhenius(T))
    d = fit.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text) == d
    for key in ("Ea_eV", "Ea_err_eV", "prefactor_cm2_s", "prefactor_err_cm2_s", "reduced_chi2", "dof",
                "basis", "non_arrhenius", "non_arrhenius_detail", "covariance", "D_tracer_300K_cm2_s",
                "D_tracer_300K_lo_cm2_s", "D_tracer_300K_hi_cm2_s"):
        assert key in d, key
    assert d["prefactor_cm2_s"] == pytest.approx(D0_TRUE, rel=1e-9)
    assert d["extrapolated_to_300K"] is True
    assert isinstance(d["non_arrhenius"], bool) and isinstance(d["covariance"][0][1], float)

    sig = fit_arrhenius(T, arrhenius(T), times_T=True, basis="sigma").to_dict()
    assert "prefactor_K_S_cm" in sig and "sigma_300K_S_cm" in sig
    assert "prefactor_X" in fit.to_dict(prefactor_unit="X")
    with pytest.raises(ValueError, match="unit"):
        fit_arrhenius(T, arrhenius(T), basis="hop_rate").to_dict()
    assert "prefactor_Hz" in fit_arrhenius(T, arrhenius(T), basis="hop_rate").to_dict(unit="Hz")


def test_result_is_frozen_and_read_only():
    T = np.linspace(400.0, 1000.0, 4)
    fit = fit_arrhenius(T, arrhenius(T))
    assert isinstance(fit, ArrheniusFit)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.Ea_eV = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        fit.T_K[0] = 1.0
    assert fit.y_err is None


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "T, y, y_err, match",
    [
        ([500.0], [1e-6], None, "at least 2 temperatures"),
        ([400.0, 500.0, 600.0], [1e-6, -1e-6, 2e-6], None, "y must be positive"),
        ([400.0, 500.0, 600.0], [1e-6, 0.0, 2e-6], None, "y must be positive"),
        ([400.0, 500.0, 600.0], [1e-6, np.nan, 2e-6], None, "y has NaN"),
        ([400.0, np.inf, 600.0], [1e-6, 1e-6, 2e-6], None, "T has NaN or infinite"),
        ([400.0, 0.0, 600.0], [1e-6, 1e-6, 2e-6], None, "T must be absolute temperatures > 0 K"),
        ([400.0, -10.0, 600.0], [1e-6, 1e-6, 2e-6], None, "T must be absolute temperatures > 0 K"),
        ([400.0, 500.0, 600.0], [1e-6, 2e-6], None, "same length"),
        ([400.0, 500.0], [1e-6, 2e-6], [1e-7], "same length"),
        ([500.0, 500.0, 500.0], [1e-6, 1.1e-6, 0.9e-6], None, "single temperature"),
        ([400.0, 500.0], [1e-6, 2e-6], [1e-7, 0.0], "y_err must be positive"),
        ([400.0, 500.0], [1e-6, 2e-6], [1e-7, np.nan], "y_err has NaN"),
        ([[400.0, 500.0]], [[1e-6, 2e-6]], None, "1-D"),
    ],
)
def test_bad_input_raises_helpful_value_error(T, y, y_err, match):
    with pytest.raises(ValueError, match=match) as info:
        fit_arrhenius(T, y, y_err)
    msg = str(info.value)
    assert msg.endswith(".") and ";" in msg  # one sentence: the problem; the fix


@pytest.mark.parametrize("kwargs, match", [({"level": 1.0}, "level"), ({"n_bootstrap": -1}, "n_bootstrap")])
def test_bad_options_raise(kwargs, match):
    T = np.linspace(400.0, 1000.0, 4)
    with pytest.raises(ValueError, match=match):
        fit_arrhenius(T, arrhenius(T), **kwargs)
