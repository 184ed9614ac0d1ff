"""One kMC replica at one temperature: network + model + occupancy + seed -> engine runs.

The engine's state lives in numpy arrays owned here (``engine.state``); pickling a
:class:`Simulation` (or :meth:`checkpoint`) captures everything, RNG included, so ``run(N)`` then
``run(M)`` equals ``run(N + M)`` bit for bit across a save and restore.
"""
from __future__ import annotations

import pickle

import numpy as np

from kmc._core._engine import STATUS_NO_EVENTS, Engine
from kmc.exceptions import CheckpointError, ConfigError, NoEventsError
from kmc.model import BLOCKER, EMPTY, ION, KB_EV_K, RateModel


def place_ions(model: RateModel, n_ions: int, blocked: np.ndarray, rng: np.random.Generator
               ) -> np.ndarray:
    """Random occupancy with ``n_ions`` ions on unblocked sites, respecting hard-core exclusions
    (random sequential placement in a random site order)."""
    net = model.network
    occ = np.zeros(net.n_sites, dtype=np.int8)
    occ[blocked] = BLOCKER
    free = np.flatnonzero(~blocked)
    if n_ions > len(free):
        raise ConfigError(f"{n_ions} ions do not fit on {len(free)} free sites; lower the ion "
                          f"count or enlarge the supercell.")
    if len(net.exclusions) == 0:
        occ[rng.choice(free, size=n_ions, replace=False)] = ION
        return occ
    ex_off, ex_nbr, _ = net.csr(net.exclusions)
    excluded = np.zeros(net.n_sites, dtype=bool)
    for s in np.flatnonzero(blocked):
        excluded[ex_nbr[ex_off[s]:ex_off[s + 1]]] = True
    placed = 0
    for s in rng.permutation(free):
        if placed == n_ions:
            break
        if not excluded[s]:
            occ[s] = ION
            excluded[ex_nbr[ex_off[s]:ex_off[s + 1]]] = True
            placed += 1
    if placed < n_ions:
        raise ConfigError(f"only {placed} of {n_ions} ions could be placed without two on "
                          f"excluded neighbour sites; lower the ion count or the exclusion distance.")
    return occ


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
        beta = 1.0 / (KB_EV_K * self.temperature_K)
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
        done, status = self.engine.run(int(n_hops), float(t_stop))
        if status == STATUS_NO_EVENTS:
            raise NoEventsError(
                f"no hop can happen at {self.temperature_K:g} K (every rate is zero or underflows); "
                f"raise the temperature, lower the barriers, or add vacancies.")
        return done

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
