"""Run a whole configuration (:func:`run_config`): build the system, then temperatures x replicas
(:mod:`kmc.runs.replicas`), then statistics into a :class:`~kmc.runs.results.RunResult`; with a
checkpoint hook, the run's whole state is saved as plain data at safe points and a killed run
resumes bit-identically (:class:`RunState`, :func:`encode_checkpoint`, :func:`decode_checkpoint`).
"""
from __future__ import annotations

import math
import os
import sys
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

import numpy as np
from tqdm import tqdm

from kmc.analysis.report import arrhenius_report
from kmc.analysis.transport import FrameBuffer, ReplicaSample
from kmc.config import Config, check_hop_budget, validity_notes
from kmc.constants import A3_TO_CM3
from kmc.engine.simulation import Simulation
from kmc.exceptions import ConfigError
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
from kmc.runs.replicas import (
    Passes,
    ReplicaMeasurement,
    TemperatureState,
    field_work_over_kT,
    nominal_hops,
    replica_seeds,
    run_pass,
    temperature_passes,
)
from kmc.runs.results import RunResult, msd_curve
from kmc.runs.system import System, build_system, network_info
from kmc.runs.trajectory import Trajectory, TrajectoryRecorder, trajectory_from_recorder
from kmc.system.network import MEMORY_PER_SITE_B, memory_short_of


class RunCheckpoint(Protocol):
    """Where :func:`run_config` keeps the state of an interrupted run (e.g.
    :class:`kmc.runs.checkpoint.CheckpointDir` handles, or anything with these three members).

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
    """Everything :func:`run_config` needs to continue a run, per temperature (lists indexed
    like ``[run] temperatures_K``): the finished temperatures' results, MSD curves, replica
    values and engine hops (None until finished), and in ``temps`` the
    :class:`TemperatureState` of each temperature in progress (its replicas with their engines
    and RNG states, blocks, convergence round; None before the start and after the end).
    ``t_index`` counts the finished temperatures. Saved as plain data
    (:func:`encode_checkpoint`); every class it may hold is registered in
    :func:`_register_run_state_types`.

    Checkpoints written before temperatures ran concurrently have ``temps`` None, the
    finished temperatures ``0 .. t_index - 1`` and the state of temperature ``t_index`` in
    ``current``; :meth:`upgrade` turns them into this layout."""

    t_index: int = 0
    results: list = field(default_factory=list)
    curves: list = field(default_factory=list)
    all_vals: list = field(default_factory=list)
    engine_hops: list = field(default_factory=list)
    current: TemperatureState | None = None
    bar_done: int = 0
    bar_total: int = 0
    trajectory: "object | None" = None
    temps: list | None = None

    @classmethod
    def fresh(cls, n_temperatures: int, bar_total: int) -> "RunState":
        """The state of a run that has not started."""
        return cls(results=[None] * n_temperatures, curves=[None] * n_temperatures,
                   all_vals=[None] * n_temperatures, engine_hops=[None] * n_temperatures,
                   temps=[None] * n_temperatures, bar_total=bar_total)

    def upgrade(self, n_temperatures: int) -> None:
        """Turn a state of the sequential layout (``temps`` None) into the per-temperature one."""
        if self.temps is not None:
            return
        pad = [None] * (n_temperatures - self.t_index)
        for lst in (self.results, self.curves, self.all_vals, self.engine_hops):
            lst.extend(pad)
        self.temps = [None] * n_temperatures
        if self.current is not None:
            self.temps[self.t_index] = self.current
        self.current = None

    def hops_so_far(self) -> int:
        """Engine hops done (all replicas, equilibration included) up to this state."""
        now = sum(r.sim.total_hops for st in (self.temps or [self.current]) if st is not None
                  for r in st.reps + (st.fresh or []))
        return int(sum(h for h in self.engine_hops if h is not None)) + int(now)


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
    state.upgrade(len(config.run.temperatures_K))
    return state, None


def _plausible(state: RunState, config: Config) -> bool:
    """Cheap structural checks of a decoded state (types and counts the run relies on)."""
    n_t = len(config.run.temperatures_K)
    ints = (state.t_index, state.bar_done, state.bar_total)
    if any(isinstance(v, bool) or not isinstance(v, int) for v in ints):
        return False
    if state.temps is None:  # sequential layout (see RunState)
        if not 0 <= state.t_index <= n_t or len(state.results) != state.t_index:
            return False
        running = [state.current]
    else:
        lists = (state.results, state.curves, state.all_vals, state.engine_hops, state.temps)
        if not all(isinstance(x, list) and len(x) == n_t for x in lists) or state.current is not None:
            return False
        if state.t_index != sum(r is not None for r in state.results):
            return False
        if any(r is not None and t is not None for r, t in zip(state.results, state.temps)):
            return False
        running = state.temps
    def replicas_ok(reps) -> bool:
        return isinstance(reps, list) and len(reps) <= config.run.replicas \
            and all(isinstance(r, ReplicaMeasurement) for r in reps)
    return all(cur is None or (isinstance(cur, TemperatureState) and replicas_ok(cur.reps)
                               and (cur.fresh is None or replicas_ok(cur.fresh))
                               and (cur.pilot is None or isinstance(cur.pilot, dict)))
               for cur in running)


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


def resolve_workers(workers: int | None, run: "Config.run") -> int:
    """Threads that advance replicas: ``workers``, else ``[run] workers``, else every core
    (``os.process_cpu_count``), never more than the replicas of all temperatures."""
    n = workers if workers is not None else run.workers
    if n is None:
        n = (os.process_cpu_count() if hasattr(os, "process_cpu_count") else os.cpu_count()) or 1
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"workers must be a whole number of at least 1, got {n!r}.")
    return max(1, min(n, run.replicas * len(run.temperatures_K)))


def concurrent_temperatures(n_workers: int, run: "Config.run") -> int:
    """Temperatures in progress at once: one with one worker, else enough for every worker to
    have a replica, plus one whose replicas run while another temperature's are being analysed
    or created (the engines of all of them are in memory, so no more)."""
    if n_workers == 1:
        return 1
    return min(len(run.temperatures_K), -(-n_workers // run.replicas) + 1)


def replica_memory_bytes(system: System, run: "Config.run") -> int:
    """Memory one replica holds while it measures: its engine state (the per-site cost of
    :data:`kmc.system.network.MEMORY_PER_SITE_B`) and its frame buffer, ``msd_frames + 1``
    frames of every ion's displacement (3 float64)."""
    return int(MEMORY_PER_SITE_B * system.network.n_sites + (run.msd_frames + 1) * system.n_ions * 24)


