"""kmc: rejection-free kinetic Monte Carlo of ion hopping in solid electrolytes.

Public API (imported lazily, so ``import kmc`` stays cheap):

* :class:`System`, :func:`run` — build a system from a config, a bundled name, a pymatgen
  ``Structure`` or ASE ``Atoms`` and run it (:mod:`kmc.api`); :class:`Campaign` — grids of runs;
* :func:`fit_arrhenius`, :func:`fit_arrhenius_replicas`, :class:`ArrheniusFit` — Arrhenius fits
  with uncertainties for numbers from anywhere (kMC, MD, experiments);
* :class:`Config`, :func:`run_config`, :class:`RunResult` — run a configuration from Python;
* :func:`plot_arrhenius`, :func:`plot_msd` — the figures of ``kmc run --out``;
* :class:`Simulation`, :class:`RateModel`, :class:`SiteNetwork` — the engine and its inputs;
  :func:`kmc.parametrize.parametrize` — computed energy landscapes (``kmc parametrize``).

Subpackages by stage, imports flowing one way: see the README's Project layout.
"""
__version__ = "0.1.0"

_LAZY = {
    "fit_arrhenius": "kmc.analysis.arrhenius", "fit_arrhenius_replicas": "kmc.analysis.arrhenius",
    "ArrheniusFit": "kmc.analysis.arrhenius", "Config": "kmc.config", "run_config": "kmc.runs.runner",
    "RunResult": "kmc.runs.results", "plot_arrhenius": "kmc.analysis.plots", "plot_msd": "kmc.analysis.plots",
    "System": "kmc.api", "run": "kmc.api", "Campaign": "kmc.campaign.core",
    "Simulation": "kmc.engine.simulation", "RateModel": "kmc.engine.model",
    "SiteNetwork": "kmc.system.network",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib  # lazy: importlib (and warnings) would add ~0.7 ms to `import kmc` (~2 ms)

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kmc' has no attribute {name!r}")
