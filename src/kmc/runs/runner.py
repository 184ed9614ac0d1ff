"""Run a whole configuration: build the system, then temperatures x replicas, then statistics.

Seeding: ``SeedSequence(seed)`` spawns one child per temperature and each of those one child per
replica, so every replica has an independent stream and the result depends only on the config.
Dopants are placed afresh in every replica from a stream derived from the replica's seed
(:func:`disorder_seed`), so replicas sample different dopant arrangements and the same seed
always gives the same one.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from kmc import __version__
from kmc.analysis.arrhenius import ArrheniusFit
from kmc.analysis.report import arrhenius_report
from kmc.analysis.transport import (
    A3_TO_CM3,
    QUANTITIES,
    FrameBuffer,
    MSDAnalysis,
    ReplicaSample,
    analyze_frames,
    mean_err,
)
from kmc.config import Config, check_hop_budget, validity_notes
from kmc.constants import KB_EV_K
from kmc.engine.model import RateModel
from kmc.engine.simulation import Simulation
from kmc.exceptions import ConfigError, NoEventsError
from kmc.files import jsonable
from kmc.runs.checkpoint import (
    PlainDataError,
    checkpoint_status,
    decode_plain,
    encode_plain,
    frame_checkpoint,
    register_plain,
    stop_point,
    stop_requested,
)
from kmc.runs.provenance import run_provenance
from kmc.system.network import SiteNetwork

if TYPE_CHECKING:  # annotations only
    from pymatgen.core import Structure

    from kmc.runs.sources import Source


#: spawn-key entry of the stream that places dopants (outside the 0, 1 of Simulation's children)
DISORDER_KEY = 0x444F50  # "DOP"


def disorder_seed(seed: np.random.SeedSequence | int) -> np.random.SeedSequence:
    """The replica's independent stream for dopant placements, derived without spawning (so the
    replica's own placement and engine streams are unchanged)."""
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, DISORDER_KEY))


@dataclass
class DopantSites:
    """Where the atoms of one dopant go in each replica: ``counts`` per host label, drawn from
    ``candidates`` (supercell mobile-site indices if ``on_mobile_sites``, else indices into
    :attr:`System.host_positions`), and the optional energy shift of nearby mobile sites."""

    element: str
    on_mobile_sites: bool
    counts: dict[str, int]
    candidates: dict[str, np.ndarray]
    energy_shift_eV: float | None = None
    shift_radius_A: float | None = None


@dataclass
class System:
    """What a config builds before any run: the network, the model, the ion count, and the
    dopants placed afresh in every replica (from the replica's seed, see :meth:`disorder`)."""

    network: SiteNetwork
    model: RateModel
    n_ions: int
    dopants: list[DopantSites] = field(default_factory=list)
    host_positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    formula: str | None = None
    mobile_per_formula_unit: float | None = None
    source: "object | None" = None          # kmc.runs.sources.Source
    _percolation_clean: dict | None = field(default=None, repr=False)

    @property
    def blocked_counts(self) -> dict[str, int]:
        """Blockers (dopants on mobile-ion sites) per site class in every replica."""
        out: dict[str, int] = {}
        for d in self.dopants:
            if d.on_mobile_sites:
                for lab, k in d.counts.items():
                    out[lab] = out.get(lab, 0) + k
        return out

    def disorder(self, seed: np.random.SeedSequence | int) -> tuple[np.ndarray, np.ndarray | None]:
        """Blocked sites and per-site energy offsets (None without shifts) of one replica, drawn
        from :func:`disorder_seed` of its seed: the same seed gives the same placement."""
        net = self.network
        blocked = np.zeros(net.n_sites, dtype=bool)
        if not self.dopants:
            return blocked, None
        rng = np.random.default_rng(disorder_seed(seed))
        taken = np.zeros(len(self.host_positions), dtype=bool)
        offset = None
        for d in self.dopants:
            chosen = []
            for lab, k in d.counts.items():
                cand = d.candidates[lab]
                cand = cand[~(blocked if d.on_mobile_sites else taken)[cand]]
                pick = rng.choice(cand, size=k, replace=False)
                (blocked if d.on_mobile_sites else taken)[pick] = True
                chosen.append(pick)
            if d.energy_shift_eV:
                idx = np.concatenate(chosen)
                pos = net.positions[idx] if d.on_mobile_sites else self.host_positions[idx]
                near = _within(net, pos, d.shift_radius_A)
                offset = np.zeros(net.n_sites) if offset is None else offset
                offset += d.energy_shift_eV * near
        return blocked, offset

    def percolation(self, blocked: np.ndarray) -> dict:
        """Fraction of the free mobile sites that belong to a spanning cluster (periodic
        dimensionality >= 1) and the largest cluster dimensionality, with these blockers."""
        if not blocked.any() and self._percolation_clean is not None:
            return dict(self._percolation_clean)
        labels, dims = self.network.components(blocked)
        free = ~blocked
        dim_site = dims[labels]
        out = {"spanning_fraction": float(np.mean(dim_site[free] >= 1)) if free.any() else 0.0,
               "dimensionality": int(dim_site[free].max()) if free.any() else 0,
               "blocked_sites": int(blocked.sum())}
        if not blocked.any():
            self._percolation_clean = dict(out)
        return out


def _within(net: SiteNetwork, points: np.ndarray, radius: float) -> np.ndarray:
    """Number of ``points`` within ``radius`` (minimum image in the supercell) of every site."""
    L = net.lattice
    inv = np.linalg.inv(L)
    count = np.zeros(net.n_sites)
    for p in points:
        f = (net.positions - p) @ inv
        f -= np.round(f)
        d = np.linalg.norm(f @ L, axis=1)
        count += (d <= radius + 1e-9) & (d > 1e-6)
    return count