def check_replica_memory(system: System, run: "Config.run", n_temperatures: int) -> None:
    """Refuse a run whose replicas in memory at once (``n_temperatures`` x ``replicas``) need
    more than the memory available, before any replica is made.

    Raises
    ------
    ConfigError
        Stating the estimate, the memory available and what to lower.
    """
    n_reps = n_temperatures * run.replicas
    need = n_reps * replica_memory_bytes(system, run)
    have = memory_short_of(need)
    if have is not None:
        raise ConfigError(f"the run keeps {n_reps} replicas in memory at once ({n_temperatures} temperatures x "
                          f"{run.replicas}), each with {run.msd_frames + 1} frames of {system.n_ions} ions: about "
                          f"{need / 1e9:.3g} GB, but only {have / 1e9:.3g} GB are available; lower [run] "
                          f"msd_frames, replicas or --workers, or use a smaller supercell.")


def run_temperatures(passes: Callable[[int], Passes], finish: Callable[..., None],
                     state: RunState, max_active: int, pool: Executor | None,
                     safe_point: Callable[[], None]) -> None:
    """Run the passes (:func:`kmc.runs.replicas.temperature_passes`) of every unfinished
    temperature of ``state``, up to ``max_active`` temperatures at a time (those already in
    progress first, then the others in order), the work of all of them in the same passes on
    ``pool``: while one temperature's replicas are being created or analysed, the others'
    advance. ``finish(ti, reps, analysis, record)`` takes a temperature's results. After every
    pass all work is done and ``safe_point()`` runs. Each temperature's decisions depend on its
    own replicas only, so the result is the same for any pool and any ``max_active``."""
    todo = [ti for ti, st in enumerate(state.temps) if st is not None]
    todo += [ti for ti, (st, r) in enumerate(zip(state.temps, state.results))
             if st is None and r is None]
    active: dict[int, tuple[Passes, list]] = {}
    while todo or active:
        while todo and (len(active) < max_active or state.temps[todo[0]] is not None):
            ti = todo.pop(0)
            gen = passes(ti)
            active[ti] = (gen, next(gen))
        order = sorted(active)
        out = run_pass([w for ti in order for w in active[ti][1]], pool)
        at = 0
        for ti in order:
            gen, work = active[ti]
            mine, at = out[at:at + len(work)], at + len(work)
            try:
                active[ti] = (gen, gen.send(mine))
            except StopIteration as stop:
                del active[ti]
                finish(ti, *stop.value)
        safe_point()


