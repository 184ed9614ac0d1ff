"""Arrhenius analysis of a multi-temperature run: the ``arrhenius`` and ``arrhenius_axes`` objects
of ``kmc run`` (see docs/transport_analysis.md).

Choices, all documented in the JSON itself:

* The headline fit (``Ea_eV`` ...) is of the quantity named by ``[run] arrhenius_basis``:
  ``"D_tracer"`` (``ln D*`` vs 1/kT), ``"D_jump"`` (``ln D_J``) or ``"sigma_T"`` (``ln(sigma T)``:
  what a conductivity experiment measures; ``sigma T`` is proportional to ``D_J`` at fixed
  density, so its Ea is the activation energy of ``D_J``). The default ``"auto"`` takes
  whichever of ``D_tracer`` and ``sigma_T`` has the smaller median relative replica standard
  error over the temperatures its fit uses (:func:`choose_basis`): the collective signal behind sigma is
  noisy in dilute and single-vacancy systems, the tracer one in nearly empty ones.
* ``sigma_300K_S_cm`` and its interval ``sigma_300K_ci_S_cm`` always come from a separate fit of
  ``ln(sigma T)``, whatever the basis: a D* fit says nothing about conductivity unless the Haven
  ratio is known, so converting D* would not be honest.
* Every fit is weighted by the replica standard errors (:func:`fit_arrhenius_replicas`), with
  a bootstrap over replicas as a second opinion (``Ea_bootstrap_err_eV``). ``Ea_err_eV`` is
  the 1-sigma standard error; ``Ea_ci_eV`` the interval at ``level`` (95 %).
* ``prefactor_cm2_s`` is the prefactor of D for a D basis; for ``sigma_T`` it is the ``D_J``
  prefactor equivalent by Nernst-Einstein, ``A_sigmaT * kB / (n q^2)`` (n = N/V is fixed), and
  ``prefactor_K_S_cm`` is given as well.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from kmc.analysis.arrhenius import ArrheniusFit, fit_arrhenius, fit_arrhenius_replicas
from kmc.analysis.transport import AXES, diffusive_subset
from kmc.constants import E_CHARGE_C, KB_J_K

#: basis name -> (per-replica value key, fit y*T?)
BASES = {"D_tracer": ("D_tracer_cm2_s", False), "D_jump": ("D_jump_cm2_s", False),
         "sigma_T": ("sigma_S_cm", True), "sigma_field_T": ("sigma_field_S_cm", True)}

LEVEL = 0.95
N_BOOTSTRAP = 1000


def fit_basis(temperatures: list[float], replica_vals: list[dict[str, np.ndarray]], key: str,
              *, times_T: bool, basis: str, seed: int) -> ArrheniusFit:
    """Weighted Arrhenius fit of the per-replica values ``key`` over temperatures.

    Raises
    ------
    ValueError
        When the data cannot be fitted (fewer than 2 temperatures, a non-positive mean, ...);
        the message says why.
    """
    T = np.asarray(temperatures, float)
    values = [np.asarray(v[key], float) for v in replica_vals]
    if any(not np.all(np.isfinite(v)) for v in values):
        raise ValueError(f"{basis}: some replica values are not finite")
    if all(v.size >= 2 for v in values) and all(v.std() > 0 for v in values):
        return fit_arrhenius_replicas(T, values, times_T=times_T, basis=basis, level=LEVEL,
                                      n_bootstrap=N_BOOTSTRAP, seed=seed)
    # one replica (or identical replicas): no standard errors, fit the means unweighted
    return fit_arrhenius(T, [v.mean() for v in values], times_T=times_T, basis=basis,
                         level=LEVEL)


#: candidates of ``arrhenius_basis = "auto"``
AUTO_BASES = ("D_tracer", "sigma_T")


def choose_basis(replica_vals: list[dict[str, np.ndarray]], temperatures: list[float] | None = None,
                 diffusive: list[dict] | None = None, fitted: Iterable[str] | None = None
                 ) -> tuple[str, dict[str, float]]:
    """The ``auto`` basis: of :data:`AUTO_BASES`, the one whose per-temperature relative replica
    standard error has the smaller median (ties go to the first); with one replica per
    temperature (no errors) ``sigma_T``. Returns the name and the medians.

    With ``temperatures`` and ``diffusive`` (as in :func:`arrhenius_report`) each candidate's
    median is taken over the temperatures its fit may use (its MSD diffusive), and with
    ``fitted`` only candidates that have a fit compete: a basis is never chosen for errors
    measured where it is not quoted."""
    med: dict[str, float] = {}
    temps = temperatures if temperatures is not None else [0.0] * len(replica_vals)
    for name in AUTO_BASES:
        key = BASES[name][0]
        keep, _ = diffusive_subset(name, temps, diffusive)
        rel = []
        for i in keep:
            x = np.asarray(replica_vals[i][key], float)
            m = abs(float(np.mean(x)))
            rel.append(float(np.std(x, ddof=1) / np.sqrt(x.size)) / m
                       if x.size > 1 and m > 0 else math.inf)
        med[name] = float(np.median(rel)) if rel else math.inf
    candidates = [k for k in AUTO_BASES if fitted is None or k in set(fitted)] or list(AUTO_BASES)
    finite = {k: med[k] for k in candidates if math.isfinite(med[k])}
    if not finite:
        return ("sigma_T" if "sigma_T" in candidates else candidates[0]), med
    return min(finite, key=lambda k: finite[k]), med


def _short(fit: ArrheniusFit) -> dict[str, Any]:
    q = fit.quantile()
    return {"Ea_eV": fit.Ea_eV, "Ea_err_eV": fit.Ea_err_eV,
            "Ea_ci_eV": [fit.Ea_eV - q * fit.Ea_err_eV, fit.Ea_eV + q * fit.Ea_err_eV],
            "reduced_chi2": fit.reduced_chi2, "non_arrhenius": fit.non_arrhenius,
            "weighted": fit.errors_known}


def arrhenius_report(temperatures: list[float], replica_vals: list[dict[str, np.ndarray]], *,
                     basis: str, seed: int, density_cm3: float, charge_e: float,
                     diffusive: list[dict] | None = None
                     ) -> tuple[dict | None, dict | None, dict[str, ArrheniusFit], list[str]]:
    """The ``arrhenius`` and ``arrhenius_axes`` objects, the fits themselves and notes.

    Every fit uses only the temperatures whose MSD (D_J for sigma_T and D_jump, D* for D_tracer
    and the axes) is in the diffusive regime (``diffusive``: per temperature the result row's
    ``diffusive_D_tracer`` / ``diffusive_D_jump`` flags); the ones left out are named in a note
    and in ``excluded_not_diffusive_K``. Returns ``(None, None, {}, [note])`` with fewer than two
    distinct temperatures.
    """
    n_T = len(set(float(t) for t in temperatures))
    if n_T < 2:
        return None, None, {}, [f"no Arrhenius fit: it needs at least 2 different temperatures "
                                f"and this run has {n_T}; add temperatures to [run] "
                                f"temperatures_K."]
    notes: list[str] = []
    fits: dict[str, ArrheniusFit] = {}
    excluded: dict[str, list[float]] = {}

    def fit_diffusive(name: str, key: str, times_T: bool) -> ArrheniusFit:
        keep, left_out = diffusive_subset(name, temperatures, diffusive)
        if left_out:
            excluded[name] = left_out
        if len({float(temperatures[i]) for i in keep}) < 2:
            raise ValueError(f"fewer than 2 temperatures in the diffusive regime (left out: "
                             f"{', '.join(f'{t:g}' for t in left_out)} K); run longer "
                             f"(hops_per_ion or target_rel_err)")
        return fit_basis([temperatures[i] for i in keep], [replica_vals[i] for i in keep], key,
                         times_T=times_T, basis=name, seed=seed)

    for name, (key, times_T) in BASES.items():
        if key not in replica_vals[0]:
            continue
        try:
            fits[name] = fit_diffusive(name, key, times_T)
        except ValueError as exc:
            notes.append(f"no {name} Arrhenius fit: {exc}")
    if any(not f.errors_known for f in fits.values()):
        notes.append("fits without replica standard errors are unweighted (errors from the "
                     "scatter about the line); use at least 2 replicas.")

    requested = basis
    medians: dict[str, float] = {}
    if basis == "auto":
        basis, medians = choose_basis(replica_vals, temperatures, diffusive, fits)
    main = fits.get(basis)
    arr: dict[str, Any] | None = None
    if main is not None:
        arr = {"basis": basis, "basis_requested": requested}
        if requested == "auto":
            arr["basis_median_rel_err"] = medians
        arr.update(_short(main))
        nq2 = density_cm3 * (charge_e * E_CHARGE_C) ** 2
        if main.times_T:  # sigma T = (n q^2 / kB) D_J  ->  D0 = A kB / (n q^2)
            arr["prefactor_cm2_s"] = main.prefactor * KB_J_K / nq2 if nq2 > 0 else math.nan
            arr["prefactor_err_cm2_s"] = main.prefactor_err * KB_J_K / nq2 if nq2 > 0 else math.nan
            arr["prefactor_K_S_cm"] = main.prefactor
            arr["prefactor_err_K_S_cm"] = main.prefactor_err
        else:
            arr["prefactor_cm2_s"] = main.prefactor
            arr["prefactor_err_cm2_s"] = main.prefactor_err
        arr.update({
            "ln_prefactor": main.ln_prefactor, "ln_prefactor_err": main.ln_prefactor_err,
            "covariance": main.covariance, "covariance_parameters": ["ln_prefactor", "Ea_eV"],
            "level": main.level, "dof": main.dof, "n_points": int(main.T_K.size),
            "T_min_K": main.T_range_K[0], "T_max_K": main.T_range_K[1],
            "Ea_bootstrap_err_eV": main.Ea_bootstrap_err_eV, "n_bootstrap": main.n_bootstrap,
        })
        sig = fits.get("sigma_T")
        if sig is not None:
            lo, hi = (float(v) for v in sig.interval(300.0))
            arr["sigma_300K_S_cm"] = float(sig.predict(300.0))
            arr["sigma_300K_ci_S_cm"] = [lo, hi]
            arr["sigma_300K_source"] = ("fit of ln(sigma T), sigma from Nernst-Einstein with "
                                        "D_J, whatever the basis")
        else:
            arr["sigma_300K_S_cm"] = None
            arr["sigma_300K_ci_S_cm"] = [None, None]
            arr["sigma_300K_source"] = "not available: the sigma_T fit failed (see notes)"
        t_lo, t_hi = main.T_range_K
        arr["extrapolated_to_300K"] = not (t_lo <= 300.0 <= t_hi)
        arr["non_arrhenius"] = main.non_arrhenius
        arr["non_arrhenius_detail"] = main.non_arrhenius_detail
        arr["fits"] = {name: _short(f) for name, f in fits.items()}
    else:
        notes.append(f"the {basis} fit (arrhenius_basis) failed, so there is no arrhenius object.")

    axes: dict[str, Any] = {}
    axis_means = {ax: np.array([float(np.mean(v[f"D_tracer_{ax}_cm2_s"])) for v in replica_vals])
                  for ax in AXES}
    largest = np.max([m for m in axis_means.values()], axis=0)
    for ax in AXES:
        key = f"D_tracer_{ax}_cm2_s"
        # an axis that does not conduct (z of a 2-D network) only collects rounding noise
        if not np.all(axis_means[ax] > 1e-9 * largest):
            continue
        try:
            f = fit_diffusive(f"D_tracer_{ax}", key, False)
        except ValueError as exc:
            notes.append(f"no per-axis fit for {ax}: {exc}")
            continue
        fits[f"D_tracer_{ax}"] = f
        axes[ax] = _short(f)
        axes[ax]["prefactor_cm2_s"] = f.prefactor
        axes[ax]["prefactor_err_cm2_s"] = f.prefactor_err
    by_set: dict[tuple[float, ...], list[str]] = {}
    for name, temps in excluded.items():
        by_set.setdefault(tuple(temps), []).append(name)
    for temps, names in by_set.items():
        notes.append(f"Arrhenius fits use the diffusive temperatures only: {', '.join(names)} "
                     f"leave out {', '.join(f'{t:g}' for t in temps)} K.")
    if arr is not None:
        arr["excluded_not_diffusive_K"] = excluded.get(basis, [])
    return arr, (axes or None), fits, notes