def _per_class(where: str, values: dict, names: list[str], default: float,
               fallback=None) -> np.ndarray:
    """One value per class: the table entry, else ``fallback(name)`` (the source's default),
    else the table's ``default`` key, else ``default``."""
    unknown = [k for k in values if k not in names and k != "default"]
    if unknown:
        raise ConfigError(f"{where} names {unknown[0]!r}, which is not a class of this network; "
                          f"use one of {', '.join(names)}.")
    out = []
    for n in names:
        v = values.get(n)
        if v is None and fallback is not None:
            v = fallback(n)
        if v is None:
            v = values.get("default", default)
        out.append(default if v is None else v)
    return np.array(out, dtype=float)


def barrier_values(config: Config, src) -> np.ndarray:
    """E_KRA per event class (NaN where neither [model] nor the source gives one): a number
    overrides all; a table the named classes; the rest come from the source's defaults (0.25 eV
    on a teaching lattice, the framework's data file, nothing for a CIF)."""
    from kmc.runs.sources import TEACHING_BARRIER_EV

    b = config.model.barrier_eV
    names = src.network.event_class_names
    if isinstance(b, (int, float)):
        return np.full(len(names), float(b))
    if src.kind == "teaching":
        return _per_class("[model.barrier_eV]", b or {}, names, TEACHING_BARRIER_EV)
    return _per_class("[model.barrier_eV]", b or {}, names, np.nan, src.default_barrier)


def _barriers(config: Config, src) -> np.ndarray:
    names = src.network.event_class_names
    vals = barrier_values(config, src)
    missing = [n for n, v in zip(names, vals) if not np.isfinite(v)]
    if missing:
        if src.kind == "cif":
            raise ConfigError(f"a CIF brings no barriers and {missing[0]!r} has none; set [model] "
                              f"barrier_eV = 0.3 (all classes) or give every class in "
                              f"[model.barrier_eV] (`kmc info` lists them).")
        raise ConfigError(f"no barrier for the event class {missing[0]!r} (the {src.name} data "
                          f"file has none); add \"{missing[0]}\" = E_KRA in eV to "
                          f"[model.barrier_eV].")
    return vals


def build_model(config: Config, src) -> RateModel:
    """The rate model of ``config`` on ``src.network``: [model] values over the source's
    defaults."""
    from kmc.runs.sources import TEACHING_ATTEMPT_THZ

    mc, net, fw = config.model, src.network, src.framework
    nu = mc.attempt_frequency_THz
    if nu is None:
        nu = fw.attempt_frequency_THz if fw is not None else TEACHING_ATTEMPT_THZ
    site_e = dict(fw.site_energies_eV) if fw is not None else {}
    unknown = [k for k in mc.site_energies_eV if k not in net.class_names and k != "default"]
    if unknown:
        raise ConfigError(f"[model.site_energies_eV] names {unknown[0]!r}, which is not a class of "
                          f"this network; use one of {', '.join(net.class_names)}.")
    site_e = {k: v for k, v in site_e.items() if k in net.class_names}
    site_e.update(mc.site_energies_eV)
    inter = dict(fw.interactions_eV) if fw is not None else {}
    inter.update(mc.interactions_eV)
    return RateModel(
        net, attempt_frequency_Hz=nu * 1e12, barrier_eV=_barriers(config, src),
        site_energy_eV=_per_class("[model.site_energies_eV]", site_e, net.class_names, 0.0),
        mobile_mobile=[tuple(x) for x in inter.get("mobile_mobile", [])],
        mobile_blocker=[tuple(x) for x in inter.get("mobile_blocker", [])],
        field_V_per_A=mc.field_V_per_A, charge_e=mc.charge_e,
    )


def _dopant_list(config: Config) -> list:
    from kmc.system.dopants import Dopant

    return [Dopant(el, d["site"], d["per_formula_unit"], d.get("charge"))
            for el, d in (config.dopants or {}).items()]


def _framework_dopants(config: Config, src):
    """Doped-cell bookkeeping and the per-replica placement plan of ``[dopants]``."""
    from kmc.system.dopants import apply_dopants

    fw, net = src.framework, src.network
    specs = config.dopants or {}
    cell = apply_dopants(fw, _dopant_list(config), net.n_cells)
    names = np.array(net.class_names)[net.site_class]
    host_labels = sorted({lab for p in cell.placements if not p.on_mobile_sites
                          for lab in p.counts})
    host_pos, host_lab = _host_sites(src, host_labels)
    plan = []
    for p in cell.placements:
        spec = specs[p.element]
        if p.on_mobile_sites:
            cand = {lab: np.flatnonzero(names == lab) for lab in p.counts}
        else:
            cand = {lab: np.flatnonzero(host_lab == lab) for lab in p.counts}
        shift, radius = spec.get("energy_shift_eV"), spec.get("shift_radius_A")
        if shift is not None:
            _check_radius(net, radius, p.element)
        plan.append(DopantSites(p.element, p.on_mobile_sites, dict(p.counts), cand, shift, radius))
    return cell, plan, host_pos


