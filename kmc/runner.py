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
from kmc.model import KB_EV_K, RateModel
from kmc.network import SiteNetwork
from kmc.simulation import Simulation
from kmc.analysis import arrhenius_report
from kmc.arrhenius import ArrheniusFit
from kmc.transport import (A3_TO_CM3, ReplicaSample, block_sums, mean_err, replica_values,
                           summarize)


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
    """One replica's measurement: its sample, MSD snapshots (averaged over its blocks) and engine
    timing."""

    sample: ReplicaSample
    msd_t: np.ndarray
    msd_tracer: np.ndarray
    msd_collective: np.ndarray
    engine_hops: int
    engine_wall_s: float


def block_hops(run: "Config.run", n_ions: int) -> int:
    """Hops (all ions together) in one measurement block."""
    return max(1, int(math.ceil(run.block_hops_per_ion * n_ions)))


class ReplicaMeasurement:
    """A replica that can be measured block by block and extended later without waste.

    Each block is a fresh measurement window (time origin) on the continuing trajectory: the
    equilibration is done once, and extending the run only appends blocks.
    """

    def __init__(self, system: System, temperature_K: float, seed: np.random.SeedSequence,
                 run: "Config.run") -> None:
        self.sim = Simulation(system.model, temperature_K, n_ions=system.n_ions,
                              blocked=system.blocked, seed=seed)
        self.run_cfg = run
        self.n = self.sim.n_ions
        self.block_hops = block_hops(run, self.n)
        self.marks = np.unique(np.linspace(0, self.block_hops, run.msd_points + 1)
                               .astype(np.int64))[1:]
        self.blocks: list[ReplicaSample] = []
        self.msd: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.wall = 0.0
        self._advance(int(math.ceil(run.equilibration_hops_per_ion * self.n)))

    def _advance(self, hops: int) -> None:
        sim = self.sim
        if self.run_cfg.check_rates:
            for _ in range(hops):
                sim.run(1)
                sim.check_rates()
            return
        t0 = time.perf_counter()
        sim.run(hops)
        self.wall += time.perf_counter() - t0

    def measure(self, n_blocks: int, progress: Callable[[int], None] | None = None) -> None:
        """Append ``n_blocks`` blocks; ``progress(hops)`` is called with the hops just done."""
        sim, n = self.sim, self.n
        for _ in range(n_blocks):
            sim.reset_measurement()
            t, msd_s, msd_c = [], [], []
            done = 0
            for mark in self.marks:
                self._advance(int(mark - done))
                if progress:
                    progress(int(mark - done))
                done = int(mark)
                d = sim.displacements
                t.append(sim.time)
                msd_s.append(float(np.einsum("ia,ia->", d, d)) / n)
                msd_c.append(float(np.sum(d.sum(axis=0) ** 2)) / n)
            self.blocks.append(ReplicaSample.from_simulation(sim))
            self.msd.append((np.array(t), np.array(msd_s), np.array(msd_c)))

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    def result(self) -> ReplicaRun:
        t, s, c = (np.mean([m[k] for m in self.msd], axis=0) for k in range(3))
        return ReplicaRun(ReplicaSample.concat(self.blocks), t, s, c, self.sim.total_hops,
                          self.wall)


def run_replica(system: System, temperature_K: float, seed: np.random.SeedSequence,
                run: "Config.run", progress: Callable[[int], None] | None = None) -> ReplicaRun:
    """Equilibrate, then measure one replica for ``run.time_origins`` blocks (``hops_per_ion`` in
    all), snapshotting the MSD ``run.msd_points`` times per block; ``progress(hops)`` gets the
    cumulative measured hops."""
    rep = ReplicaMeasurement(system, temperature_K, seed, run)
    total = [0]

    def tick(h: int) -> None:
        total[0] += h
        progress(total[0])
    rep.measure(run.time_origins, tick if progress else None)
    return rep.result()


def _rel_err(x: np.ndarray) -> float:
    m, e = mean_err(x)
    return e / m if m > 0 and math.isfinite(e) else math.inf


