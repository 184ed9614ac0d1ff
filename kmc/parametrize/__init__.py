"""Energy landscapes computed from a structure: calculators, relaxations, NEB barriers, Hamiltonian fits.

Holds everything ``kmc parametrize`` and ``kmc neb`` need to turn a structure and an energy backend
(any ASE calculator; CHGNet by default, from the optional ``[mlip]`` extra) into the numbers a
framework model needs: site energies, pair terms, hard exclusions and E_KRA per hop class, each with
its provenance.

Imports: kmc.constants / kmc.exceptions and the system layer (to read structures and write models);
never the engine, run, analysis, campaign or cli layers. Heavy backends (torch, CHGNet, SevenNet) are
imported lazily inside :mod:`kmc.parametrize.calculators`, so the core package works without them.
"""
