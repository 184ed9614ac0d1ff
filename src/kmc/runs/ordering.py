"""Order parameter of the mobile ions against temperature (see :mod:`kmc.analysis.ordering`).

:func:`measure_ordering` runs the replicas of a config at each of its temperatures (the same
seeding, dopant placement and equilibration as ``kmc run``), then samples the occupancy at equally
spaced times over ``hops_per_ion`` hops per ion and reports, per site class, the mean filling and
the order parameter with standard errors over the replicas.

With dopants, the frozen pattern of site occupations has two parts: the one the dopants impose
(sites near a dopant are emptier or fuller in every run with that placement) and the one the ions
choose (an ordered variant). Each replica then runs a twin with the same placement and its own
start and dynamics: the overlap between the twins measures the imposed part
(``static_order_parameter``), what is frozen within each run beyond it the chosen part
(``spontaneous_order_parameter``, eta_s^2 = eta^2 - eta_static^2). Without dopants every site of
a class is equivalent, so the imposed part is 0 and no twin is run.
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

TWIN_KEY = 0x54574E  # "TWN": spawn-key suffix of a replica's twin (same placement, own dynamics)


def twin_seed(seed: np.random.SeedSequence) -> np.random.SeedSequence:
    """The seed of a replica's twin: a stream no replica, placement or fresh round uses."""
    return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, TWIN_KEY))


def _overlap(a: np.ndarray, b: np.ndarray, net, n_classes: int, blocked: np.ndarray) -> np.ndarray:
    return order_parameter(a, b, net.site_class, n_classes, blocked).eta_squared


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
        is unbiased), ``static_order_parameter`` and ``spontaneous_order_parameter`` (see the
        module docstring; with their ``_squared``), ``replicas``, ``samples``.
    """
    run = config.run
    if run.replicas < 2:
        raise ConfigError("the order parameter's error comes from the spread over replicas; set "
                          "[run] replicas to 2 or more.")
    system = build_system(config)
    net = system.network
    names = list(net.class_names)
    out = []
    quenched = bool(system.dopants)
    k = len(names)
    for T, seeds in zip(run.temperatures_K, replica_seeds(run.seed, len(run.temperatures_K), run.replicas)):
        fills, eta2s, static2s = [], [], []
        for seed in seeds:
            halves = []
            for s, placed_by in ((seed, None), (twin_seed(seed), seed))[: 2 if quenched else 1]:
                rep = ReplicaMeasurement(system, T, s, run, disorder_of=placed_by)
                rate = rep.sim.engine.total_rate
                if not rate > 0.0:
                    raise NoEventsError(rep.sim.frozen_reason())
                halves.append(site_occupation(rep.sim, nominal_hops(run, rep.n) / rate, samples))
            blocked = rep.blocked
            fills.append(order_parameter(*halves[0], net.site_class, k, blocked).filling)
            eta2s.append(np.mean([_overlap(a, b, net, k, blocked) for a, b in halves], axis=0))
            static2s.append(np.mean([_overlap(a, b, net, k, blocked) for a in halves[0] for b in halves[1]], axis=0)
                            if quenched else np.zeros(k))
        eta2, static2 = np.array(eta2s), np.array(static2s)
        row: dict[str, Any] = {"temperature_K": float(T), "replicas": run.replicas, "samples": samples}
        for key, a in (("filling", np.array(fills)),
                       ("order_parameter", np.sqrt(np.clip(eta2, 0.0, None))), ("order_parameter_squared", eta2),
                       ("static_order_parameter", np.sqrt(np.clip(static2, 0.0, None))),
                       ("static_order_parameter_squared", static2),
                       ("spontaneous_order_parameter", np.sqrt(np.clip(eta2 - static2, 0.0, None))),
                       ("spontaneous_order_parameter_squared", eta2 - static2)):
            row[key] = {n: list(mean_err(a[:, c])) for c, n in enumerate(names) if np.isfinite(a[:, c]).all()}
        out.append(row)
    return out