def _host_sites(src, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cartesian positions and labels of the framework sites ``labels`` over the supercell."""
    net, st = src.network, src.structure
    if not labels:
        return np.zeros((0, 3)), np.zeros(0, dtype=str)
    lab = np.array([site.properties.get("label") for site in st])
    keep = np.isin(lab, labels)
    frac = np.mod(st.frac_coords[keep], 1.0)
    cells = net._cells
    pos = ((cells[:, None, :] + frac[None, :, :]).reshape(-1, 3)) @ net.unit_lattice
    return pos, np.tile(lab[keep], len(cells))


def _check_radius(net: SiteNetwork, radius: float, element: str) -> None:
    L = net.lattice
    vol = abs(np.linalg.det(L))
    widths = [vol / np.linalg.norm(np.cross(L[i], L[j])) for i, j in ((1, 2), (2, 0), (0, 1))]
    if radius >= 0.5 * min(widths):
        raise ConfigError(f"[dopants] {element} shift_radius_A = {radius:g} Å reaches half the "
                          f"supercell width ({0.5 * min(widths):.2f} Å); use a larger supercell or "
                          f"a smaller radius.")


def build_system(config: Config, with_model: bool = True,
                 structure: "Structure | None" = None) -> System:
    """Build the site network, the rate model, the ion count and the dopant plan of a config
    (``with_model=False`` skips the model, e.g. for ``kmc info`` on a CIF without barriers;
    ``System.model`` is then None; ``structure``, a pymatgen Structure, stands in for the CIF
    file of ``[lattice] cif``)."""
    from kmc.runs.sources import source_for

    src = source_for(config, structure)
    net = src.network
    model = build_model(config, src) if with_model else None
    occ = config.occupancy
    if src.kind == "framework":
        cell, plan, host_pos = _framework_dopants(config, src)
        n_free = net.n_sites - sum(cell.blocked_labels.values())
        n_ions = occ.n_ions(n_free, default=cell.n_ions)
        if not occ.is_default:  # the formula reports the ion count actually simulated
            from kmc.system.dopants import apply_dopants

            cell = apply_dopants(src.framework, _dopant_list(config), net.n_cells,
                                 n_mobile=n_ions)
        return System(net, model, n_ions, plan, host_pos, cell.formula,
                      cell.mobile_per_formula_unit, src)
    default = int(round(src.ions_per_cell * net.n_cells)) if src.kind == "cif" else None
    if default == 0:
        raise ConfigError(f"the {net.species} sites of {Path(src.name).name} have zero total "
                          f"occupancy; give the ion count in [occupancy] (ions, vacancies or "
                          f"filling).")
    plan = site_blocker_plan(src)  # e.g. the Al of a mixed Li/Al site of a CIF
    n_free = net.n_sites - sum(k for d in plan for k in d.counts.values())
    n_ions = occ.n_ions(n_free, default=default)
    return System(net, model, n_ions, plan, np.zeros((0, 3)), src.formula(n_ions),
                  src.mobile_per_formula_unit(n_ions), src)


def site_blocker_plan(src: "Source") -> list[DopantSites]:
    """The immobile species sharing mobile-ion sites (``Source.blockers``) as blockers placed
    afresh in every replica: the nearest whole number of the class's supercell sites."""
    names = np.array(src.network.class_names)[src.network.site_class]
    plan = []
    for el, per_class in src.blockers.items():
        cand = {lab: np.flatnonzero(names == lab) for lab in per_class}
        counts = {lab: int(round(x * len(cand[lab]))) for lab, x in per_class.items()}
        if any(counts.values()):
            plan.append(DopantSites(el, True, {k: v for k, v in counts.items() if v}, cand))
    return plan


def replica_seeds(seed: int, n_temperatures: int, n_replicas: int) -> list[list[np.random.SeedSequence]]:
    """Independent seed sequences: one per (temperature, replica)."""
    return [t.spawn(n_replicas) for t in np.random.SeedSequence(seed).spawn(n_temperatures)]


@dataclass
class ReplicaRun:
    """One replica's finished measurement: its frames, the single-window sample of the whole
    measurement (class occupation, hop totals) and engine timing."""

    frames: FrameBuffer
    sample: ReplicaSample
    engine_hops: int
    engine_wall_s: float


def nominal_hops(run: "Config.run", n_ions: int) -> int:
    """Hops (all ions together) the first round of a replica's measurement aims at."""
    return max(1, int(math.ceil(run.hops_per_ion * n_ions)))


#: longest stretch of hops between two safe points (checkpoint opportunities) of a replica; the
#: engine gives ``run(a) + run(b) == run(a + b)`` bit for bit, so chunking never changes a result
SAFE_POINT_HOPS = 1 << 16


def _no_safe_point() -> None:
    pass


class ReplicaMeasurement:
    """A replica whose ion displacements are recorded at frames equally spaced in simulated
    time, and which can be extended later without waste.

    The equilibration is done once; :meth:`start` opens the measurement (a
    :class:`~kmc.analysis.transport.FrameBuffer` of ``capacity`` intervals ``spacing_s`` apart) and
    :meth:`measure_until` advances the engine hop-chunk-wise up to each time mark (the engine
    stops exactly at the mark; its clock is memoryless, so this is statistically exact) and
    records the frame there. Extending only appends frames (decimating a full buffer).

    The object is its own resumable state (its :class:`~kmc.engine.simulation.Simulation` with the RNG,
    the frame buffer and plain numbers), so a measurement continued after a checkpoint round
    trip is bit for bit the uninterrupted one. ``safe_point`` callbacks are called at most
    :data:`SAFE_POINT_HOPS` hops apart (inside a frame interval or after a frame) and at the
    end of every round.
    With ``equilibrate=False`` the constructor leaves the equilibration to :meth:`equilibrate`.
    """

    def __init__(self, system: System, temperature_K: float, seed: np.random.SeedSequence,
                 run: "Config.run", *, equilibrate: bool = True) -> None:
        self.blocked, offset = system.disorder(seed)
        model = system.model if offset is None else replace(system.model,
                                                            site_energy_offset_eV=offset)
        self.sim = Simulation(model, temperature_K, n_ions=system.n_ions,
                              blocked=self.blocked, seed=seed)
        self.run_cfg = run
        self.n = self.sim.n_ions
        self.wall = 0.0
        self.eq_hops = int(math.ceil(run.equilibration_hops_per_ion * self.n))
        self.eq_done = 0
        self.frames: FrameBuffer | None = None
        self.events0 = 0       # engine events before the measurement
        self.unsaved_hops = 0  # measured hops since the last safe point
        if equilibrate:
            self.equilibrate()

    def _advance(self, hops: int, t_stop: float = math.inf) -> int:
        return self._engine_run(hops, t_stop)

    def _engine_run(self, hops: int, t_stop: float = math.inf) -> int:
        sim = self.sim
        if self.run_cfg.check_rates:
            done = 0
            while done < hops and sim.run(1, t_stop) == 1:
                sim.check_rates()
                done += 1
            return done
        t0 = time.perf_counter()
        done = sim.run(hops, t_stop)
        self.wall += time.perf_counter() - t0
        return done

    @property
    def equilibrated(self) -> bool:
        return self.eq_done >= self.eq_hops

    def equilibrate(self, safe_point: Callable[[], None] = _no_safe_point) -> None:
        """Finish the equilibration (a no-op once done), in chunks with safe points between."""
        while self.eq_done < self.eq_hops:
            h = min(self.eq_hops - self.eq_done, SAFE_POINT_HOPS)
            self._advance(h)
            self.eq_done += h
            safe_point()

    def start(self, spacing_s: float, capacity: int) -> None:
        """Open the measurement (a no-op once open): frame 0 is the current state."""
        if self.frames is not None:
            return
        self.sim.reset_measurement()
        self.events0 = self.sim.total_hops
        self.frames = FrameBuffer.empty(capacity, self.n, spacing_s)
        self.frames.append(self.sim.displacements, 0.0, 0)

    def measure_until(self, t_target_s: float, progress: Callable[[int], None] | None = None,
                      safe_point: Callable[[], None] = _no_safe_point) -> None:
        """Record frames until the last one is at ``t_target_s`` after the start."""
        self.equilibrate(safe_point)
        fb, sim = self.frames, self.sim
        clock = sim.engine.state["clock"]
        while fb.time_s < t_target_s * (1.0 - 1e-12):
            t_stop = sim.t0 + fb.next_mark_s()
            while clock[0] < t_stop:
                done = self._advance(SAFE_POINT_HOPS - self.unsaved_hops, t_stop)
                self.unsaved_hops += done
                if progress and done:
                    progress(done)
                if clock[0] < t_stop:
                    self.unsaved_hops = 0
                    safe_point()
            st = sim.engine.state
            fb.append(st["disp"], float(st["sumsq"].sum()), int(st["hops"].sum()))
            if self.unsaved_hops >= SAFE_POINT_HOPS or fb.time_s >= t_target_s * (1.0 - 1e-12):
                self.unsaved_hops = 0
                safe_point()

    @property
    def events(self) -> int:
        """Measured engine events (a knock-off is one event moving two ions)."""
        return self.sim.total_hops - self.events0

    @property
    def ion_moves(self) -> int:
        return int(self.sim.engine.state["hops"].sum())

    def result(self) -> ReplicaRun:
        return ReplicaRun(self.frames, ReplicaSample.from_simulation(self.sim),
                          self.sim.total_hops, self.wall)


def run_replica(system: System, temperature_K: float, seed: np.random.SeedSequence,
                run: "Config.run", progress: Callable[[int], None] | None = None) -> ReplicaRun:
    """Equilibrate, then measure one replica for about ``hops_per_ion`` hops per ion (first
    round), exactly as :func:`run_config` measures it: the frame spacing comes from the mean
    total rate of all ``run.replicas`` replicas of its temperature (their seeds are the siblings
    of ``seed``, rebuilt from its spawn key, and they are equilibrated for that only);
    ``progress(hops)`` gets the cumulative measured hops."""
    rep = ReplicaMeasurement(system, temperature_K, seed, run)
    reps = [rep]
    if isinstance(seed, np.random.SeedSequence) and seed.spawn_key:
        *parent, me = seed.spawn_key
        reps = [rep if j == me else ReplicaMeasurement(
            system, temperature_K, np.random.SeedSequence(seed.entropy, spawn_key=(*parent, j)),
            run) for j in range(max(run.replicas, me + 1))][:run.replicas] or [rep]
        if rep not in reps:
            reps = [rep]
    spacing = measurement_spacing(reps, run)
    rep.start(spacing, run.msd_frames)
    total = [0]

    def tick(h: int) -> None:
        total[0] += h
        progress(total[0])
    rep.measure_until(spacing * run.msd_frames, tick if progress else None)
    return rep.result()


def record_trajectory(rec, sim: Simulation) -> None:
    """Fill the :class:`kmc.runs.trajectory.TrajectoryRecorder` ``rec`` (frames at hop marks) from a
    copy of the equilibrated replica ``sim``: the copy continues the replica's own random stream
    without the stops at the MSD frame times, so it is a trajectory of the same model and the
    measured replica is left untouched."""
    twin = copy.deepcopy(sim)
    twin.reset_measurement()
    rec.start(twin)
    while not rec.finished:
        h = rec.hops_to_next()
        twin.run(h)
        rec.sync(twin, h)


def measurement_spacing(reps: list[ReplicaMeasurement], run: "Config.run") -> float:
    """Frame spacing (s) of a temperature's first round: ``hops_per_ion`` hops per ion at the
    replicas' mean total rate after equilibration, over ``msd_frames`` intervals. The same for
    every replica, so their MSD curves share one lag grid."""
    rate = float(np.mean([r.sim.engine.total_rate for r in reps]))
    if not rate > 0.0:
        raise NoEventsError(reps[0].sim.frozen_reason())
    return nominal_hops(run, reps[0].n) / rate / run.msd_frames


def _rel_err(x: np.ndarray) -> float:
    m, e = mean_err(x)
    return e / abs(m) if m != 0 and math.isfinite(e) else math.inf


class TemperatureState:
    """Resumable state of one temperature: its replicas (created so far), the frame spacing of
    the first round, the measurement time the current round aims at and the round number."""

    def __init__(self) -> None:
        self.reps: list[ReplicaMeasurement] = []
        self.spacing_s: float | None = None
        self.t_target_s: float | None = None
        self.rounds = 1
        #: optional kmc.runs.trajectory.TrajectoryRecorder, attached to the first replica
        self.recorder = None


def measure_temperature(system: System, temperature_K: float, seeds: list, run: "Config.run",
                        dim: int, volume_A3: float, charge_e: float, field_V_per_A,
                        progress: Callable[[int], None] | None = None,
                        grow: Callable[[int], None] | None = None, *,
                        state: TemperatureState | None = None,
                        safe_point: Callable[[], None] = _no_safe_point
                        ) -> tuple[list[ReplicaRun], MSDAnalysis, dict]:
    """All replicas of one temperature, extended in rounds (each doubling the measurement time)
    until converged (see :class:`kmc.config.RunConfig`). Returns the replica runs, the MSD
    analysis and the convergence record. ``grow(hops)`` announces hops added by an extension.

    ``state`` (a :class:`TemperatureState`, possibly restored from a checkpoint) is continued
    where it stands: replicas it already holds are never created again, so their seeds are not
    used (nor spawned) twice. ``safe_point()`` is called whenever ``state`` may be saved."""
    st = state if state is not None else TemperatureState()
    while len(st.reps) < len(seeds):
        st.reps.append(ReplicaMeasurement(system, temperature_K, seeds[len(st.reps)], run,
                                          equilibrate=False))
        safe_point()
    reps = st.reps
    for rep in reps:
        rep.equilibrate(safe_point)
    rec = getattr(st, "recorder", None)
    if rec is not None and not rec.finished and reps[0].frames is None:
        record_trajectory(rec, reps[0].sim)
    if st.spacing_s is None:
        st.spacing_s = measurement_spacing(reps, run)
        st.t_target_s = st.spacing_s * run.msd_frames
        safe_point()
    for rep in reps:
        rep.start(st.spacing_s, run.msd_frames)
    limit = run.max_hops_limit
    while True:
        for rep in reps:
            rep.measure_until(st.t_target_s, progress, safe_point)
        an = analyze_frames([r.frames for r in reps], dim, volume_A3, temperature_K, charge_e,
                            field_V_per_A, run.time_origins)
        rel = {q: _rel_err(an.values[f"{q}_cm2_s"]) for q in QUANTITIES}
        if run.target_rel_err is None:
            converged, reason = None, "fixed run length (no target_rel_err)"
            break
        if all(rel[q] <= run.target_rel_err and an.summary[f"diffusive_{q}"]
               for q in run.converge_on):
            converged, reason = True, "target_rel_err reached in the diffusive regime"
            break
        nominal = run.hops_per_ion * 2 ** (st.rounds - 1)
        if 2 * nominal > limit * (1 + 1e-9):
            converged, reason = False, "max_hops_per_ion reached"
            break
        if grow:
            grow(len(reps) * int(round(nominal * reps[0].n)))
        st.t_target_s *= 2.0
        st.rounds += 1
    n = reps[0].n
    knock = None
    if system.network.knockoffs is not None:
        # every knock-off moves two ions: ion moves - events = knock-offs
        knock = mean_err(np.array([(r.ion_moves - r.events) / r.events if r.events else 0.0
                                   for r in reps]))
    perc = [system.percolation(r.blocked) for r in reps]
    frac = np.array([p["spanning_fraction"] for p in perc])
    dims = np.array([p["dimensionality"] for p in perc])
    f_mean, f_err = mean_err(frac)
    s = an.summary
    used = float(np.mean([r.ion_moves for r in reps])) / n if n else 0.0
    record = {
        "percolation": {"spanning_fraction": f_mean, "spanning_fraction_err": f_err,
                        "dimensionality_mean": float(dims.mean()),
                        "dimensionality_min": int(dims.min()),
                        "blocked_sites": int(perc[0]["blocked_sites"])},
        "time_origins": run.time_origins,
        # hops per ion in the longest fitted lag of D*
        "block_hops_per_ion": used * s["fit_end_D_tracer_s"] / s["time_s"] if s["time_s"] else 0.0,
        "hops_per_ion_used": used,
        "converged": converged,
        "stop_reason": reason,
        "target_rel_err": run.target_rel_err,
        "rel_err_D_tracer": rel["D_tracer"],
        "rel_err_D_jump": rel["D_jump"],
        "convergence_rounds": st.rounds,
    }
    if knock is not None:
        record["knockoff_event_fraction"], record["knockoff_event_fraction_err"] = knock
    return [r.result() for r in reps], an, record


@dataclass
class RunResult:
    """Results of a config: one dict per temperature, MSD curves, the network summary and, with
    two or more temperatures, the Arrhenius analysis (``arrhenius``, ``arrhenius_axes`` and the
    :class:`~kmc.analysis.arrhenius.ArrheniusFit` objects in ``fits``)."""

    config: Config
    results: list[dict]
    msd: list[dict]
    network: dict = field(default_factory=dict)
    arrhenius: dict | None = None
    arrhenius_axes: dict | None = None
    fits: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    formula: str | None = None
    mobile_ions_per_formula_unit: float | None = None
    #: how this call used its :class:`RunCheckpoint` (not part of :meth:`to_dict`): ``resumed``,
    #: ``restored_hops`` (engine hops already done in the state it resumed from), ``total_hops``
    #: (engine hops of the whole run, equilibration included), ``saves``, ``discarded`` (why a
    #: loaded blob was not used: None, "mismatch" or "unreadable")
    checkpoint_info: dict = field(default_factory=dict, repr=False, compare=False)
    #: the :class:`kmc.runs.trajectory.Trajectory` of ``[output] trajectory`` (None without one)
    trajectory: "object | None" = field(default=None, repr=False, compare=False)
    #: what produced it (:func:`kmc.runs.provenance.run_provenance`); ``provenance`` in to_dict()
    provenance: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def warnings(self) -> list[str]:
        """One sentence per temperature and quantity measured outside the diffusive regime
        (what to do about it), and one when a single replica gives no error bars."""
        out = []
        for r in self.results:
            for q in ("D_tracer", "D_jump"):
                fit = r.get("fit", {}).get(q)
                if fit is None or fit["diffusive"]:
                    continue
                out.append(
                    f"{q} at {r['temperature_K']:g} K is not in the diffusive regime (MSD "
                    f"local exponent {fit['local_exponent']:.2f} over {fit['start_s']:.3g}-"
                    f"{fit['end_s']:.3g} s, MSD {fit['msd_at_start_A2']:.3g} A^2 at the window "
                    f"start, needed >= {fit['msd_min_A2']:.3g}): run longer, i.e. raise [run] "
                    f"hops_per_ion (to {4 * self.config.run.hops_per_ion:g}, say) or set "
                    f"target_rel_err so the run extends until it is diffusive.")
        if self.results and self.results[0].get("replicas") == 1:
            out.append("one replica: no standard errors are given (replicas are the "
                       "independent samples); set [run] replicas = 4 or more for error bars.")
        return out

    def to_dict(self) -> dict:
        """JSON-ready data (NaN becomes None)."""
        return jsonable({"version": __version__, "config": self.config.to_dict(),
                          "formula": self.formula,
                          "mobile_ions_per_formula_unit": self.mobile_ions_per_formula_unit,
                          "network": self.network, "results": self.results,
                          "arrhenius": self.arrhenius, "arrhenius_axes": self.arrhenius_axes,
                          "notes": self.notes, "provenance": self.provenance})

    def arrhenius_fit(self, basis: str | None = None) -> ArrheniusFit:
        """The :class:`~kmc.analysis.arrhenius.ArrheniusFit` of ``basis`` (default: the config's
        ``arrhenius_basis``); also ``"D_tracer_xx"`` etc. for the per-axis fits."""
        if basis is None:
            basis = self.arrhenius["basis"] if self.arrhenius is not None \
                else self.config.run.arrhenius_basis
        if basis not in self.fits:
            why = "; ".join(self.notes) or f"fits available: {', '.join(self.fits) or 'none'}"
            raise KeyError(f"no {basis!r} Arrhenius fit in this result ({why}).")
        return self.fits[basis]

    def to_rows(self) -> list[dict]:
        """One flat dict per temperature: every key of ``results``, nested dicts flattened with
        dotted names (``occupation_per_class.24d``), lists with dotted indices."""
        return [flatten(jsonable(r)) for r in self.results]

    def to_dataframe(self):
        """A :class:`pandas.DataFrame` with one row per temperature and every scalar key of
        ``results`` as a column (see :meth:`to_rows`); needs pandas."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("RunResult.to_dataframe needs pandas; install it (pip install "
                              "pandas) or use RunResult.to_rows() for plain dicts.") from None
        rows = self.to_rows()
        return pd.DataFrame(rows, columns=result_columns(rows))


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


def result_columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def field_work_over_kT(model: RateModel, temperature_K: float) -> float:
    """Largest ``|q E . dr| / kT`` over the hops: linear response needs it well below 1."""
    work = np.abs(model.charge_e * (model.network.hop_vectors @ model.field))
    return float(work.max() / (KB_EV_K * temperature_K)) if work.size else 0.0


def _msd_curve(T: float, an: MSDAnalysis) -> dict:
    """Replica-mean MSD curves on the lag grid (all time origins), with the exact point (0, 0)
    first, replica standard errors and the fit windows."""
    c = an.curve
    curve = {"temperature_K": T}
    for key in ("t_s", "msd_tracer_A2", "msd_collective_A2", "msd_tracer_err_A2",
                "msd_collective_err_A2"):
        if key in c:
            curve[key] = np.concatenate([[0.0], c[key]])
    for key in ("msd_tracer_axes_A2", "msd_collective_axes_A2"):
        curve[key] = np.vstack([np.zeros((1, 3)), c[key]])
    curve["fit"] = c["fit"]
    return curve


class RunCheckpoint(Protocol):
    """Where :func:`run_config` keeps the state of an interrupted run (e.g.
    :class:`kmc.campaign.core.CheckpointDir` handles, or anything with these three members).

    ``interval_s``: seconds between two saves (0: at every safe point; ``math.inf``: never).
    ``load()``: the blob of an earlier, interrupted attempt of this run, or None.
    ``save(blob)``: keep ``blob`` (it must replace the previous one atomically, so that a kill
    leaves either the old or the new blob).
    """

    interval_s: float

    def load(self) -> bytes | None: ...

    def save(self, blob: bytes) -> None: ...


UNREADABLE_CHECKPOINT_NOTE = ("a saved checkpoint of this run was unreadable (truncated or "
                              "corrupt), so the run started again from the beginning")
LEGACY_CHECKPOINT_NOTE = ("a saved checkpoint of this run was in the old pickle format, which kmc "
                          "no longer loads (loading a pickle can run code), so the run started "
                          "again from the beginning")


@dataclass
class RunState:
    """Everything :func:`run_config` needs to continue a run: the index of the current
    temperature, the finished temperatures' results, MSD curves, replica values and engine hops,
    and the current temperature's :class:`TemperatureState` (its replicas with their engines and
    RNG states, blocks, convergence round). Saved as plain data (:func:`encode_checkpoint`);
    every class it may hold is registered in :func:`_register_run_state_types`."""

    t_index: int = 0
    results: list = field(default_factory=list)
    curves: list = field(default_factory=list)
    all_vals: list = field(default_factory=list)
    engine_hops: list = field(default_factory=list)
    current: TemperatureState | None = None
    bar_done: int = 0
    bar_total: int = 0
    trajectory: "object | None" = None

    def hops_so_far(self) -> int:
        """Engine hops done (all replicas, equilibration included) up to this state."""
        now = sum(r.sim.total_hops for r in self.current.reps) if self.current else 0
        return int(sum(self.engine_hops)) + int(now)


def _simulation_state(sim: Simulation) -> dict:
    st = sim.engine_state()
    st["site_energy_offset_eV"] = sim.model.site_energy_offset_eV  # per-replica dopant shifts
    return st


def _simulation_from_state(state: dict, context) -> Simulation:
    model = context["model"]
    if state["site_energy_offset_eV"] is not None:
        model = replace(model, site_energy_offset_eV=state["site_energy_offset_eV"])
    return Simulation.from_engine_state(model, state)


def _register_run_state_types() -> None:
    """The one list of classes a :class:`RunState` may hold (a new class in the run state is
    added here; encoding an unregistered one raises TypeError naming it). A simulation is saved
    as its engine arrays and RNG state and rebuilt on the run's model (decode context
    ``model``); ``run_cfg`` comes from the config (context ``run``), which the header pins."""
    from kmc.runs.trajectory import Trajectory, TrajectoryRecorder

    register_plain(RunState, name="RunState")
    register_plain(TemperatureState, name="TemperatureState")
    register_plain(ReplicaMeasurement, name="ReplicaMeasurement",
                   context_fields={"run_cfg": "run"})
    register_plain(FrameBuffer, name="FrameBuffer")
    register_plain(ReplicaSample, name="ReplicaSample")
    register_plain(Simulation, name="Simulation", to_state=_simulation_state,
                   from_state=_simulation_from_state)
    register_plain(TrajectoryRecorder, name="TrajectoryRecorder")
    register_plain(Trajectory, name="Trajectory")


_register_run_state_types()


def encode_checkpoint(config: Config, state: RunState) -> bytes:
    """The checkpoint blob of ``state``: the plain-data payload
    (:func:`kmc.runs.checkpoint.encode_plain`: an .npz of a JSON skeleton and the arrays) framed
    by :func:`kmc.runs.checkpoint.frame_checkpoint` (magic, JSON header with format, kmc version,
    the full config, size and sha256 of the payload)."""
    return frame_checkpoint(config.to_dict(), encode_plain(state))


def decode_checkpoint(blob: bytes, config: Config, system: System | None = None
                      ) -> tuple[RunState | None, str | None]:
    """``(state, None)`` for a blob of this kmc version and config, else ``(None, why)`` as in
    :func:`checkpoint_status`. The header is checked before the payload is decoded, and the
    payload is plain data: nothing in it can run code (an old pickle checkpoint is refused
    unread). The engines are rebuilt on ``system`` (default: built from ``config``)."""
    payload, why = checkpoint_status(blob, config)
    if payload is None:
        return None, why
    if system is None:
        system = build_system(config)
    try:
        state = decode_plain(payload, {"model": system.model, "run": config.run})
    except PlainDataError:
        return None, "unreadable"
    if not isinstance(state, RunState) or not _plausible(state, config):
        return None, "unreadable"
    return state, None


def _plausible(state: RunState, config: Config) -> bool:
    """Cheap structural checks of a decoded state (types and counts the run relies on)."""
    n_t = len(config.run.temperatures_K)
    ints = (state.t_index, state.bar_done, state.bar_total)
    if any(isinstance(v, bool) or not isinstance(v, int) for v in ints):
        return False
    if not 0 <= state.t_index <= n_t or len(state.results) != state.t_index:
        return False
    cur = state.current
    if cur is None:
        return True
    return (isinstance(cur, TemperatureState) and isinstance(cur.reps, list)
            and len(cur.reps) <= config.run.replicas
            and all(isinstance(r, ReplicaMeasurement) for r in cur.reps))


class LineProgress:
    """Progress for a stderr that is not a terminal (batch jobs, CI logs): one plain line every
    ``interval_s`` seconds (none for a run shorter than that), with the tqdm members
    :func:`run_config` uses (``update``, ``total``, ``refresh``, ``close``)."""

    def __init__(self, total: int, done: int = 0, interval_s: float = 5.0) -> None:
        self.total, self.n, self.interval_s = total, done, interval_s
        self.start_n = done
        self.t0 = self.last = time.monotonic()

    def update(self, h: int) -> None:
        self.n += h
        now = time.monotonic()
        if now - self.last >= self.interval_s:
            self.last = now
            rate = (self.n - self.start_n) / (now - self.t0)
            left = (self.total - self.n) / rate if rate > 0 else math.inf
            print(f"kmc: {self.n:.4g} of {self.total:.4g} hops ({self.n / self.total:.0%}), "
                  f"{rate:.3g} hops/s, about {left:.0f} s left", file=sys.stderr, flush=True)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Saver:
    """The safe-point callback: saves the run state when ``hook.interval_s`` (read at every
    safe point, so a hook may change it) has elapsed since the start or the last save."""

    def __init__(self, hook: RunCheckpoint | None, config: Config, state: RunState) -> None:
        self.hook, self.config, self.state = hook, config, state
        stop_point(self)  # while this lives, SIGINT/SIGTERM wait for the next safe point
        self.last = time.monotonic()
        self.saves = 0

    def __call__(self) -> None:
        if stop_requested() is not None:
            # SIGINT/SIGTERM (kmc.runs.checkpoint.stop_on_signals): the state is consistent here, so
            # save it one last time and stop; rerunning resumes from exactly this point
            if self.hook is not None:
                self.hook.save(encode_checkpoint(self.config, self.state))
                self.saves += 1
            raise KeyboardInterrupt
        if self.hook is None:
            return
        interval = self.hook.interval_s
        if interval is None or not (time.monotonic() - self.last >= float(interval)):
            return
        self.hook.save(encode_checkpoint(self.config, self.state))
        self.saves += 1
        self.last = time.monotonic()


def run_config(config: Config, progress: bool = False, *,
               checkpoint: RunCheckpoint | None = None, system: System | None = None
               ) -> RunResult:
    """Run every temperature and replica of ``config``, summarise them and fit Arrhenius laws.

    With ``checkpoint`` the run resumes from ``checkpoint.load()`` when that is a blob of this
    kmc version and config (anything else is ignored; an unreadable blob adds a note), and saves
    its state (:class:`RunState`, as plain data with every engine and RNG state) with
    ``checkpoint.save`` whenever ``checkpoint.interval_s`` has elapsed at a safe point: after
    every replica creation, every :data:`SAFE_POINT_HOPS` hops of equilibration or measurement,
    every MSD snapshot and every block. A resumed run gives exactly the result of the
    uninterrupted one (timing keys aside); no random stream is spawned twice, the restored
    engines carry on. ``system``: the :class:`System` of ``config`` if already built (e.g. from
    a structure in memory by :class:`kmc.api.System`)."""
    system = build_system(config) if system is None else system
    net, run = system.network, config.run
    check_hop_budget(run, system.n_ions)
    field_work = ([field_work_over_kT(system.model, T) for T in run.temperatures_K]
                  if np.any(system.model.field != 0.0) else None)
    pre_notes = validity_notes(config, field_work)  # a field far beyond linear response: error
    field_on = bool(np.any(system.model.field != 0.0))
    field_vec = system.model.field if field_on else None
    seeds = replica_seeds(run.seed, len(run.temperatures_K), run.replicas)
    bh = nominal_hops(run, system.n_ions)
    state, why = None, None
    if checkpoint is not None:
        blob = checkpoint.load()
        if blob is not None:
            state, why = decode_checkpoint(blob, config, system)
    resumed = state is not None
    if state is None:
        state = RunState(bar_total=len(run.temperatures_K) * run.replicas * bh)
    restored_hops = state.hops_so_far()
    oc = config.output
    traj_T = None
    if oc is not None and oc.trajectory is not None:
        traj_T = oc.trajectory_temperature_K if oc.trajectory_temperature_K is not None \
            else run.temperatures_K[0]
    safe = _Saver(checkpoint, config, state)
    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=state.bar_total, initial=state.bar_done, unit="hop", unit_scale=True,
                   leave=False, desc="kmc")
    elif progress:  # a log file, CI, a batch job: plain lines, a few seconds apart
        bar = LineProgress(state.bar_total, state.bar_done)

    def tick(h: int) -> None:
        state.bar_done += h
        if bar is not None:
            bar.update(h)

    def grow(h: int) -> None:
        state.bar_total += h
        if bar is not None:
            bar.total += h
            bar.refresh()

    for ti in range(state.t_index, len(run.temperatures_K)):
        T = run.temperatures_K[ti]
        if state.current is None:
            state.current = TemperatureState()
            if traj_T is not None and T == traj_T:
                from kmc.runs.trajectory import TrajectoryRecorder

                state.current.recorder = TrajectoryRecorder(bh,
                                                            config.output.trajectory_frames)
        reps, an, record = measure_temperature(
            system, T, seeds[ti], run, net.dimensionality, net.volume_A3, config.model.charge_e,
            field_vec, tick, grow, state=state.current, safe_point=safe)
        res = {"temperature_K": T}
        res.update(an.summary)
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
        state.results.append(res)
        state.curves.append(_msd_curve(T, an))
        state.all_vals.append(an.values)
        state.engine_hops.append(int(hops_all))
        rec = getattr(state.current, "recorder", None)
        if rec is not None:
            from kmc.runs.trajectory import trajectory_from_recorder

            state.trajectory = trajectory_from_recorder(system, rec, state.current.reps[0].blocked,
                                                        T)
        state.current, state.t_index = None, ti + 1
        safe()
    if bar is not None:
        bar.close()
    info = network_info(system)
    density = system.n_ions / (net.volume_A3 * A3_TO_CM3)
    arr, axes, fits, notes = arrhenius_report(
        list(run.temperatures_K), state.all_vals, basis=run.arrhenius_basis, seed=run.seed,
        density_cm3=density, charge_e=config.model.charge_e)
    notes = [*pre_notes, *notes]
    if why == "unreadable":
        notes = [UNREADABLE_CHECKPOINT_NOTE, *notes]
    elif why == "legacy":
        notes = [LEGACY_CHECKPOINT_NOTE, *notes]
    out = RunResult(config, state.results, state.curves, info, arr, axes, fits, notes,
                    system.formula, system.mobile_per_formula_unit)
    out.trajectory = getattr(state, "trajectory", None)
    out.provenance = run_provenance(config, system)
    out.checkpoint_info = {"resumed": resumed, "restored_hops": restored_hops,
                           "total_hops": int(sum(state.engine_hops)), "saves": safe.saves,
                           "discarded": why}
    return out


def network_info(system: System) -> dict:
    """The ``network`` object of a result: the network summary, the source and the cutoffs used,
    the supercell and the ion count."""
    net, src = system.network, system.source
    info = net.summary()
    info.update(n_sites=net.n_sites, n_ions=system.n_ions, supercell=list(net.supercell),
                volume_A3=net.volume_A3, mobile=net.species)
    if src is not None:
        info.update(source=src.kind, name=src.name, hop_cutoff_A=src.hop_cutoff_A,
                    exclusion_distance_A=src.exclusion_distance_A,
                    interaction_cutoff_A=src.interaction_cutoff_A)
    if net.knockoffs is not None:
        info["knockoff_classes"] = list(net.knockoffs.names)
    blocked = system.blocked_counts
    if blocked:
        info["blocked_per_class"] = blocked
    return info
