"""Fit of the lattice Hamiltonian to relaxed energies (scikit-learn ridge regression).

``E = C mu + X beta``: ``C`` holds the composition (a constant, the number of mobile ions, the number
of dopants of each species), whose coefficients are chemical potentials and are not regularised;
``X`` holds the counts the lattice model is made of (mobile ions per non-reference site class, pairs
per mobile-mobile orbit, dopant-mobile pairs per orbit). ``C`` is projected out of ``E`` and ``X``
(Frisch-Waugh-Lovell), ``beta`` is fitted by :class:`sklearn.linear_model.RidgeCV` on what is left,
and ``mu`` by least squares on the remainder. The cross-validated RMSE repeats the whole fit on
every training fold (:class:`sklearn.model_selection.KFold`); uncertainties are bootstrap standard
deviations over resampled configurations. Columns that do not vary once the composition is
projected out are reported as undetermined, not fitted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kmc.exceptions import StructureError

__all__ = ["HamiltonianFit", "fit_hamiltonian"]

ALPHAS = np.logspace(-8, 1, 19)  #: ridge strengths RidgeCV chooses from (eV^2 per count^2 scale)


@dataclass
class HamiltonianFit:
    """Fitted terms (eV), their bootstrap standard errors, and the fit's quality."""

    names: list[str]
    values_eV: np.ndarray
    errors_eV: np.ndarray
    undetermined: list[str]
    alpha: float
    cv_rmse_eV: float                  #: per configuration (supercell)
    train_rmse_eV: float
    n_configurations: int
    n_folds: int
    predictions_eV: np.ndarray
    chemical_potentials_eV: np.ndarray
    details: dict = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        return float(self.values_eV[self.names.index(name)]) if name in self.names else None


def _project(C: np.ndarray, Y: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(C, Y, rcond=None)
    return Y - C @ coef


def _fit_once(C: np.ndarray, X: np.ndarray, E: np.ndarray, alpha: float | None):
    # lazy: scikit-learn is the optional [mlip] extra
    from sklearn.linear_model import Ridge, RidgeCV

    Xr, Er = _project(C, X), _project(C, E)
    if alpha is None:
        alpha = float(RidgeCV(alphas=ALPHAS, fit_intercept=False).fit(Xr, Er).alpha_) if X.shape[1] else 0.0
    beta = Ridge(alpha=alpha, fit_intercept=False).fit(Xr, Er).coef_ if X.shape[1] else np.zeros(0)
    mu, *_ = np.linalg.lstsq(C, E - X @ beta, rcond=None)
    return beta, mu, alpha


def fit_hamiltonian(C: np.ndarray, X: np.ndarray, E: np.ndarray, names: list[str], seed: int = 0,
                    n_bootstrap: int = 100, n_folds: int = 5) -> HamiltonianFit:
    """Fit ``E = C mu + X beta`` (see the module docstring).

    Parameters
    ----------
    C, X
        Composition and model design matrices (one row per configuration).
    E
        Relaxed total energies (eV).
    names
        Name of each column of ``X``.
    seed
        Seed of the fold split and the bootstrap (same seed, same numbers).

    Raises
    ------
    StructureError
        With fewer configurations than the fit needs.
    """
    C, X, E = np.asarray(C, float), np.asarray(X, float), np.asarray(E, float)
    n = len(E)
    if n < 4:
        raise StructureError(f"only {n} usable configurations; the fit needs at least 4 (raise --configs).")
    # drop columns that carry nothing once the composition is projected out, and duplicates
    Xr = _project(C, X)
    keep: list[int] = []
    for k in range(X.shape[1]):
        col = Xr[:, k]
        if np.linalg.norm(col) < 1e-8:
            continue
        if keep:
            basis = Xr[:, keep]
            resid = col - basis @ np.linalg.lstsq(basis, col, rcond=None)[0]
            if np.linalg.norm(resid) < 1e-8 * max(1.0, np.linalg.norm(col)):
                continue
        keep.append(k)
    undetermined = [names[k] for k in range(X.shape[1]) if k not in keep]
    Xk = X[:, keep]
    beta, mu, alpha = _fit_once(C, Xk, E, None)
    pred = C @ mu + Xk @ beta
    # lazy: scikit-learn is the optional [mlip] extra
    from sklearn.model_selection import KFold

    folds = min(n_folds, n)
    cv_pred = np.empty(n)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(E):
        b, m, _ = _fit_once(C[train], Xk[train], E[train], None)
        cv_pred[test] = C[test] @ m + Xk[test] @ b
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, n, n)
        b, _, _ = _fit_once(C[idx], Xk[idx], E[idx], alpha)
        boots.append(b)
    err = np.std(np.array(boots), axis=0, ddof=1) if boots and len(keep) else np.zeros(len(keep))
    return HamiltonianFit(
        names=[names[k] for k in keep], values_eV=beta, errors_eV=err, undetermined=undetermined,
        alpha=alpha, cv_rmse_eV=float(np.sqrt(np.mean((cv_pred - E) ** 2))),
        train_rmse_eV=float(np.sqrt(np.mean((pred - E) ** 2))), n_configurations=n, n_folds=folds,
        predictions_eV=pred, chemical_potentials_eV=mu,
        details={"cv_predictions_eV": cv_pred.tolist(), "n_bootstrap": n_bootstrap, "seed": seed,
                 # the resampled fits themselves: what propagates the terms' uncertainty into a
                 # run (scripts/hamiltonian_uncertainty.py), rounded like the written terms
                 "bootstrap_values_eV": np.round(np.array(boots).reshape(len(boots), len(keep)), 6).tolist()})
