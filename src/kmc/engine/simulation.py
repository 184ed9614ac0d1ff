"""One kMC replica at one temperature: network + model + occupancy + seed -> engine runs.

The engine's state lives in numpy arrays owned here (``engine.state``); pickling a
:class:`Simulation` (or :meth:`checkpoint`) captures everything, RNG included, so ``run(N)`` then
``run(M)`` equals ``run(N + M)`` bit for bit across a save and restore.
"""
from __future__ import annotations

import pickle

import numpy as np

from kmc.constants import KB_EV_K, beta_per_eV
from kmc.engine._engine import STATUS_NO_EVENTS, STATUS_TIME, Engine
from kmc.engine.model import BLOCKER, EMPTY, ION, RateModel
from kmc.engine.placement import JammedError, place_hard_core
from kmc.exceptions import CheckpointError, ConfigError, NoEventsError

#: the simulated clock (s) never passes this: a system whose rates are so small (nearly
#: underflowing) that it would is stopped with a NoEventsError instead of running into an infinite
#: or NaN time
CLOCK_LIMIT_S = 1e300


def place_ions(model: RateModel, n_ions: int, blocked: np.ndarray, rng: np.random.Generator
               ) -> np.ndarray:
    """Random occupancy with ``n_ions`` ions on unblocked sites, respecting hard-core exclusions:
    random sequential placement, then (if that jams below ``n_ions``) a local search that adds
    ions by rearranging neighbourhoods, which reaches any content below close packing."""
    net = model.network
    occ = np.zeros(net.n_sites, dtype=np.int8)
    occ[blocked] = BLOCKER
    open_sites = np.flatnonzero(~blocked)
    if n_ions > len(open_sites):
        raise ConfigError(f"{n_ions} ions do not fit on {len(open_sites)} free sites; lower the "
                          f"ion count or enlarge the supercell.")
    if len(net.exclusions) == 0:
        occ[rng.choice(open_sites, size=n_ions, replace=False)] = ION
        return occ
    ex_off, ex_nbr, _ = net.csr(net.exclusions)
    try:
        occ[place_hard_core(net.n_sites, (ex_off, ex_nbr), blocked, n_ions, rng)] = ION
    except JammedError as e:
        raise ConfigError(f"only {e.placed} of {n_ions} ions could be placed without two on "
                          f"excluded neighbour sites (of {len(open_sites)} free sites); lower the ion "
                          f"count or the exclusion distance.") from None
    return occ


def _check_engine_arrays(arrays: dict, n_sites: int, n_class: int) -> None:
    """Refuse engine state arrays of the wrong dtype, shape or consistency (the engine indexes
    them without bounds checks, so a bad file must fail here)."""
    n = arrays["ion_site"].shape[0] if isinstance(arrays.get("ion_site"), np.ndarray) else -1
    want = {"occ": (np.int8, (n_sites,)), "ion_at": (np.int32, (n_sites,)),
            "ion_site": (np.int32, (n,)), "disp": (np.float64, (n, 3)),
            "hops": (np.int64, (n,)), "sumsq": (np.float64, (n,)), "clock": (np.float64, (2,)),
            "counters": (np.int64, (1,)), "class_n": (np.int64, (n_class,)),
            "class_t": (np.float64, (n_class,)), "class_tlast": (np.float64, (n_class,))}
    for key, (dtype, shape) in want.items():
        a = arrays.get(key)
        if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape \
                or not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"engine state array {key!r} has the wrong type or shape")
    occ, site, at = arrays["occ"], arrays["ion_site"], arrays["ion_at"]
    if (not np.isin(occ, (EMPTY, ION, BLOCKER)).all() or int(np.sum(occ == ION)) != n
            or (n and (site.min() < 0 or site.max() >= n_sites))
            or not np.array_equal(at[site], np.arange(n, dtype=np.int32))
            or not np.all(occ[site] == ION) or int(np.sum(at >= 0)) != n):
        raise ValueError("engine state arrays are inconsistent (ions vs occupancy)")


