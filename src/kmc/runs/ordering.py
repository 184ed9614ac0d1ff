"""Order parameter of the mobile ions against temperature (see :mod:`kmc.analysis.ordering`).

:func:`measure_ordering` runs the replicas of a config at each of its temperatures (the same
seeding, dopant placement and equilibration as ``kmc run``), then samples the occupancy at equally
spaced times over ``hops_per_ion`` hops per ion and reports, per site class, the mean filling and
the order parameter with standard errors over the replicas.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kmc.analysis.ordering import order_parameter, site_occupation
from kmc.analysis.transport import mean_err
from kmc.config import Config
from kmc.exceptions import ConfigError, NoEventsError
from kmc.runs.replicas import ReplicaMeasurement, nominal_hops, replica_seeds
from kmc.runs.system import build_system

__all__ = ["measure_ordering"]


def measure_ordering(config: Config, samples: int = 400) -> list[dict[str, Any]]:
    """Filling and order parameter of every site class at every temperature of ``config``.

    Parameters
    ----------
    config
        A validated config; ``[run]`` gives temperatures, replicas (at least 2: the errors are
        over replicas), seed, ``equilibration_hops_per_ion`` (ordering from a random start needs
        many) and ``hops_per_ion`` (the measurement).
    samples
        Occupancy samples per replica (even), equally spaced in time.

    Returns
    -------
    list of dict
        One per temperature: ``temperature_K``, ``filling`` and ``order_parameter`` (class name ->
        ``[mean, standard error]``), ``order_parameter_squared`` (the same for eta^2, whose mean
        is unbiased), ``replicas``, ``samples``.
    """
    run = config.run
    if run.replicas < 2:
        raise ConfigError("the order parameter's error comes from the spread over replicas; set "
                          "[run] replicas to 2 or more.")
    system = build_system(config)
    net = system.network
    names = list(net.class_names)
    out = []
    for T, seeds in zip(run.temperatures_K, replica_seeds(run.seed, len(run.temperatures_K), run.replicas)):
        fills, etas, eta2s = [], [], []
        for seed in seeds:
            rep = ReplicaMeasurement(system, T, seed, run)
            rate = rep.sim.engine.total_rate
            if not rate > 0.0:
                raise NoEventsError(rep.sim.frozen_reason())
            first, second = site_occupation(rep.sim, nominal_hops(run, rep.n) / rate, samples)
            op = order_parameter(first, second, net.site_class, len(names), rep.blocked)
            fills.append(op.filling)
            etas.append(op.eta)
            eta2s.append(op.eta_squared)
        row: dict[str, Any] = {"temperature_K": float(T), "replicas": run.replicas, "samples": samples}
        for key, arr in (("filling", fills), ("order_parameter", etas), ("order_parameter_squared", eta2s)):
            a = np.array(arr)
            row[key] = {n: list(mean_err(a[:, c])) for c, n in enumerate(names) if np.isfinite(a[:, c]).all()}
        out.append(row)
    return out
