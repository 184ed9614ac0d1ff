"""Energy landscapes computed from a structure: calculators, relaxations, NEB barriers, Hamiltonian fits.

Holds everything ``kmc parametrize`` and ``kmc neb`` need to turn a structure and an energy backend
(any ASE calculator; CHGNet by default, from the optional ``[mlip]`` extra) into the numbers a
framework model needs: site energies, pair terms, hard exclusions and E_KRA per hop class, each with
its provenance.

Modules: :mod:`~kmc.parametrize.calculators` (backends), :mod:`~kmc.parametrize.neb` (cached CI-NEB,
barrier conventions), :mod:`~kmc.parametrize.lattice` (sites, orbits, configurations),
:mod:`~kmc.parametrize.fit` (ridge fit with CV and bootstrap errors), :mod:`~kmc.parametrize.pipeline`
(:func:`parametrize`), :mod:`~kmc.parametrize.writer` (model.toml, data.json) and
:mod:`~kmc.parametrize.toy` (analytic calculators with known answers, for tests and tutorials).

Imports: kmc.constants / kmc.exceptions and the system layer (to read structures and write models);
never the engine, run, analysis, campaign or cli layers (the CLI lives in src/kmc/cli/parametrize.py).
Heavy backends (torch, CHGNet, SevenNet) are imported lazily inside
:mod:`kmc.parametrize.calculators`, and scikit-learn inside :mod:`kmc.parametrize.fit`, so the core
package works without them.
"""

from kmc.parametrize.pipeline import ParametrizedModel, ParametrizeSettings, parametrize

__all__ = ["parametrize", "ParametrizeSettings", "ParametrizedModel"]
