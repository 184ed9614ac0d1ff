"""Long-range order of the mobile ions: time-averaged site occupations and one order parameter
per site class.

Disordered ions fill every site of a class equally often; ordered ions fill some sites all the
time and others never (tetragonal Li7La3Zr2O12 fills 8 of the 24 tetrahedral 24d sites of a
cubic cell and leaves 16 empty). For a class with mean filling ``c`` the order parameter is

    eta^2 = Cov_s(<n_s>_1, <n_s>_2) / (c (1 - c))

where ``<n_s>_1`` and ``<n_s>_2`` are the time-averaged occupations of site ``s`` over the first
and the second half of the measurement and the covariance runs over the sites of the class.
Because the halves are independent samples, their covariance estimates the variance of the
sites' true mean occupations without the sampling noise that the variance of one average
carries: ``eta`` is 0 for disorder (within its error) and 1 when every site of the class is
always full or always empty. It is reported as ``sqrt(max(eta^2, 0))`` next to ``eta^2`` itself
(which may be slightly negative for disorder). It does not depend on which of the equivalent
ordered variants (domains) a replica chose, as long as the replica stays in one during the
measurement; a replica that switches variants between the halves lowers it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kmc.engine.model import ION

__all__ = ["OrderParameter", "order_parameter", "site_occupation"]


@dataclass
class OrderParameter:
    """Order parameter of each site class (arrays indexed by class)."""

    filling: np.ndarray        #: mean occupation of the class's sites (0..1)
    eta_squared: np.ndarray    #: Cov(halves) / (c (1 - c)); nan for a class that is full or empty
    eta: np.ndarray            #: sqrt(max(eta_squared, 0))


def order_parameter(first: np.ndarray, second: np.ndarray, site_class: np.ndarray, n_classes: int,
                    blocked: np.ndarray | None = None) -> OrderParameter:
    """Order parameter per site class from the time-averaged occupations of two halves.

    Parameters
    ----------
    first, second
        Time-averaged occupation (0..1) of every site over the first and second half of a
        measurement.
    site_class
        Class index of every site.
    n_classes
        Number of classes.
    blocked
        Sites held by immobile blockers (left out).

    Returns
    -------
    OrderParameter
    """
    first, second = np.asarray(first, float), np.asarray(second, float)
    keep = np.ones(len(first), bool) if blocked is None else ~np.asarray(blocked, bool)
    fill, eta2 = np.full(n_classes, np.nan), np.full(n_classes, np.nan)
    for c in range(n_classes):
        m = keep & (np.asarray(site_class) == c)
        if m.sum() < 2:
            continue
        a, b = first[m], second[m]
        fill[c] = 0.5 * (a.mean() + b.mean())
        var = fill[c] * (1.0 - fill[c])
        if var > 1e-12:
            eta2[c] = float(np.mean((a - a.mean()) * (b - b.mean())) / var)
    return OrderParameter(fill, eta2, np.sqrt(np.clip(eta2, 0.0, None)))


def site_occupation(sim, duration_s: float, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Time-averaged occupation of every site over the two halves of ``duration_s``.

    ``sim`` (a :class:`~kmc.engine.simulation.Simulation`) is advanced to ``samples`` equally
    spaced time marks (the engine stops exactly at each; its clock is memoryless, so sampling
    there is an unbiased estimate of the time average) and its occupancy is read at each.

    Returns
    -------
    first, second
        Mean occupation of every site over the first and the second half of the marks.
    """
    if samples < 2 or samples % 2:
        raise ValueError("samples must be an even number >= 2")
    start = float(sim.engine.state["clock"][0])
    dt = duration_s / samples
    acc = np.zeros((2, len(sim.occupancy)))
    for k in range(1, samples + 1):
        sim.run(1 << 40, start + k * dt)      # stops exactly at the mark
        acc[0 if k <= samples // 2 else 1] += sim.occupancy == ION
    return acc[0] / (samples // 2), acc[1] / (samples // 2)
