"""The result of a run (:class:`RunResult`): per-temperature numbers, MSD curves, Arrhenius
report, notes; flat tables of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from kmc import __version__
from kmc.analysis.arrhenius import ArrheniusFit
from kmc.analysis.transport import (
    MSDAnalysis,
)
from kmc.config import Config
from kmc.files import jsonable

if TYPE_CHECKING:  # annotations only

    pass


@dataclass
class RunResult:
    """Results of a config: one dict per temperature, MSD curves, the network summary and, with
    two or more temperatures, the Arrhenius analysis (``arrhenius``, ``arrhenius_axes`` and the
    :class:`~kmc.analysis.arrhenius.ArrheniusFit` objects in ``fits``)."""

    config: Config
    results: list[dict]
    msd: list[dict]
    network: dict = field(default_factory=dict)
    arrhenius: dict | None = None
    arrhenius_axes: dict | None = None
    fits: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    formula: str | None = None
    mobile_ions_per_formula_unit: float | None = None
    #: how this call used its :class:`RunCheckpoint` (not part of :meth:`to_dict`): ``resumed``,
    #: ``restored_hops`` (engine hops already done in the state it resumed from), ``total_hops``
    #: (engine hops of the whole run, equilibration included), ``saves``, ``discarded`` (why a
    #: loaded blob was not used: None, "mismatch" or "unreadable")
    checkpoint_info: dict = field(default_factory=dict, repr=False, compare=False)
    #: the :class:`kmc.runs.trajectory.Trajectory` of ``[output] trajectory`` (None without one)
    trajectory: "object | None" = field(default=None, repr=False, compare=False)
    #: what produced it (:func:`kmc.runs.provenance.run_provenance`); ``provenance`` in to_dict()
    provenance: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def warnings(self) -> list[str]:
        """One sentence per temperature and quantity measured outside the diffusive regime
        (what to do about it), and one when a single replica gives no error bars."""
        out = []
        for r in self.results:
            for q in ("D_tracer", "D_jump"):
                fit = r.get("fit", {}).get(q)
                if fit is None or fit["diffusive"]:
                    continue
                out.append(
                    f"{q} at {r['temperature_K']:g} K is not in the diffusive regime (MSD "
                    f"local exponent {fit['local_exponent']:.2f} over {fit['start_s']:.3g}-"
                    f"{fit['end_s']:.3g} s, MSD {fit['msd_at_start_A2']:.3g} A^2 at the window "
                    f"start, needed >= {fit['msd_min_A2']:.3g}): run longer, i.e. raise [run] "
                    f"hops_per_ion (to {4 * self.config.run.hops_per_ion:g}, say) or set "
                    f"target_rel_err so the run extends until it is diffusive.")
        if self.results and self.results[0].get("replicas") == 1:
            out.append("one replica: no standard errors are given (replicas are the "
                       "independent samples); set [run] replicas = 4 or more for error bars.")
        return out

    def to_dict(self) -> dict:
        """JSON-ready data (NaN becomes None)."""
        return jsonable({"version": __version__, "config": self.config.to_dict(),
                          "formula": self.formula,
                          "mobile_ions_per_formula_unit": self.mobile_ions_per_formula_unit,
                          "network": self.network, "results": self.results,
                          "arrhenius": self.arrhenius, "arrhenius_axes": self.arrhenius_axes,
                          "notes": self.notes, "provenance": self.provenance})

    def arrhenius_fit(self, basis: str | None = None) -> ArrheniusFit:
        """The :class:`~kmc.analysis.arrhenius.ArrheniusFit` of ``basis`` (default: the config's
        ``arrhenius_basis``); also ``"D_tracer_xx"`` etc. for the per-axis fits."""
        if basis is None:
            basis = self.arrhenius["basis"] if self.arrhenius is not None \
                else self.config.run.arrhenius_basis
        if basis not in self.fits:
            why = "; ".join(self.notes) or f"fits available: {', '.join(self.fits) or 'none'}"
            raise KeyError(f"no {basis!r} Arrhenius fit in this result ({why}).")
        return self.fits[basis]

    def to_rows(self) -> list[dict]:
        """One flat dict per temperature: every key of ``results``, nested dicts flattened with
        dotted names (``occupation_per_class.24d``), lists with dotted indices."""
        return [flatten(jsonable(r)) for r in self.results]

    def to_dataframe(self):
        """A :class:`pandas.DataFrame` with one row per temperature and every scalar key of
        ``results`` as a column (see :meth:`to_rows`); needs pandas."""
        try:
            # lazy: pandas costs ~0.5 s; only this table needs it
            import pandas as pd
        except ImportError:
            raise ImportError("RunResult.to_dataframe needs pandas; install it (pip install "
                              "pandas) or use RunResult.to_rows() for plain dicts.") from None
        rows = self.to_rows()
        return pd.DataFrame(rows, columns=result_columns(rows))


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested dicts/lists -> one level with dotted keys."""
    out: dict = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{name}."))
        elif isinstance(v, (list, tuple)):
            out.update(flatten({str(i): x for i, x in enumerate(v)}, f"{name}."))
        else:
            out[name] = v
    return out


def result_columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))



def msd_curve(T: float, an: MSDAnalysis) -> dict:
    """Replica-mean MSD curves on the lag grid (all time origins), with the exact point (0, 0)
    first, replica standard errors and the fit windows."""
    c = an.curve
    curve = {"temperature_K": T}
    for key in ("t_s", "msd_tracer_A2", "msd_collective_A2", "msd_tracer_err_A2",
                "msd_collective_err_A2"):
        if key in c:
            curve[key] = np.concatenate([[0.0], c[key]])
    for key in ("msd_tracer_axes_A2", "msd_collective_axes_A2"):
        curve[key] = np.vstack([np.zeros((1, 3)), c[key]])
    curve["fit"] = c["fit"]
    return curve
