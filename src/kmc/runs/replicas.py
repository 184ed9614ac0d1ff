"""Replicas and their measurement: seeding (:func:`replica_seeds`), equilibration, frames for
the MSD, convergence rounds at one temperature (:func:`measure_temperature`).

Seeding: ``SeedSequence(seed)`` spawns one child per temperature and each of those one child per
replica, so every replica has an independent stream and the result depends only on the config.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Generator
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Callable

import numpy as np

from kmc.analysis.transport import (
    QUANTITIES,
    FrameBuffer,
    MSDAnalysis,
    ReplicaSample,
    analyze_frames,
    mean_err,
)
from kmc.config import Config
from kmc.constants import KB_EV_K
from kmc.engine.model import EMPTY, ION, RateModel
from kmc.engine.simulation import Simulation
from kmc.exceptions import NoEventsError
from kmc.runs.system import System


def replica_seeds(seed: int, n_temperatures: int, n_replicas: int) -> list[list[np.random.SeedSequence]]:
    """Independent seed sequences: one per (temperature, replica)."""
    return [t.spawn(n_replicas) for t in np.random.SeedSequence(seed).spawn(n_temperatures)]


def fresh_seeds(seeds: list[np.random.SeedSequence]) -> list[np.random.SeedSequence]:
    """Seeds of a temperature's fresh final round: the next ``len(seeds)`` children of the
    temperature's seed sequence (what ``spawn(2 * R)`` would have given after the first R), so
    they are independent of every replica seed of the run and the same on every resume."""
    n = len(seeds)
    return [np.random.SeedSequence(s.entropy, spawn_key=(*s.spawn_key[:-1], n + j))
            for j, s in enumerate(seeds)]


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
                 run: "Config.run", *, equilibrate: bool = True,
                 disorder_of: np.random.SeedSequence | None = None) -> None:
        # disorder_of: the dopant placement of that replica seed instead of this one's (a twin)
        placed_by = seed if disorder_of is None else disorder_of
        self.blocked, offset = system.disorder(placed_by)
        #: the blocked sites a dopant atom sits on (the others are empty sites next to one)
        self.held = system.held_sites(placed_by) if system.dopants else self.blocked
        model = system.model if offset is None else replace(system.model,
                                                            site_energy_offset_eV=offset)
        if system.initial_occupancy is not None:  # [occupancy] start_structure
            occ = np.where(system.initial_occupancy, ION, EMPTY).astype(np.int8)
            self.sim = Simulation(model, temperature_K, occupancy=occ, seed=seed)
        else:
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

    def _advance(self, hops: int) -> int:
        sim = self.sim
        if self.run_cfg.check_rates:
            done = 0
            while done < hops and sim.run(1) == 1:
                sim.check_rates()
                done += 1
            return done
        t0 = time.perf_counter()
        done = sim.run(hops)
        self.wall += time.perf_counter() - t0
        return done

    @property
    def equilibrated(self) -> bool:
        return self.eq_done >= self.eq_hops

    def equilibrate(self, safe_point: Callable[[], None] = _no_safe_point) -> None:
        """Finish the equilibration (a no-op once done), in chunks with safe points between."""
        while not self.equilibrated:
            self.equilibrate_step()
            safe_point()

    def equilibrate_step(self) -> tuple[int, bool]:
        """At most :data:`SAFE_POINT_HOPS` hops of equilibration; ``(0, finished)`` (no
        measured hops)."""
        if not self.equilibrated:
            h = min(self.eq_hops - self.eq_done, SAFE_POINT_HOPS)
            self._advance(h)
            self.eq_done += h
        return 0, self.equilibrated

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
        while True:
            done, finished = self.measure_step(t_target_s)
            if progress and done:
                progress(done)
            safe_point()
            if finished:
                return

    def measure_step(self, t_target_s: float) -> tuple[int, bool]:
        """At most :data:`SAFE_POINT_HOPS` hops towards the frame marks (recording each frame
        when the clock reaches its mark, inside the engine); ``(measured hops, finished)``
        where finished means the last frame is at ``t_target_s``. The engine stops exactly at
        a mark and its runs are chunk-invariant, so any sequence of steps gives the same frames
        bit for bit."""
        fb, sim = self.frames, self.sim
        if fb.time_s >= t_target_s * (1.0 - 1e-12):
            return 0, True
        marks = sim.t0 + fb.marks_until(t_target_s)
        done, k, len2, moves = self._run_marks(marks, fb.slots(len(marks)), SAFE_POINT_HOPS)
        fb.commit(k, len2, moves)
        self.unsaved_hops = 0
        return done, fb.time_s >= t_target_s * (1.0 - 1e-12)

    def _run_marks(self, marks: np.ndarray, frames: np.ndarray, hops: int
                   ) -> tuple[int, int, float, int]:
        sim = self.sim
        if self.run_cfg.check_rates:
            # one hop per call, each checked (the calls give the same frames as one call)
            done = k = moves = 0
            len2 = 0.0
            while done < hops and k < len(marks):
                d, dk, l2, mv = sim.run_marks(marks[k:], frames[k:], 1)
                if d:
                    sim.check_rates()
                if dk:
                    len2, moves = l2, mv
                done, k = done + d, k + dk
            return done, k, len2, moves
        t0 = time.perf_counter()
        out = sim.run_marks(marks, frames, hops)
        self.wall += time.perf_counter() - t0
        return out

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


#: one piece of work of a pass: called without arguments, in a pool thread or in turn
Work = Callable[[], Any]
#: a resumable computation in passes: yields the work of each pass, receives its results (in the
#: same order) and returns its value at the end; every yield is a safe point
Passes = Generator[list[Work], list, Any]


def run_pass(work: list[Work], pool: Executor | None = None) -> list:
    """Do every piece of ``work``: concurrently on ``pool`` (threads: the engine and the compiled
    placement release the GIL), else in turn. Returns the results in the order of ``work``."""
    if pool is not None and len(work) > 1:
        return list(pool.map(_call, work))
    return [w() for w in work]


def _call(w: Work) -> Any:
    return w()


def drive(passes: Passes, pool: Executor | None = None,
          safe_point: Callable[[], None] = _no_safe_point) -> Any:
    """Run ``passes`` to its end, one pass at a time (:func:`run_pass`), with ``safe_point()``
    after every pass; returns its value."""
    try:
        work = next(passes)
        while True:
            out = run_pass(work, pool)
            safe_point()
            work = passes.send(out)
    except StopIteration as stop:
        return stop.value


def advance_passes(reps: list[ReplicaMeasurement],
                   step: Callable[[ReplicaMeasurement], tuple[int, bool]],
                   progress: Callable[[int], None] | None = None) -> Passes:
    """Passes that call ``step(rep)`` on every replica until each reports finished, one step per
    unfinished replica per pass; ``progress(measured hops)`` after every pass. Each replica has
    its own random stream, so the result does not depend on how the passes are run."""
    pending = list(reps)
    while pending:
        out = yield [partial(step, r) for r in pending]
        hops = sum(h for h, _ in out)
        if progress and hops:
            progress(hops)
        pending = [r for r, (_, finished) in zip(pending, out) if not finished]


def advance_all(reps: list[ReplicaMeasurement], step: Callable[[ReplicaMeasurement], tuple[int, bool]],
                pool: Executor | None = None, progress: Callable[[int], None] | None = None,
                safe_point: Callable[[], None] = _no_safe_point) -> None:
    """:func:`advance_passes` run to the end by :func:`drive`: every pass ends with all replicas
    idle, where ``progress`` and ``safe_point()`` run in the calling thread; the result is the
    same bit for bit with any pool."""
    drive(advance_passes(reps, step, progress), pool, safe_point)


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
    the first round, the measurement time the current round aims at and the round number; with
    ``fresh_final_round``, the stopping decision (``pilot``) and the fresh replicas (``fresh``).
    """

    # class-level defaults: checkpoints written before the fresh final round existed lack them
    pilot: dict | None = None
    fresh: list | None = None

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
                        safe_point: Callable[[], None] = _no_safe_point,
                        pool: Executor | None = None
                        ) -> tuple[list[ReplicaRun], MSDAnalysis, dict]:
    """All replicas of one temperature, extended in rounds (each doubling the measurement time)
    until converged (see :class:`kmc.config.RunConfig`). Returns the replica runs, the MSD
    analysis and the convergence record. ``grow(hops)`` announces hops added by an extension.

    ``state`` (a :class:`TemperatureState`, possibly restored from a checkpoint) is continued
    where it stands: replicas it already holds are never created again, so their seeds are not
    used (nor spawned) twice. ``safe_point()`` is called whenever ``state`` may be saved. With
    ``pool`` the replicas advance concurrently (same result). This is :func:`temperature_passes`
    run by :func:`drive`."""
    st = state if state is not None else TemperatureState()
    return drive(temperature_passes(system, temperature_K, seeds, run, dim, volume_A3, charge_e,
                                    field_V_per_A, progress, grow, state=st), pool, safe_point)


