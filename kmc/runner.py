"""Run a whole configuration: build the system, then temperatures x replicas, then statistics.

Seeding: ``SeedSequence(seed)`` spawns one child per temperature and each of those one child per
replica, so every replica has an independent stream and the result depends only on the config.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from kmc import __version__
from kmc.config import Config
from kmc.exceptions import ConfigError
from kmc.lattices import teaching_lattice
from kmc.model import RateModel
from kmc.network import SiteNetwork
from kmc.simulation import Simulation
from kmc.transport import ReplicaSample, summarize


@dataclass
class System:
    """What a config builds before any run: the network, the model and the ion count."""

    network: SiteNetwork
    model: RateModel
    n_ions: int
    blocked: np.ndarray


def _per_class(where: str, values: dict, names: list[str], default: float) -> np.ndarray:
    unknown = [k for k in values if k not in names and k != "default"]
    if unknown:
        raise ConfigError(f"{where} names {unknown[0]!r}, which is not a class of this network; "
                          f"use one of {', '.join(names)}.")
    base = values.get("default", default)
    return np.array([values.get(n, base) for n in names], float)


def build_system(config: Config) -> System:
    """Build the site network, the rate model and the ion count a config describes."""
    lc, mc = config.lattice, config.model
    tl = teaching_lattice(lc.builtin, lc.lattice_constant_A)
    labels = list(lc.site_labels) if lc.site_labels else ["site"] * len(tl.structure)
    if len(labels) != len(tl.structure):
        raise ConfigError(f"[lattice] site_labels needs {len(tl.structure)} labels for the "
                          f"{lc.builtin} unit cell, got {len(labels)}.")
    shells = [r for table in mc.interactions_eV.values() for r, _ in table]
    net = SiteNetwork.from_structure(
        tl.structure, lc.mobile, lc.supercell,
        hop_cutoff_A=lc.hop_cutoff_A or 1.01 * tl.nn_distance_A,
        exclusion_distance_A=lc.exclusion_distance_A,
        interaction_cutoff_A=lc.interaction_cutoff_A or (max(shells) if shells else 0.0),
        site_labels=labels,
    )
    barrier = mc.barrier_eV
    barriers = _per_class("[model.barrier_eV]", barrier, net.hop_class_names, 0.25) \
        if isinstance(barrier, dict) else barrier
    model = RateModel(
        net, attempt_frequency_Hz=mc.attempt_frequency_THz * 1e12, barrier_eV=barriers,
        site_energy_eV=_per_class("[model.site_energies_eV]", mc.site_energies_eV,
                                  net.class_names, 0.0),
        mobile_mobile=mc.interactions_eV.get("mobile_mobile", []),
        mobile_blocker=mc.interactions_eV.get("mobile_blocker", []),
        field_V_per_A=mc.field_V_per_A, charge_e=mc.charge_e,
    )
    blocked = np.zeros(net.n_sites, dtype=bool)
    return System(net, model, config.occupancy.n_ions(net.n_sites), blocked)


def replica_seeds(seed: int, n_temperatures: int, n_replicas: int) -> list[list[np.random.SeedSequence]]:
    """Independent seed sequences: one per (temperature, replica)."""
    return [t.spawn(n_replicas) for t in np.random.SeedSequence(seed).spawn(n_temperatures)]


@dataclass
class ReplicaRun:
    """One replica's measurement: its sample, MSD snapshots and engine timing."""

    sample: ReplicaSample
    msd_t: np.ndarray
    msd_tracer: np.ndarray
    msd_collective: np.ndarray
    engine_hops: int
    engine_wall_s: float


def run_replica(system: System, temperature_K: float, seed: np.random.SeedSequence,
                run: "Config.run", progress: Callable[[int], None] | None = None) -> ReplicaRun:
    """Equilibrate, then measure one replica, snapshotting the MSD ``run.msd_points`` times."""
    sim = Simulation(system.model, temperature_K, n_ions=system.n_ions, blocked=system.blocked,
                     seed=seed)
    n = sim.n_ions
    wall = 0.0

    def advance(hops: int) -> None:
        nonlocal wall
        if run.check_rates:
            for _ in range(hops):
                sim.run(1)
                sim.check_rates()
            return
        t0 = time.perf_counter()
        sim.run(hops)
        wall += time.perf_counter() - t0

    advance(int(math.ceil(run.equilibration_hops_per_ion * n)))
    sim.reset_measurement()
    total = int(math.ceil(run.hops_per_ion * n))
    marks = np.unique(np.linspace(0, total, run.msd_points + 1).astype(np.int64))[1:]
    t, msd_s, msd_c = [], [], []
    done = 0
    for mark in marks:
        advance(int(mark - done))
        done = int(mark)
        d = sim.displacements
        t.append(sim.time)
        msd_s.append(float(np.einsum("ia,ia->", d, d)) / n)
        msd_c.append(float(np.sum(d.sum(axis=0) ** 2)) / n)
        if progress:
            progress(int(mark))
    return ReplicaRun(ReplicaSample.from_simulation(sim), np.array(t), np.array(msd_s),
                      np.array(msd_c), sim.total_hops, wall)


@dataclass
class RunResult:
    """Results of a config: one dict per temperature, MSD curves and the network summary."""

    config: Config
    results: list[dict]
    msd: list[dict]
    network: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready data (NaN becomes None)."""
        return _jsonable({"version": __version__, "config": self.config.to_dict(),
                          "network": self.network, "results": self.results})


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def run_config(config: Config, progress: bool = False) -> RunResult:
    """Run every temperature and replica of ``config`` and summarise them."""
    system = build_system(config)
    net, run = system.network, config.run
    seeds = replica_seeds(run.seed, len(run.temperatures_K), run.replicas)
    total_hops = len(run.temperatures_K) * run.replicas * math.ceil(run.hops_per_ion * system.n_ions)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_hops, unit="hop", unit_scale=True, leave=False, desc="kmc")
    results, curves = [], []
    for T, t_seeds in zip(run.temperatures_K, seeds):
        reps = []
        for seed in t_seeds:
            last = [0]

            def tick(mark: int, last=last) -> None:
                if bar is not None:
                    bar.update(mark - last[0])
                    last[0] = mark
            reps.append(run_replica(system, T, seed, run, tick))
        res = {"temperature_K": T}
        res.update(summarize([r.sample for r in reps], net.dimensionality, net.volume_A3, T,
                             config.model.charge_e))
        wall = sum(r.engine_wall_s for r in reps)
        hops_all = sum(r.engine_hops for r in reps)
        res["wall_s"] = wall
        res["hops_per_s"] = hops_all / wall if wall > 0 else float("nan")
        occ = np.mean([r.sample.class_occupation for r in reps], axis=0)
        sites = np.bincount(net.site_class, minlength=len(net.class_names))
        res["occupation_per_class"] = {name: float(occ[k] / sites[k])
                                       for k, name in enumerate(net.class_names)}
        res["dimensionality"] = net.dimensionality
        results.append(res)
        curves.append({"temperature_K": T, "t_s": np.mean([r.msd_t for r in reps], axis=0),
                       "msd_tracer_A2": np.mean([r.msd_tracer for r in reps], axis=0),
                       "msd_collective_A2": np.mean([r.msd_collective for r in reps], axis=0)})
    if bar is not None:
        bar.close()
    info = net.summary()
    info.update(n_sites=net.n_sites, n_ions=system.n_ions, supercell=list(net.supercell),
                volume_A3=net.volume_A3)
    return RunResult(config, results, curves, info)
