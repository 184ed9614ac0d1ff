"""Arrhenius fits with honest uncertainties and a non-Arrhenius check.

The model is ``y = A exp(-Ea / kT)`` (or ``y T = A exp(-Ea / kT)`` for conductivity, ``times_T=True``),
fitted as a straight line ``ln y = ln A - Ea x`` with ``x = 1 / (kB T)`` by weighted linear least
squares. The weights are the inverse variances of ``ln y`` (``(y / y_err)**2``), so the fit is done
where the model is linear and the parameter covariance is exact for Gaussian errors in ``ln y``.

The closed-form straight-line solution (weighted centring of ``x``) is used rather than a generic
solver: it is numerically stable for the large, nearly collinear ``1/kT`` values (10-40 eV^-1) and
gives the 2x2 covariance of ``(ln A, Ea)`` explicitly. The curvature and kink checks use a QR
solve (numpy) on a centred and scaled design; p-values and quantiles come from ``scipy.stats``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence, overload

import numpy as np
from numpy.typing import ArrayLike

from kmc.constants import KB_EV_K
from kmc.files import jsonable

__all__ = ["ArrheniusFit", "fit_arrhenius", "fit_arrhenius_replicas"]


# Significance level of the curvature test: 1 % keeps false alarms on straight data rare.
_CURVATURE_ALPHA = 0.01
# Below this fraction of the total weighted sum of squares a residual is floating-point noise.
_EXACT_RTOL = 1e-20
# Number of kink positions scanned between the interior temperatures.
_KINK_GRID = 400


# ----------------------------------------------------------------------------------------------
# Result object
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ArrheniusFit:
    """Result of an Arrhenius fit; build it with :func:`fit_arrhenius`.

    Attributes
    ----------
    Ea_eV, Ea_err_eV : float
        Activation energy and its standard error (eV). ``Ea_err_eV`` is NaN when it cannot be
        estimated (two points without ``y_err``).
    prefactor, prefactor_err : float
        ``A = exp(ln_prefactor)`` in units of ``y`` (of ``y*K`` if ``times_T``) and its
        first-order (delta-method) standard error ``A * ln_prefactor_err``. The error of ``A``
        is asymmetric in reality; prefer ``ln_prefactor`` and ``covariance`` for propagation.
    ln_prefactor, ln_prefactor_err : float
        ``ln A`` and its standard error.
    covariance : ndarray, shape (2, 2)
        Covariance of ``(ln_prefactor, Ea_eV)`` after any scaling (see ``covariance_scale``).
    covariance_scale : float
        Factor applied to the raw covariance ``(X^T W X)^-1``: ``max(1, reduced_chi2)`` with
        ``y_err``, the residual variance of ``ln y`` without ``y_err``, 1 for two points with
        ``y_err``, NaN for two points without.
    reduced_chi2 : float
        ``chi2 / dof`` of the straight line (NaN without ``y_err`` or when ``dof == 0``).
    dof : int
        Degrees of freedom, ``n_points - 2``.
    basis : str
        Name of the fitted quantity, e.g. ``"D_tracer"``, ``"D_jump"``, ``"sigma"``.
    times_T : bool
        Whether ``y * T`` (rather than ``y``) was fitted.
    level : float
        Default confidence level of :meth:`interval`.
    T_K, y : ndarray
        The data (read-only copies).
    y_err : ndarray or None
        Standard errors of ``y`` (read-only copy), None when the fit was unweighted.
    non_arrhenius : bool
        True when the curvature test rejects a single straight line at the 1 % level.
    non_arrhenius_detail : dict
        ``test``, ``alpha``, ``n_temperatures``, ``curvature_eV2`` (coefficient ``c`` of
        ``(1/kT)^2``) with ``curvature_err_eV2`` and ``curvature_p_value``, ``kink_T_K`` with
        ``Ea_below_kink_eV``/``Ea_above_kink_eV`` and their errors (conditional on the kink
        position), ``kink_ln_y`` (the two-segment fit's ``ln y``, or ``ln(y T)`` if
        ``times_T``, at the kink), ``Ea_bootstrap_err_eV`` and a one-line ``explanation``.
    Ea_bootstrap_err_eV : float
        Bootstrap standard deviation of ``Ea`` (NaN unless ``n_bootstrap > 0``).
    n_bootstrap : int
        Number of bootstrap samples used (after dropping samples with non-positive values).
    bootstrap_method : str
        ``"parametric"``, ``"replicas"`` or ``""``.
    """

    Ea_eV: float
    Ea_err_eV: float
    prefactor: float
    prefactor_err: float
    ln_prefactor: float
    ln_prefactor_err: float
    covariance: np.ndarray
    covariance_scale: float
    reduced_chi2: float
    dof: int
    basis: str
    times_T: bool
    level: float
    T_K: np.ndarray
    y: np.ndarray
    y_err: np.ndarray | None
    non_arrhenius: bool
    non_arrhenius_detail: dict[str, Any] = field(default_factory=dict)
    Ea_bootstrap_err_eV: float = math.nan
    n_bootstrap: int = 0
    bootstrap_method: str = ""

    # -- derived quantities -------------------------------------------------------------------
    @property
    def errors_known(self) -> bool:
        """True when ``y_err`` was given, i.e. the covariance comes from stated errors."""
        return self.y_err is not None

    @property
    def T_range_K(self) -> tuple[float, float]:
        """Lowest and highest fitted temperature (K)."""
        return float(self.T_K.min()), float(self.T_K.max())

    def _ln_y_and_se(self, T: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        T = np.asarray(T, dtype=float)
        if np.any(~np.isfinite(T)) or np.any(T <= 0):
            raise ValueError(
                "T must be finite and positive (K) to predict; pass absolute temperatures."
            )
        x = 1.0 / (KB_EV_K * T)
        ln_y = self.ln_prefactor - self.Ea_eV * x
        if self.times_T:
            ln_y = ln_y - np.log(T)
        # Delta method: gradient of ln y w.r.t. (ln A, Ea) is (1, -x); ln T carries no error.
        c = self.covariance
        var = c[0, 0] - 2.0 * x * c[0, 1] + x * x * c[1, 1]
        return T, ln_y, np.sqrt(np.maximum(var, 0.0))

    def predict(self, T: ArrayLike) -> np.ndarray:
        """Fitted value of ``y`` at temperature(s) ``T`` (K).

        Parameters
        ----------
        T : array_like
            Temperatures in K.

        Returns
        -------
        ndarray
            ``A exp(-Ea/kT)``, divided by ``T`` when ``times_T`` (so conductivity fits return
            conductivity), same shape as ``T``.
        """
        _, ln_y, _ = self._ln_y_and_se(T)
        return np.exp(ln_y)

    def quantile(self, level: float | None = None) -> float:
        """Two-sided quantile used by :meth:`interval`.

        Student-t with ``dof`` when the error scale was estimated from the residuals (no
        ``y_err``); normal when ``y_err`` was given (the errors are treated as known, inflated by
        ``covariance_scale`` if the fit is poor) or when ``dof == 0``.
        """
        level = self.level if level is None else float(level)
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must lie strictly between 0 and 1 (got {level}); use e.g. 0.95.")
        p = 0.5 * (1.0 + level)
        # lazy, and scipy.special rather than scipy.stats (0.4 s against 1 s of imports on every
        # `kmc run`): stats.norm.ppf and stats.t.ppf are these functions, the same doubles
        from scipy.special import ndtri, stdtrit
        if self.errors_known or self.dof == 0:
            return float(ndtri(p))
        return float(stdtrit(self.dof, p))

    def interval(self, T: ArrayLike, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Confidence interval of the fitted mean of ``y`` at temperature(s) ``T``.

        Computed on ``ln y`` with the delta method from ``covariance`` and mapped back with
        ``exp``, so it is asymmetric in ``y`` and always positive.

        Parameters
        ----------
        T : array_like
            Temperatures in K.
        level : float, optional
            Confidence level; defaults to ``self.level``.

        Returns
        -------
        lo, hi : ndarray
            Lower and upper bounds in units of ``y`` (NaN when the covariance is unknown).
        """
        q = self.quantile(level)
        _, ln_y, se = self._ln_y_and_se(T)
        return np.exp(ln_y - q * se), np.exp(ln_y + q * se)

    def to_dict(self, unit: str | None = None, prefactor_unit: str | None = None) -> dict[str, Any]:
        """JSON-serialisable summary (floats, ints, bools, strings, lists, dicts; NaN -> None).

        Parameters
        ----------
        unit : str, optional
            Unit suffix of ``y`` as used in output keys, e.g. ``"cm2_s"`` or ``"S_cm"``. Inferred
            from ``basis`` when omitted (``D*`` -> ``cm2_s``, ``sigma*`` -> ``S_cm``).
        prefactor_unit : str, optional
            Unit suffix of the prefactor; defaults to ``unit``, or ``"K_" + unit`` when
            ``times_T`` (the prefactor of ``y*T`` carries an extra kelvin).

        Returns
        -------
        dict
            Keys ``Ea_eV``, ``Ea_err_eV``, ``prefactor_<pu>``, ``prefactor_err_<pu>``,
            ``ln_prefactor``, ``ln_prefactor_err``, ``covariance`` (of ``[ln_prefactor,
            Ea_eV]``), ``reduced_chi2``, ``dof``, ``basis``, ``times_T``, ``level``,
            ``n_points``, ``T_min_K``, ``T_max_K``, ``<basis>_300K_<unit>`` with
            ``<basis>_300K_lo_<unit>``/``_hi_`` (confidence interval at ``level``),
            ``extrapolated_to_300K``, ``non_arrhenius``, ``non_arrhenius_detail``,
            ``Ea_bootstrap_err_eV``, ``n_bootstrap``, ``bootstrap_method``.
        """
        if unit is None:
            unit = _default_unit(self.basis)
        if prefactor_unit is None:
            prefactor_unit = f"K_{unit}" if self.times_T else unit
        t_lo, t_hi = self.T_range_K
        y300 = float(self.predict(300.0))
        lo300, hi300 = (float(v) for v in self.interval(300.0))
        out: dict[str, Any] = {
            "Ea_eV": self.Ea_eV,
            "Ea_err_eV": self.Ea_err_eV,
            f"prefactor_{prefactor_unit}": self.prefactor,
            f"prefactor_err_{prefactor_unit}": self.prefactor_err,
            "ln_prefactor": self.ln_prefactor,
            "ln_prefactor_err": self.ln_prefactor_err,
            "covariance": self.covariance,
            "covariance_parameters": ["ln_prefactor", "Ea_eV"],
            "reduced_chi2": self.reduced_chi2,
            "dof": self.dof,
            "basis": self.basis,
            "times_T": self.times_T,
            "level": self.level,
            "n_points": int(self.T_K.size),
            "T_min_K": t_lo,
            "T_max_K": t_hi,
            f"{self.basis}_300K_{unit}": y300,
            f"{self.basis}_300K_lo_{unit}": lo300,
            f"{self.basis}_300K_hi_{unit}": hi300,
            "extrapolated_to_300K": not (t_lo <= 300.0 <= t_hi),
            "non_arrhenius": self.non_arrhenius,
            "non_arrhenius_detail": self.non_arrhenius_detail,
            "Ea_bootstrap_err_eV": self.Ea_bootstrap_err_eV,
            "n_bootstrap": self.n_bootstrap,
            "bootstrap_method": self.bootstrap_method,
        }
        return jsonable(out)