def _block_rel_err(y: list[np.ndarray], t: list[np.ndarray]) -> float:
    """Relative standard error of the ratio estimate sum(y)/sum(t) over all blocks treated as
    independent (a second, many-degrees-of-freedom opinion for the stopping rule)."""
    y, t = np.concatenate(y), np.concatenate(t)
    b = len(y)
    if b < 2 or y.sum() <= 0:
        return math.inf
    r = y.sum() / t.sum()
    se = math.sqrt(float(np.sum((y - r * t) ** 2)) / (b * (b - 1))) * b / t.sum()
    return se / r


def measure_temperature(system: System, temperature_K: float, seeds: list, run: "Config.run",
                        dim: int, volume_A3: float, charge_e: float, field_V_per_A,
                        progress: Callable[[int], None] | None = None,
                        grow: Callable[[int], None] | None = None
                        ) -> tuple[list[ReplicaRun], dict, dict]:
    """All replicas of one temperature, extended in rounds until converged (see
    :class:`kmc.config.RunConfig`). Returns the replica runs, their per-replica values and the
    convergence record. ``grow(hops)`` announces hops added by an extension round."""
    reps = [ReplicaMeasurement(system, temperature_K, s, run) for s in seeds]
    for rep in reps:
        rep.measure(run.time_origins, progress)
    k, k_max, rounds = run.time_origins, run.max_blocks, 1
    while True:
        samples = [ReplicaSample.concat(r.blocks) for r in reps]
        vals = replica_values(samples, dim, volume_A3, temperature_K, charge_e, field_V_per_A)
        rel = {q: _rel_err(vals[f"{q}_cm2_s"]) for q in ("D_tracer", "D_jump")}
        if run.target_rel_err is None:
            converged, reason = None, "fixed run length (no target_rel_err)"
            break
        # Stop on the larger of the replica and the block estimate of the relative error: the
        # replica estimate alone (few degrees of freedom) would often stop on a lucky low value
        # and so report error bars that are too small.
        r2_b, col2_b = block_sums(samples, field_V_per_A)
        t_b = [smp.block_time_s for smp in samples]
        rel_blk = {"D_tracer": _block_rel_err([b.sum(axis=1) for b in r2_b], t_b),
                   "D_jump": _block_rel_err([b.sum(axis=1) for b in col2_b], t_b)}
        if all(max(rel[q], rel_blk[q]) <= run.target_rel_err for q in run.converge_on):
            converged, reason = True, "target_rel_err reached"
            break
        if k >= k_max:
            converged, reason = False, "max_hops_per_ion reached"
            break
        k_new = min(2 * k, k_max)
        if grow:
            grow(len(reps) * (k_new - k) * reps[0].block_hops)
        for rep in reps:
            rep.measure(k_new - k, progress)
        k, rounds = k_new, rounds + 1
    n = reps[0].n
    record = {
        "time_origins": k,
        "block_hops_per_ion": reps[0].block_hops / n,
        "hops_per_ion_used": k * reps[0].block_hops / n,
        "converged": converged,
        "stop_reason": reason,
        "target_rel_err": run.target_rel_err,
        "rel_err_D_tracer": rel["D_tracer"],
        "rel_err_D_jump": rel["D_jump"],
        "convergence_rounds": rounds,
    }
    return [r.result() for r in reps], vals, record


@dataclass
class RunResult:
    """Results of a config: one dict per temperature, MSD curves, the network summary and, with
    two or more temperatures, the Arrhenius analysis (``arrhenius``, ``arrhenius_axes`` and the
    :class:`~kmc.arrhenius.ArrheniusFit` objects in ``fits``)."""

    config: Config
    results: list[dict]
    msd: list[dict]
    network: dict = field(default_factory=dict)
    arrhenius: dict | None = None
    arrhenius_axes: dict | None = None
    fits: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready data (NaN becomes None)."""
        return _jsonable({"version": __version__, "config": self.config.to_dict(),
                          "network": self.network, "results": self.results,
                          "arrhenius": self.arrhenius, "arrhenius_axes": self.arrhenius_axes,
                          "notes": self.notes})

    def arrhenius_fit(self, basis: str | None = None) -> ArrheniusFit:
        """The :class:`~kmc.arrhenius.ArrheniusFit` of ``basis`` (default: the config's
        ``arrhenius_basis``); also ``"D_tracer_xx"`` etc. for the per-axis fits."""
        basis = basis or self.config.run.arrhenius_basis
        if basis not in self.fits:
            why = "; ".join(self.notes) or f"fits available: {', '.join(self.fits) or 'none'}"
            raise KeyError(f"no {basis!r} Arrhenius fit in this result ({why}).")
        return self.fits[basis]

    def to_rows(self) -> list[dict]:
        """One flat dict per temperature: every key of ``results``, nested dicts flattened with
        dotted names (``occupation_per_class.24d``), lists with dotted indices."""
        return [flatten(_jsonable(r)) for r in self.results]

    def to_dataframe(self):
        """A :class:`pandas.DataFrame` with one row per temperature and every scalar key of
        ``results`` as a column (see :meth:`to_rows`); needs pandas."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("RunResult.to_dataframe needs pandas; install it (pip install "
                              "pandas) or use RunResult.to_rows() for plain dicts.") from None
        rows = self.to_rows()
        return pd.DataFrame(rows, columns=_columns(rows))


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