class Simulation:
    """A single replica.

    Parameters
    ----------
    model : RateModel
    temperature_K : float
    n_ions : int, optional
        Number of mobile ions placed at random (exclusive with ``occupancy``).
    occupancy : array of int8, optional
        Explicit site states (0 empty, 1 ion, 2 blocker).
    blocked : bool array, optional
        Sites holding immobile blockers (with ``n_ions``).
    seed : int or numpy.random.SeedSequence
        Seeds the placement and, independently, the engine's PCG64 stream.
    """

    def __init__(self, model: RateModel, temperature_K: float, *, n_ions: int | None = None,
                 occupancy: np.ndarray | None = None, blocked: np.ndarray | None = None,
                 seed: int | np.random.SeedSequence = 0) -> None:
        if not (np.isfinite(temperature_K) and temperature_K > 0):
            raise ConfigError(f"temperature must be a positive number of kelvin, got {temperature_K}.")
        net = model.network
        seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        place_seq, engine_seq = seq.spawn(2)
        if occupancy is None:
            if n_ions is None:
                raise ConfigError("give either n_ions or occupancy.")
            blocked = np.zeros(net.n_sites, bool) if blocked is None else np.asarray(blocked, bool)
            occ = place_ions(model, int(n_ions), blocked, np.random.default_rng(place_seq))
        else:
            occ = np.ascontiguousarray(occupancy, dtype=np.int8)
            if occ.shape != (net.n_sites,) or not np.isin(occ, (EMPTY, ION, BLOCKER)).all():
                raise ConfigError("occupancy needs one state (0, 1 or 2) per site.")
        self.model = model
        self.temperature_K = float(temperature_K)
        ions = np.flatnonzero(occ == ION).astype(np.int32)
        n = len(ions)
        ion_at = np.full(net.n_sites, -1, dtype=np.int32)
        ion_at[ions] = np.arange(n, dtype=np.int32)
        n_class = len(net.class_names)
        state = {
            "occ": occ, "ion_at": ion_at, "ion_site": ions.copy(),
            "disp": np.zeros((n, 3)), "hops": np.zeros(n, np.int64), "sumsq": np.zeros(n),
            "clock": np.zeros(2), "counters": np.zeros(1, np.int64),
            "class_n": np.bincount(net.site_class[ions], minlength=n_class).astype(np.int64),
            "class_t": np.zeros(n_class), "class_tlast": np.zeros(n_class),
        }
        spec, static = model.engine_spec(occ, self.temperature_K)
        beta = beta_per_eV(self.temperature_K)
        self.engine = Engine(spec, state, np.random.PCG64(engine_seq), beta, static)
        self.t0 = 0.0

    # ------------------------------------------------------------------ running
    def run(self, n_hops: int, t_stop: float = np.inf) -> int:
        """Perform ``n_hops`` hops (fewer if the clock reaches ``t_stop``); returns hops done.

        Raises
        ------
        NoEventsError
            When no hop has a non-zero rate (frozen system).
        """
        t_stop = float(t_stop)
        # (a finite limit instead of inf changes nothing below it: the engine compares clock + dt
        # with the limit only to stop)
        done, status = self.engine.run(int(n_hops), min(t_stop, CLOCK_LIMIT_S))
        if status == STATUS_NO_EVENTS:
            raise NoEventsError(self.frozen_reason())
        if status == STATUS_TIME and t_stop > CLOCK_LIMIT_S:
            raise NoEventsError(
                f"no useful hop can happen at {self.temperature_K:g} K: the total hop rate is only "
                f"{self.engine.total_rate:.3g} Hz, so the simulated clock would pass "
                f"{CLOCK_LIMIT_S:g} s; raise the temperature or lower the barriers.")
        return done

    def run_marks(self, marks_s: np.ndarray, frames: np.ndarray, max_hops: int
                  ) -> tuple[int, int, float, int]:
        """Run through the clock times ``marks_s`` (increasing, absolute) in one engine call,
        writing the ion displacements (Å) at each mark reached into ``frames[k]``; at most
        ``max_hops`` hops.  The same frames and state as :meth:`run` to each mark in turn, bit
        for bit, without a return to Python per frame.

        Returns
        -------
        hops_done, marks_reached, hop_len2_A2, ion_moves
            The last two are the sums over ions of squared hop lengths (Å²) and of moves at the
            last mark reached (0 when none was).

        Raises
        ------
        NoEventsError
            When no hop has a non-zero rate (frozen system).
        """
        marks = np.ascontiguousarray(marks_s, dtype=np.float64)
        # a mark behind the clock would set the clock back (the engine stops "at" it)
        if len(marks) and not (marks[0] >= self.engine.state["clock"][0]
                               and np.all(marks[1:] > marks[:-1]) and marks[-1] < CLOCK_LIMIT_S):
            raise ValueError(f"frame marks must increase, from the current clock on, and stay "
                             f"below {CLOCK_LIMIT_S:g} s")
        done, k, status, len2, moves = self.engine.run_marks(marks, frames, int(max_hops))
        if status == STATUS_NO_EVENTS:
            raise NoEventsError(self.frozen_reason())
        return done, k, len2, moves

    def frozen_reason(self) -> str:
        """One sentence on why no hop can happen in the current state, and what to change:
        either no ion has a site it may move to (full lattice, blockers, exclusions), or every
        permitted hop's rate underflows to zero (temperature too low for the barriers)."""
        occ = self.occupancy
        model, T = self.model, self.temperature_K
        allowed = model.allowed(occ)
        if not allowed.any():
            empty = int(np.sum(occ == EMPTY))
            ions = f"{self.n_ions} ion" + ("s" if self.n_ions != 1 else "")
            if empty == 0:
                by = f" and {int(np.sum(occ == BLOCKER))} blockers" if np.any(occ == BLOCKER) \
                    else ""
                return (f"no hop can happen: all {len(occ)} sites are occupied (by {ions}{by}); "
                        f"add vacancies (fewer ions).")
            return (f"no hop can happen: no ion ({ions} in all) has a free neighbour site it may "
                    f"hop to (the {empty} empty sites are out of reach or closed by hard-core "
                    f"exclusions); add vacancies (fewer ions) or lower the exclusion distance.")
        low = float(model.barriers(occ)[allowed].min())
        return (f"no hop can happen at {T:g} K: the rate of every possible hop underflows to zero "
                f"(the lowest barrier, {low:.4g} eV, is {low / (KB_EV_K * T):.4g} kT); raise the "
                f"temperature or lower the barriers.")

    def reset_measurement(self) -> None:
        """Start a new measurement window: zero displacements, hop counts and occupation integrals."""
        st = self.engine.state
        st["disp"][:] = 0.0
        st["hops"][:] = 0
        st["sumsq"][:] = 0.0
        st["class_t"][:] = 0.0
        st["class_tlast"][:] = st["clock"][0]
        self.t0 = float(st["clock"][0])

    # ------------------------------------------------------------------ state
    @property
    def time(self) -> float:
        """Time since the start of the measurement window (s)."""
        return float(self.engine.state["clock"][0]) - self.t0

    @property
    def n_ions(self) -> int:
        return len(self.engine.state["ion_site"])

    @property
    def occupancy(self) -> np.ndarray:
        return self.engine.state["occ"]

    @property
    def displacements(self) -> np.ndarray:
        """Unwrapped displacement of every ion in the measurement window (Å), shape (n_ions, 3)."""
        return self.engine.state["disp"]

    @property
    def total_hops(self) -> int:
        return int(self.engine.state["counters"][0])

    def class_occupation(self) -> np.ndarray:
        """Time-averaged number of ions in each site class over the measurement window."""
        self.engine.flush_class_time()
        t = self.time
        st = self.engine.state
        return st["class_t"] / t if t > 0 else st["class_n"].astype(float)

    def check_rates(self, rtol: float = 1e-12) -> None:
        """Assert the engine's incremental rates equal a full numpy recompute (debug mode)."""
        ref = self.model.reference_rates(self.engine.state["occ"], self.temperature_K)
        np.testing.assert_allclose(self.engine.rates, ref, rtol=rtol, atol=0.0)
        net = self.model.network
        src = np.repeat(np.arange(net.n_sites), np.diff(net.events()["out_off"]))
        totals = np.bincount(src, weights=ref, minlength=self.model.network.n_sites)
        np.testing.assert_allclose(self.engine.site_totals, totals, rtol=1e-12, atol=1e-300)

    # ------------------------------------------------------------------ checkpoints
    def engine_state(self) -> dict:
        """The dynamic state as plain data: ``temperature_K``, ``t0`` (measurement origin),
        ``arrays`` (the engine's state arrays, live: copy them to keep a snapshot) and
        ``bit_generator`` (the engine's RNG). :meth:`from_engine_state` inverts it."""
        return {"temperature_K": self.temperature_K, "t0": self.t0,
                "arrays": dict(self.engine.state), "bit_generator": self.engine.bit_generator}

    @classmethod
    def from_engine_state(cls, model: RateModel, state: dict) -> "Simulation":
        """A simulation of ``model`` continuing from :meth:`engine_state` (e.g. read from a
        plain-data checkpoint): the static engine arrays are rebuilt from the model (blockers
        never move, so they equal the original ones), the derived ones from the occupancy, so
        the run continues bit for bit.

        Raises
        ------
        ValueError, KeyError
            When the arrays do not fit the model's network.
        """
        arrays = state["arrays"]
        if not isinstance(arrays, dict) or not isinstance(state["bit_generator"],
                                                          np.random.BitGenerator):
            raise ValueError("engine state needs an array dict and a bit generator")
        sim = cls.__new__(cls)
        sim.model = model
        sim.temperature_K = float(state["temperature_K"])
        if not (np.isfinite(sim.temperature_K) and sim.temperature_K > 0):
            raise ValueError("bad temperature in the engine state")
        _check_engine_arrays(arrays, model.network.n_sites, len(model.network.class_names))
        occ = arrays["occ"]
        spec, static = model.engine_spec(occ, sim.temperature_K)
        sim.engine = Engine(spec, arrays, state["bit_generator"],
                            beta_per_eV(sim.temperature_K), static)
        sim.t0 = float(state["t0"])
        return sim

    def checkpoint(self) -> bytes:
        """Serialise the full state (engine, RNG, measurement origin)."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def restore(blob: bytes) -> "Simulation":
        """Inverse of :meth:`checkpoint`."""
        try:
            sim = pickle.loads(blob)
        except Exception as exc:
            raise CheckpointError("the checkpoint is truncated or corrupt; delete it and rerun "
                                  "from the start.") from exc
        if not isinstance(sim, Simulation):
            raise CheckpointError("the file is not a kmc checkpoint; point to a checkpoint written "
                                  "by kmc.")
        return sim