def _default_unit(basis: str) -> str:
    if basis.startswith("D"):
        return "cm2_s"
    if basis.startswith("sigma"):
        return "S_cm"
    raise ValueError(
        f"cannot infer the unit of basis {basis!r}; pass to_dict(unit=...), e.g. unit='cm2_s'."
    )


# ----------------------------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------------------------
def _as_1d(name: str, a: ArrayLike) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D sequence of numbers; convert it, e.g. with np.asarray.") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D but has shape {arr.shape}; pass one value per point.")
    return arr


def _validate(
    T: ArrayLike, y: ArrayLike, y_err: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    T = _as_1d("T", T)
    y = _as_1d("y", y)
    arrays = {"T": T, "y": y}
    if y_err is not None:
        y_err = _as_1d("y_err", y_err)
        arrays["y_err"] = y_err
    sizes = {k: v.size for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(
            f"T, y and y_err must have the same length (got {sizes}); pass one value per temperature."
        )
    if T.size < 2:
        raise ValueError(
            f"an Arrhenius fit needs at least 2 temperatures but got {T.size} point(s); "
            "add data at another temperature."
        )
    for name, arr in arrays.items():
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(
                f"{name} has NaN or infinite values at index {bad.tolist()}; remove or fix those points."
            )
    bad = np.flatnonzero(T <= 0)
    if bad.size:
        raise ValueError(
            f"T must be absolute temperatures > 0 K but has {T[bad].tolist()} at index {bad.tolist()}; "
            "convert to kelvin or drop those points."
        )
    bad = np.flatnonzero(y <= 0)
    if bad.size:
        raise ValueError(
            f"y must be positive to take its logarithm but has {y[bad].tolist()} at index "
            f"{bad.tolist()}; drop those points or run longer so the quantity is resolved."
        )
    if y_err is not None:
        bad = np.flatnonzero(y_err <= 0)
        if bad.size:
            raise ValueError(
                f"y_err must be positive but has {y_err[bad].tolist()} at index {bad.tolist()}; "
                "use more replicas or omit y_err for an unweighted fit."
            )
    if np.unique(T).size < 2:
        raise ValueError(
            f"all {T.size} points share the single temperature {T[0]:g} K, so no activation energy "
            "can be fitted; add data at a second temperature."
        )
    return T, y, y_err


# ----------------------------------------------------------------------------------------------
# Least-squares kernels
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Line:
    """Weighted straight line z = lnA - Ea x in closed form (weighted centring)."""

    x_bar: float
    z_bar: float
    Sxx: float
    W: float
    Ea: float
    ln_A: float
    chi2: float
    tss: float
    cov_raw: np.ndarray
    coef: np.ndarray  # Ea = coef @ z (for fast bootstrap with fixed weights)


def _fit_line(x: np.ndarray, z: np.ndarray, w: np.ndarray) -> _Line:
    W = float(w.sum())
    x_bar = float(w @ x / W)
    z_bar = float(w @ z / W)
    dx = x - x_bar
    Sxx = float(w @ (dx * dx))
    coef = -(w * dx) / Sxx
    Ea = float(coef @ z)
    ln_A = z_bar + Ea * x_bar
    r = z - (ln_A - Ea * x)
    chi2 = float(w @ (r * r))
    tss = float(w @ ((z - z_bar) ** 2))
    # Covariance of (ln A, Ea): centred parameters are uncorrelated, then shift by x_bar.
    cov = np.array(
        [[1.0 / W + x_bar**2 / Sxx, x_bar / Sxx], [x_bar / Sxx, 1.0 / Sxx]], dtype=float
    )
    return _Line(x_bar, z_bar, Sxx, W, Ea, ln_A, chi2, tss, cov, coef)


def _wls(X: np.ndarray, z: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted least squares by QR; returns (beta, (X^T W X)^-1, chi2)."""
    sw = np.sqrt(w)
    A = X * sw[:, None]
    b = z * sw
    Q, R = np.linalg.qr(A)
    beta = np.linalg.solve(R, Q.T @ b)
    R_inv = np.linalg.solve(R, np.eye(R.shape[0]))
    r = b - A @ beta
    return beta, R_inv @ R_inv.T, float(r @ r)


def _non_arrhenius_check(
    x: np.ndarray, z: np.ndarray, w: np.ndarray, line: _Line, errors_known: bool
) -> tuple[bool, dict[str, Any]]:
    """Curvature F-test plus a continuous two-segment (hinge) fit."""
    test = (
        "F-test of a quadratic term in ln(y) vs 1/kT (weighted least squares, "
        f"alpha={_CURVATURE_ALPHA}); two-segment continuous fit for the kink"
    )
    x_unique = np.unique(x)
    detail: dict[str, Any] = {
        "test": test,
        "alpha": _CURVATURE_ALPHA,
        "n_temperatures": int(x_unique.size),
        "curvature_eV2": math.nan,
        "curvature_err_eV2": math.nan,
        "curvature_p_value": math.nan,
        "kink_T_K": math.nan,
        "Ea_below_kink_eV": math.nan,
        "Ea_above_kink_eV": math.nan,
        "Ea_below_kink_err_eV": math.nan,
        "Ea_above_kink_err_eV": math.nan,
        "kink_ln_y": math.nan,
        "explanation": "",
    }
    n = x.size
    if x_unique.size < 4 or n < 4:
        detail["explanation"] = (
            f"Too few temperatures to test ({x_unique.size} < 4): Arrhenius behaviour is assumed, "
            "not checked."
        )
        return False, detail

    # Centre and scale x so the quadratic design is well conditioned.
    sx = float(x.std())
    u = (x - line.x_bar) / sx
    X = np.column_stack([np.ones(n), u, u * u])
    beta, cov_raw, chi2_q = _wls(X, z, w)
    dof_q = n - 3
    chi2_l = line.chi2
    # F = t^2 of the quadratic coefficient with the residual-scaled covariance: independent of
    # the absolute error scale, so badly calibrated y_err cannot by themselves create a flag.
    if chi2_l <= _EXACT_RTOL * line.tss:
        p = 1.0  # exactly straight data (to floating-point precision)
    elif chi2_q <= _EXACT_RTOL * line.tss:
        p = 0.0  # exactly curved, noiseless data
    else:
        F = max(chi2_l - chi2_q, 0.0) / (chi2_q / dof_q)
        from scipy.special import fdtrc  # lazy (see quantile): stats.f.sf, the same double
        p = float(fdtrc(1, dof_q, F))
    c_err = math.sqrt(cov_raw[2, 2] * chi2_q / dof_q) / sx**2
    detail["curvature_eV2"] = float(beta[2]) / sx**2
    detail["curvature_err_eV2"] = c_err
    detail["curvature_p_value"] = p
    flagged = p < _CURVATURE_ALPHA

    # Hinge fit z = a + b u + d max(0, u - uk): scan uk so each side keeps >= 2 temperatures.
    uu = (x_unique - line.x_bar) / sx
    grid = np.union1d(np.linspace(uu[1], uu[-2], _KINK_GRID), uu[1:-1])
    sw = np.sqrt(w)
    H = np.maximum(0.0, u[None, :] - grid[:, None])  # (K, n)
    A = np.stack([np.broadcast_to(np.ones(n), H.shape), np.broadcast_to(u, H.shape), H], axis=-1)
    A = A * sw[None, :, None]
    b = z * sw
    AtA = np.einsum("kni,knj->kij", A, A)
    Atb = np.einsum("kni,n->ki", A, b)
    coefs = np.linalg.solve(AtA, Atb[..., None])[..., 0]
    res = b[None, :] - np.einsum("kni,ki->kn", A, coefs)
    chi2_h = np.einsum("kn,kn->k", res, res)
    k = int(np.argmin(chi2_h))
    # Segment errors are conditional on the kink position (its own uncertainty is not included)
    # and scaled like the main fit: max(1, chi2/dof) with y_err, chi2/dof without.
    red = chi2_h[k] / dof_q
    hscale = max(1.0, red) if errors_known else red
    hcov = np.linalg.inv(AtA[k]) * hscale
    detail["Ea_above_kink_err_eV"] = math.sqrt(max(hcov[1, 1], 0.0)) / sx
    detail["Ea_below_kink_err_eV"] = (
        math.sqrt(max(hcov[1, 1] + hcov[2, 2] + 2.0 * hcov[1, 2], 0.0)) / sx
    )
    xk = line.x_bar + grid[k] * sx
    Ea_above = -coefs[k, 1] / sx  # high T side: x < x_k
    Ea_below = -(coefs[k, 1] + coefs[k, 2]) / sx  # low T side: x > x_k
    T_k = 1.0 / (KB_EV_K * xk)
    detail["kink_T_K"] = float(T_k)
    detail["Ea_below_kink_eV"] = float(Ea_below)
    detail["Ea_above_kink_eV"] = float(Ea_above)
    detail["kink_ln_y"] = float(coefs[k, 0] + coefs[k, 1] * grid[k])  # hinge term is 0 there

    if flagged:
        detail["explanation"] = (
            f"Non-Arrhenius: significant curvature of ln(y) vs 1/kT (p = {p:.2g} < "
            f"{_CURVATURE_ALPHA}); best kink near {T_k:.0f} K with Ea = {Ea_below:.3g} eV below "
            f"and {Ea_above:.3g} eV above, so a single Ea is a poor summary."
        )
    else:
        detail["explanation"] = (
            f"No significant curvature (p = {p:.2g} >= {_CURVATURE_ALPHA}): one Arrhenius line is "
            "consistent with the data."
        )
    return flagged, detail


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------
def fit_arrhenius(
    T: ArrayLike,
    y: ArrayLike,
    y_err: ArrayLike | None = None,
    *,
    times_T: bool = False,
    basis: str = "D_tracer",
    level: float = 0.95,
    n_bootstrap: int = 0,
    seed: int = 0,
) -> ArrheniusFit:
    """Fit ``y = A exp(-Ea/kT)`` (or ``y T = A exp(-Ea/kT)``) with uncertainties.

    Weighted linear least squares of ``ln y`` (``ln(y T)`` if ``times_T``) against
    ``x = 1/(kB T)``, ``kB = KB_EV_K``, solved in closed form with an explicit covariance
    ``(X^T W X)^-1`` of ``(ln A, Ea)``.

    Parameters
    ----------
    T : array_like
        Temperatures (K), at least two distinct values; repeated temperatures are allowed.
    y : array_like
        Positive values (e.g. D in cm^2/s or sigma in S/cm), one per temperature.
    y_err : array_like, optional
        Standard errors of ``y``. The standard error of ``ln y`` is ``y_err / y`` (the same for
        ``ln(y T)``), and the weights are its inverse squares.
    times_T : bool, default False
        Fit ``y T`` instead of ``y`` (conductivity: ``sigma T = A exp(-Ea/kT)``).
    basis : str, default "D_tracer"
        Name of the quantity, carried into the result and output keys.
    level : float, default 0.95
        Default confidence level for :meth:`ArrheniusFit.interval`.
    n_bootstrap : int, default 0
        If > 0, also estimate the spread of ``Ea`` by a parametric bootstrap: new data sets are
        drawn around the fitted line with the (scaled) errors, Gaussian in ``y`` when ``y_err``
        is given (samples with a non-positive value are dropped) and in ``ln y`` otherwise, and
        refitted with the original weights. Stored as ``Ea_bootstrap_err_eV``.
    seed : int, default 0
        Seed of the ``numpy.random.Generator`` used by the bootstrap.

    Returns
    -------
    ArrheniusFit

    Raises
    ------
    ValueError
        Fewer than two points or temperatures, mismatched lengths, non-finite values,
        ``T <= 0``, ``y <= 0``, ``y_err <= 0`` or ``level`` outside (0, 1).

    Notes
    -----
    Error scaling:

    * without ``y_err`` the fit is unweighted and the covariance is scaled by the residual
      variance of ``ln y`` (``dof = n - 2`` must be > 0 for an error; otherwise it is NaN);
      intervals use Student-t quantiles with ``dof``;
    * with ``y_err`` the covariance is scaled by ``max(1, reduced_chi2)``: a fit whose scatter
      exceeds the stated errors gets honestly wider error bars, while a fit that is better than
      expected is never made narrower than the stated errors allow. Intervals use normal
      quantiles because the errors are taken as known. This inflation makes the 1-sigma
      coverage somewhat above 68 % when the errors are right (about 73 % for 5 points);
    * with exactly two points (``dof = 0``) ``Ea`` passes through both points and its error is
      propagated from ``y_err`` without any chi-square scaling.

    The non-Arrhenius check (>= 4 distinct temperatures) adds ``c x^2`` to the line and flags the
    data when the F-test (equivalently a t-test on ``c`` with the residual-scaled covariance)
    gives ``p < 0.01``; under a straight line the false-positive rate is 1 % whatever the error
    scale. A continuous two-segment fit, kink scanned between the second lowest and second
    highest temperature, reports where and how much ``Ea`` changes.
    """
    T, y, y_err = _validate(T, y, y_err)
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (got {level}); use e.g. 0.95.")
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be a non-negative integer (got {n_bootstrap}); use e.g. 1000.")
    n_bootstrap = int(n_bootstrap)

    x = 1.0 / (KB_EV_K * T)
    z = np.log(y * T) if times_T else np.log(y)
    s = None if y_err is None else y_err / y  # standard error of ln y (and of ln yT)
    w = np.ones_like(x) if s is None else 1.0 / s**2
    line = _fit_line(x, z, w)
    dof = int(x.size - 2)

    if s is None:
        reduced_chi2 = math.nan
        scale = line.chi2 / dof if dof > 0 else math.nan
    else:
        reduced_chi2 = line.chi2 / dof if dof > 0 else math.nan
        scale = max(1.0, reduced_chi2) if dof > 0 else 1.0
    cov = line.cov_raw * scale
    Ea_err = math.sqrt(cov[1, 1]) if math.isfinite(cov[1, 1]) else math.nan
    lnA_err = math.sqrt(cov[0, 0]) if math.isfinite(cov[0, 0]) else math.nan
    A = math.exp(line.ln_A)

    flagged, detail = _non_arrhenius_check(x, z, w, line, errors_known=s is not None)

    Ea_boot, n_used, method = math.nan, 0, ""
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        z_fit = line.ln_A - line.Ea * x
        if y_err is not None:
            y_fit = np.exp(z_fit) / T if times_T else np.exp(z_fit)
            y_star = y_fit + y_err * math.sqrt(scale) * rng.standard_normal((n_bootstrap, x.size))
            ok = np.all(y_star > 0, axis=1)  # ln is undefined otherwise
            y_star = y_star[ok]
            z_star = np.log(y_star * T) if times_T else np.log(y_star)
        elif dof > 0:
            z_star = z_fit + math.sqrt(scale) * rng.standard_normal((n_bootstrap, x.size))
        else:
            z_star = np.empty((0, x.size))
        n_used = int(z_star.shape[0])
        if n_used >= 2:
            Ea_boot = float(np.std(z_star @ line.coef, ddof=1))
        method = "parametric"

    return _make_fit(
        line=line,
        cov=cov,
        scale=scale,
        Ea_err=Ea_err,
        lnA_err=lnA_err,
        A=A,
        reduced_chi2=reduced_chi2,
        dof=dof,
        basis=basis,
        times_T=times_T,
        level=level,
        T=T,
        y=y,
        y_err=y_err,
        flagged=flagged,
        detail=detail,
        Ea_boot=Ea_boot,
        n_used=n_used,
        method=method,
    )


@overload
def _readonly(a: np.ndarray) -> np.ndarray: ...
@overload
def _readonly(a: None) -> None: ...
def _readonly(a: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return None
    a = np.array(a, dtype=float, copy=True)
    a.setflags(write=False)
    return a


def _make_fit(*, line: _Line, cov: np.ndarray, scale: float, Ea_err: float, lnA_err: float,
              A: float, reduced_chi2: float, dof: int, basis: str, times_T: bool, level: float,
              T: np.ndarray, y: np.ndarray, y_err: np.ndarray | None, flagged: bool,
              detail: dict[str, Any], Ea_boot: float, n_used: int, method: str) -> ArrheniusFit:
    detail = dict(detail)
    detail["Ea_bootstrap_err_eV"] = Ea_boot
    return ArrheniusFit(
        Ea_eV=float(line.Ea),
        Ea_err_eV=float(Ea_err),
        prefactor=float(A),
        prefactor_err=float(A * lnA_err),
        ln_prefactor=float(line.ln_A),
        ln_prefactor_err=float(lnA_err),
        covariance=_readonly(cov),
        covariance_scale=float(scale),
        reduced_chi2=float(reduced_chi2),
        dof=int(dof),
        basis=str(basis),
        times_T=bool(times_T),
        level=float(level),
        T_K=_readonly(T),
        y=_readonly(y),
        y_err=_readonly(y_err),
        non_arrhenius=bool(flagged),
        non_arrhenius_detail=detail,
        Ea_bootstrap_err_eV=float(Ea_boot),
        n_bootstrap=int(n_used),
        bootstrap_method=method,
    )


def fit_arrhenius_replicas(
    T: ArrayLike,
    values_per_T: Sequence[ArrayLike],
    *,
    times_T: bool = False,
    basis: str = "D_tracer",
    level: float = 0.95,
    n_bootstrap: int = 0,
    seed: int = 0,
) -> ArrheniusFit:
    """Arrhenius fit of replica means, weighted by their standard errors.

    Each temperature contributes the mean of its independent replica values and the standard
    error of that mean, ``std(ddof=1) / sqrt(n)``; the result is exactly
    ``fit_arrhenius(T, means, sems, ...)``.

    Parameters
    ----------
    T : array_like
        Temperatures (K), one per entry of ``values_per_T``.
    values_per_T : sequence of array_like
        For each temperature, the values of independent replicas (at least 2 each).
    times_T, basis, level, seed
        As in :func:`fit_arrhenius`.
    n_bootstrap : int, default 0
        If > 0, a nonparametric bootstrap: replicas are resampled with replacement within each
        temperature, the means refitted with the original weights, and the standard deviation
        of ``Ea`` stored as ``Ea_bootstrap_err_eV`` (samples with a non-positive mean dropped).

    Returns
    -------
    ArrheniusFit

    Raises
    ------
    ValueError
        As :func:`fit_arrhenius`, or when a temperature has fewer than 2 replicas or the number
        of replica sets differs from the number of temperatures.
    """
    T_arr = _as_1d("T", T)
    if len(values_per_T) != T_arr.size:
        raise ValueError(
            f"values_per_T has {len(values_per_T)} replica sets but T has {T_arr.size} temperatures; "
            "pass one array of replica values per temperature."
        )
    groups = []
    for i, v in enumerate(values_per_T):
        v = _as_1d(f"values_per_T[{i}]", v)
        if v.size < 2:
            raise ValueError(
                f"temperature index {i} has {v.size} replica(s) but a standard error needs at least 2; "
                "run more independent replicas (seeds)."
            )
        if not np.all(np.isfinite(v)):
            raise ValueError(
                f"values_per_T[{i}] has NaN or infinite values; remove or rerun those replicas."
            )
        groups.append(v)
    means = np.array([g.mean() for g in groups])
    sems = np.array([g.std(ddof=1) / math.sqrt(g.size) for g in groups])
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be a non-negative integer (got {n_bootstrap}); use e.g. 1000.")
    fit = fit_arrhenius(T_arr, means, sems, times_T=times_T, basis=basis, level=level,
                        n_bootstrap=0, seed=seed)
    if n_bootstrap == 0:
        return fit

    rng = np.random.default_rng(seed)
    B = int(n_bootstrap)
    boot_means = np.empty((B, T_arr.size))
    for i, g in enumerate(groups):
        idx = rng.integers(0, g.size, size=(B, g.size))
        boot_means[:, i] = g[idx].mean(axis=1)
    boot_means = boot_means[np.all(boot_means > 0, axis=1)]
    x = 1.0 / (KB_EV_K * T_arr)
    z_star = np.log(boot_means * T_arr) if times_T else np.log(boot_means)
    # Same weights as the point fit, so the bootstrap measures only the data's spread.
    line = _fit_line(x, np.log(means * T_arr) if times_T else np.log(means), (means / sems) ** 2)
    n_used = int(z_star.shape[0])
    Ea_boot = float(np.std(z_star @ line.coef, ddof=1)) if n_used >= 2 else math.nan
    detail = dict(fit.non_arrhenius_detail)
    detail["Ea_bootstrap_err_eV"] = Ea_boot
    return dataclasses.replace(
        fit,
        Ea_bootstrap_err_eV=Ea_boot,
        n_bootstrap=n_used,
        bootstrap_method="replicas",
        non_arrhenius_detail=detail,
    )
