"""Random hard-core arrangements (:func:`place_hard_core`): the initial placement of every
replica and of the parametrization's sampled configurations. The search loop is compiled
(``_placement``) and runs without the GIL, so replicas placed in worker threads overlap."""
from __future__ import annotations

import numpy as np

from kmc.engine._placement import place

#: local search steps per particle to place (plus :data:`SEARCH_STEPS_EXTRA`) before giving up
SEARCH_STEPS_PER_PARTICLE = 400
SEARCH_STEPS_EXTRA = 1000


class JammedError(ValueError):
    """:func:`place_hard_core` could not reach the requested count; ``placed`` says how far it got."""

    def __init__(self, placed: int) -> None:
        super().__init__(placed)
        self.placed = placed


def place_hard_core(n_sites: int, nbrs: "list[np.ndarray] | tuple[np.ndarray, np.ndarray]",
                    fixed: np.ndarray, n_free: int, rng: np.random.Generator,
                    weights: np.ndarray | None = None) -> np.ndarray:
    """Random arrangement of ``n_free`` particles on a hard-core lattice gas.

    Parameters
    ----------
    n_sites : int
        Number of sites.
    nbrs : list of int arrays, or (offsets, neighbours)
        The sites that may not be occupied together with site ``i``: ``nbrs[i]``, or the CSR
        ``neighbours[offsets[i]:offsets[i + 1]]``.
    fixed : bool array
        Sites already taken (blockers, pre-placed ions); they count as occupied neighbours and are
        never moved.
    n_free : int
        Particles to add on the other sites.
    rng : numpy.random.Generator
        Random stream.
    weights : float array, optional
        Positive per-site weights: the sequential placement visits sites in a weighted random
        order (keys ``E / w`` with ``E`` exponential, Efraimidis-Spirakis), so heavier sites fill
        first on average. None: uniform (the random stream is then the unweighted one).

    Returns
    -------
    numpy.ndarray
        Bool mask of the added particles.

    Raises
    ------
    JammedError
        When the local search does not reach ``n_free`` either.

    Notes
    -----
    Random sequential placement jams well below close packing (garnet Li7 fills 56 of 120 Li
    sites only in its ordered arrangement), so a jammed placement goes on with a local search over
    valid arrangements: remove a random particle; if its neighbourhood then admits two particles
    that do not exclude each other, place both (+1); otherwise put one back at a random admissible
    spot (a random walk that unjams). The search is compiled and draws numpy's own bounded
    integers and shuffles from ``rng``'s bit generator, so ``rng`` ends in the state the
    equivalent Python loop would leave.
    """
    if isinstance(nbrs, tuple):
        off, nbr = nbrs
    else:
        off = np.zeros(n_sites + 1, dtype=np.int64)
        np.cumsum([len(x) for x in nbrs], out=off[1:])
        nbr = np.concatenate([np.asarray(x) for x in nbrs]) if n_sites else np.zeros(0)
    off = np.ascontiguousarray(off, dtype=np.int64)
    nbr = np.ascontiguousarray(nbr, dtype=np.int32)
    fixed = np.ascontiguousarray(fixed, dtype=bool)
    open_sites = np.flatnonzero(~fixed)
    if weights is None:
        order = rng.permutation(open_sites)
    else:
        keys = rng.exponential(size=len(open_sites)) / np.asarray(weights)[open_sites]
        order = open_sites[np.argsort(keys, kind="stable")]
    occ, placed = place(off, nbr, fixed.view(np.uint8), np.ascontiguousarray(order, np.int64),
                        open_sites.astype(np.int64), int(n_free),
                        SEARCH_STEPS_PER_PARTICLE * int(n_free) + SEARCH_STEPS_EXTRA,
                        rng.bit_generator)
    if placed != n_free:
        raise JammedError(placed)
    return occ