def run_config(config: Config, progress: bool = False, *,
               checkpoint: RunCheckpoint | None = None, system: System | None = None,
               workers: int | None = None) -> RunResult:
    """Run every temperature and replica of ``config``, summarise them and fit Arrhenius laws.

    With ``checkpoint`` the run resumes from ``checkpoint.load()`` when that is a blob of this
    kmc version and config (anything else is ignored; an unreadable blob adds a note), and saves
    its state (:class:`RunState`, as plain data with every engine and RNG state) with
    ``checkpoint.save`` whenever ``checkpoint.interval_s`` has elapsed at a safe point: after
    every replica creation, every :data:`SAFE_POINT_HOPS` hops of equilibration or measurement,
    every MSD snapshot and every block. A resumed run gives exactly the result of the
    uninterrupted one (timing keys aside); no random stream is spawned twice, the restored
    engines carry on. ``system``: the :class:`System` of ``config`` if already built (e.g. from
    a structure in memory by :class:`kmc.api.System`). ``workers``: threads advancing the
    replicas of all temperatures concurrently (:func:`resolve_workers`,
    :func:`run_temperatures`); the result is bit-identical for any number."""
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
    n_t = len(run.temperatures_K)
    if state is None:
        state = RunState.fresh(n_t, bar_total=n_t * run.replicas * bh)
    restored_hops = state.hops_so_far()
    oc = config.output
    traj_T = None
    if oc is not None and oc.trajectory is not None:
        traj_T = oc.trajectory_temperature_K if oc.trajectory_temperature_K is not None \
            else run.temperatures_K[0]
    safe = _Saver(checkpoint, config, state)
    bar = None
    if progress and sys.stderr.isatty():
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

    def passes(ti: int):
        T = run.temperatures_K[ti]
        if state.temps[ti] is None:
            state.temps[ti] = TemperatureState()
            if traj_T is not None and T == traj_T:
                state.temps[ti].recorder = TrajectoryRecorder(bh, config.output.trajectory_frames)
        return temperature_passes(system, T, seeds[ti], run, net.dimensionality, net.volume_A3,
                                  config.model.charge_e, field_vec, tick, grow,
                                  state=state.temps[ti])

    def finish(ti: int, reps: list, an, record: dict) -> None:
        T = run.temperatures_K[ti]
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
        st = state.temps[ti]
        state.results[ti] = res
        state.curves[ti] = msd_curve(T, an)
        state.all_vals[ti] = an.values
        # work done: the replicas of a fresh final round and those that decided it
        state.engine_hops[ti] = int(sum(r.sim.total_hops for r in st.reps + (st.fresh or [])))
        rec = getattr(st, "recorder", None)
        if rec is not None:
            state.trajectory = trajectory_from_recorder(system, rec, st.reps[0].held, T)
        state.temps[ti] = None
        state.t_index += 1

    n_workers = resolve_workers(workers, run)
    check_replica_memory(system, run, concurrent_temperatures(n_workers, run))
    pool = ThreadPoolExecutor(n_workers, thread_name_prefix="kmc-replica") if n_workers > 1 \
        else None
    try:
        run_temperatures(passes, finish, state, concurrent_temperatures(n_workers, run), pool,
                         safe)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if bar is not None:
        bar.close()
    info = network_info(system)
    density = system.n_ions / (net.volume_A3 * A3_TO_CM3)
    arr, axes, fits, notes = arrhenius_report(
        list(run.temperatures_K), state.all_vals, basis=run.arrhenius_basis, seed=run.seed,
        density_cm3=density, charge_e=config.model.charge_e, diffusive=state.results)
    notes = [*pre_notes, *notes]
    if why == "unreadable":
        notes = [UNREADABLE_CHECKPOINT_NOTE, *notes]
    elif why == "legacy":
        notes = [LEGACY_CHECKPOINT_NOTE, *notes]
    out = RunResult(config, state.results, state.curves, info, arr, axes, fits, notes,
                    system.formula, system.mobile_per_formula_unit)
    out.trajectory = getattr(state, "trajectory", None)
    out.provenance = run_provenance(config, system)
    out.provenance["workers"] = n_workers   # execution only: the numbers do not depend on it
    out.checkpoint_info = {"resumed": resumed, "restored_hops": restored_hops,
                           "total_hops": int(sum(state.engine_hops)), "saves": safe.saves,
                           "discarded": why}
    return out