def temperature_passes(system: System, temperature_K: float, seeds: list, run: "Config.run",
                       dim: int, volume_A3: float, charge_e: float, field_V_per_A,
                       progress: Callable[[int], None] | None = None,
                       grow: Callable[[int], None] | None = None, *, state: TemperatureState
                       ) -> Passes:
    """:func:`measure_temperature` as passes (see :data:`Passes`): replica creation (placement
    included), equilibration and measurement steps, the trajectory and the MSD analysis of each
    round are the work of the passes, so the passes of several temperatures can share one pool;
    the decisions between passes (frame spacing, convergence, extension) are made where the
    passes are resumed. Every yield leaves ``state`` consistent (a safe point), and a generator
    started afresh on a restored ``state`` continues it exactly."""
    st = state
    if len(st.reps) < len(seeds):
        st.reps.extend((yield [partial(ReplicaMeasurement, system, temperature_K, seed, run,
                                       equilibrate=False) for seed in seeds[len(st.reps):]]))
    reps = st.reps
    yield from advance_passes(reps, ReplicaMeasurement.equilibrate_step)
    rec = getattr(st, "recorder", None)
    if rec is not None and not rec.finished and reps[0].frames is None:
        yield [partial(record_trajectory, rec, reps[0].sim)]
    if st.spacing_s is None:
        st.spacing_s = measurement_spacing(reps, run)
        st.t_target_s = st.spacing_s * run.msd_frames
        yield []
    for rep in reps:
        rep.start(st.spacing_s, run.msd_frames)
    limit = run.max_hops_limit
    while True:
        target = st.t_target_s
        yield from advance_passes(reps, lambda rep: rep.measure_step(target), progress)
        an, = yield [partial(analyze_frames, [r.frames for r in reps], dim, volume_A3,
                             temperature_K, charge_e, field_V_per_A, run.time_origins)]
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
    if converged and run.fresh_final_round:
        # the decision stops preferentially where the errors came out small; report replicas
        # that took no part in it, measured for the decided time on the same lag grid
        if st.pilot is None:
            st.pilot = {"pilot_rel_err_D_tracer": rel["D_tracer"],
                        "pilot_rel_err_D_jump": rel["D_jump"],
                        **{f"pilot_{q}_cm2_s": an.summary[f"{q}_cm2_s"] for q in QUANTITIES}}
            st.fresh = []
            if grow:
                grow(len(reps) * int(round(run.hops_per_ion * 2 ** (st.rounds - 1) * reps[0].n)))
            yield []
        more = fresh_seeds(seeds)
        if len(st.fresh) < len(more):
            st.fresh.extend((yield [partial(ReplicaMeasurement, system, temperature_K, seed, run,
                                            equilibrate=False)
                                    for seed in more[len(st.fresh):]]))
        reps = st.fresh
        yield from advance_passes(reps, ReplicaMeasurement.equilibrate_step)
        for rep in reps:
            rep.start(st.t_target_s / run.msd_frames, run.msd_frames)
        target = st.t_target_s
        yield from advance_passes(reps, lambda rep: rep.measure_step(target), progress)
        an, = yield [partial(analyze_frames, [r.frames for r in reps], dim, volume_A3,
                             temperature_K, charge_e, field_V_per_A, run.time_origins)]
        rel = {q: _rel_err(an.values[f"{q}_cm2_s"]) for q in QUANTITIES}
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
    if st.pilot is not None:
        record["final_round"] = "fresh replicas"
        record.update(st.pilot)
    if knock is not None:
        record["knockoff_event_fraction"], record["knockoff_event_fraction_err"] = knock
    return [r.result() for r in reps], an, record



def field_work_over_kT(model: RateModel, temperature_K: float) -> float:
    """Largest ``|q E . dr| / kT`` over the hops: linear response needs it well below 1."""
    work = np.abs(model.charge_e * (model.network.hop_vectors @ model.field))
    return float(work.max() / (KB_EV_K * temperature_K)) if work.size else 0.0