def _columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def field_work_over_kT(model: RateModel, temperature_K: float) -> float:
    """Largest ``|q E . dr| / kT`` over the hops: linear response needs it well below 1."""
    work = np.abs(model.charge_e * (model.network.hop_vectors @ model.field))
    return float(work.max() / (KB_EV_K * temperature_K)) if work.size else 0.0


def _msd_curve(T: float, reps: list[ReplicaRun]) -> dict:
    """Replica-mean MSD curves (each replica already averaged over its blocks, i.e. time
    origins), with the exact point (0, 0) first and replica standard errors."""
    def with_origin(a: np.ndarray) -> np.ndarray:
        return np.concatenate([[0.0], a])
    curve = {"temperature_K": T,
             "t_s": with_origin(np.mean([r.msd_t for r in reps], axis=0)),
             "msd_tracer_A2": with_origin(np.mean([r.msd_tracer for r in reps], axis=0)),
             "msd_collective_A2": with_origin(np.mean([r.msd_collective for r in reps], axis=0))}
    if len(reps) > 1:
        sq = np.sqrt(len(reps))
        curve["msd_tracer_err_A2"] = with_origin(
            np.std([r.msd_tracer for r in reps], axis=0, ddof=1) / sq)
        curve["msd_collective_err_A2"] = with_origin(
            np.std([r.msd_collective for r in reps], axis=0, ddof=1) / sq)
    return curve


def run_config(config: Config, progress: bool = False) -> RunResult:
    """Run every temperature and replica of ``config``, summarise them and fit Arrhenius laws."""
    system = build_system(config)
    net, run = system.network, config.run
    field_on = bool(np.any(system.model.field != 0.0))
    field_vec = system.model.field if field_on else None
    seeds = replica_seeds(run.seed, len(run.temperatures_K), run.replicas)
    bh = block_hops(run, system.n_ions)
    total_hops = len(run.temperatures_K) * run.replicas * run.time_origins * bh
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_hops, unit="hop", unit_scale=True, leave=False, desc="kmc")

    def tick(h: int) -> None:
        bar.update(h)

    def grow(h: int) -> None:
        bar.total += h
        bar.refresh()

    results, curves, all_vals = [], [], []
    for T, t_seeds in zip(run.temperatures_K, seeds):
        reps, vals, record = measure_temperature(
            system, T, t_seeds, run, net.dimensionality, net.volume_A3, config.model.charge_e,
            field_vec, tick if bar is not None else None, grow if bar is not None else None)
        all_vals.append(vals)
        res = {"temperature_K": T}
        res.update(summarize([r.sample for r in reps], net.dimensionality, net.volume_A3, T,
                             config.model.charge_e, field_vec))
        res.update(record)
        if field_on:
            res["field_abs_V_per_A"] = float(np.linalg.norm(system.model.field))
            res["field_work_max_over_kT"] = field_work_over_kT(system.model, T)
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
        curves.append(_msd_curve(T, reps))
    if bar is not None:
        bar.close()
    info = net.summary()
    info.update(n_sites=net.n_sites, n_ions=system.n_ions, supercell=list(net.supercell),
                volume_A3=net.volume_A3)
    density = system.n_ions / (net.volume_A3 * A3_TO_CM3)
    arr, axes, fits, notes = arrhenius_report(
        list(run.temperatures_K), all_vals, basis=run.arrhenius_basis, seed=run.seed,
        density_cm3=density, charge_e=config.model.charge_e)
    return RunResult(config, results, curves, info, arr, axes, fits, notes)
