"""The kinetic Monte Carlo engine.

The Cython core (``_sumtree``: binary sum tree; ``_engine``: the BKL loop with local updates,
``nogil``; ``_placement``: the hard-core placement of :mod:`~kmc.engine.placement`, also
``nogil``), the flat-array :class:`~kmc.engine.model.RateModel` it consumes and the
:class:`~kmc.engine.simulation.Simulation` wrapper. The only place with Cython. May import
:mod:`kmc.constants`, :mod:`kmc.exceptions` and :mod:`kmc.system`.
"""
