"""Transport coefficients from ion displacements, each with a standard error over replicas.

The estimator of ``kmc run`` is :func:`analyze_frames`: per replica, unwrapped displacements at
frames equally spaced in simulated time (:class:`FrameBuffer`); tracer and collective MSD (and
per axis) on a log-spaced lag grid over all overlapping time origins (FFT); D = slope / (2 d)
of a weighted straight-line fit inside a window in the diffusive regime (local exponent
d ln MSD / d ln t near 1, MSD above a few squared hop lengths); errors over the replicas, which
are the independent samples. See docs/transport_analysis.md.

Conventions (d = dimensionality of the conducting network, N ions): tracer MSD
``<|r_i(t0 + t) - r_i(t0)|^2>``; collective MSD ``<|sum_i dr_i|^2> / N``; Haven ratio
``D*/D_J``; correlation factor ``f = D* / D_unc`` with ``D_unc = sum_hops |hop|^2 / (2 d N t)``;
Nernst-Einstein ``sigma = (N/V) q^2 D_J / (kB T)``. Per-axis values use d = 1 per axis.

Applied field: with ``field_V_per_A`` non-zero the ions drift. The drift velocity gives a second
route to conductivity, ``sigma_field = q (N/V) <v . E_hat> / |E|`` with ``v = sum_i dr_i / (N t)``
per replica. For the MSDs the mean drift (pooled over the replicas) is subtracted from the frames
and the small bias of estimating it removed exactly for independent increments (collective MSD
divided by ``1 - t / (R T)``, tracer MSD raised by ``MSD_J(t) t / (N R T)``), so in linear response
they equal the zero-field values to order E^2.

:class:`ReplicaSample`, :func:`block_sums` and :func:`replica_values` are the
single-window (block) estimates ``sum_b sum_i |dr_ib|^2 / (2 d N sum_b t_b)``: right only when
every block is already diffusive. Neither ``kmc run`` nor the tutorials use them (lesson 5 shows
why short blocks mislead from the MSD curve itself); they remain for the exact-formula tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import next_fast_len

from kmc.constants import A2_TO_CM2, A3_TO_CM3, A_TO_CM, E_CHARGE_C, KB_J_K
from kmc.engine.simulation import Simulation

AXES = ("xx", "yy", "zz")
UNIT_SUFFIXES = ("_cm2_s", "_S_cm", "_cm_s")


@dataclass(frozen=True)
class ReplicaSample:
    """Raw sums of one replica's measurement, one entry per block (time origin)."""

    n_ions: int
    block_time_s: np.ndarray       # (K,) duration of each block, s
    block_r2_axis: np.ndarray      # (K, 3) sum_i dr_ia^2 per block, Å^2
    block_collective: np.ndarray   # (K, 3) sum_i dr_ia per block, Å
    block_hop_len2: np.ndarray     # (K,) sum over hops of |hop|^2 per block, Å^2
    block_hops: np.ndarray         # (K,) hops per block
    class_occupation: np.ndarray   # time-averaged ions per site class (over all blocks)

    @classmethod
    def from_simulation(cls, sim: Simulation) -> "ReplicaSample":
        """One block: the simulation's current measurement window."""
        d = sim.displacements
        st = sim.engine.state
        return cls(sim.n_ions, np.array([sim.time]), np.einsum("ia,ia->a", d, d)[None, :],
                   d.sum(axis=0)[None, :], np.array([float(st["sumsq"].sum())]),
                   np.array([int(st["hops"].sum()) if sim.n_ions else 0], np.int64),
                   sim.class_occupation())

    @classmethod
    def concat(cls, samples: list["ReplicaSample"]) -> "ReplicaSample":
        """Consecutive blocks of one replica joined into one sample."""
        if not samples:
            raise ValueError("concat needs at least one ReplicaSample.")
        t = np.concatenate([s.block_time_s for s in samples])
        w = np.array([s.time_s for s in samples])
        occ = np.array([s.class_occupation for s in samples])
        occ = (w @ occ) / w.sum() if w.sum() > 0 else occ.mean(axis=0)
        return cls(samples[0].n_ions, t, np.concatenate([s.block_r2_axis for s in samples]),
                   np.concatenate([s.block_collective for s in samples]),
                   np.concatenate([s.block_hop_len2 for s in samples]),
                   np.concatenate([s.block_hops for s in samples]), occ)

    @property
    def n_blocks(self) -> int:
        return len(self.block_time_s)

    @property
    def time_s(self) -> float:
        return float(self.block_time_s.sum())

    @property
    def sum_r2_axis(self) -> np.ndarray:
        return self.block_r2_axis.sum(axis=0)

    @property
    def collective_axis(self) -> np.ndarray:
        """Net collective displacement over all blocks (Å)."""
        return self.block_collective.sum(axis=0)

    @property
    def sum_hop_len2(self) -> float:
        return float(self.block_hop_len2.sum())

    @property
    def hops(self) -> int:
        return int(self.block_hops.sum())


def mean_err(x: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the mean over independent replicas (NaN error for one)."""
    x = np.asarray(x, float)
    if len(x) < 2:
        return float(x.mean()), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x)))


def block_sums(samples: list[ReplicaSample], field_V_per_A=None
               ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-block tracer and collective squared-displacement sums per axis, ``(K, 3)`` arrays
    for each replica, Å^2.

    Without a field these are the raw sums. With a field the mean drift is removed: the per-ion
    drift velocity ``v`` is pooled over all blocks of all replicas, ``xi_b = C_b - N v t_b`` and
    ``sum_i |dr_ib - v t_b|^2`` are formed, and the bias of estimating ``v`` is corrected exactly
    for independent block increments with ``E|xi_b|^2 = c t_b`` (``T = sum_b t_b``):
    ``E sum_b |xi_hat_b|^2 = c T (1 - sum t_b^2 / T^2)`` and the tracer sum falls short by
    ``c sum t_b^2 / (N T)``.
    """
    field = np.zeros(3) if field_V_per_A is None else np.asarray(field_V_per_A, float)
    if not np.any(field != 0.0):
        return ([s.block_r2_axis.copy() for s in samples],
                [s.block_collective ** 2 for s in samples])
    n = samples[0].n_ions
    if any(s.n_ions != n for s in samples):
        raise ValueError("all replicas of a temperature must have the same number of ions.")
    t_all = np.concatenate([s.block_time_s for s in samples])
    T = t_all.sum()
    sum_t2 = float(np.sum(t_all ** 2))
    v = np.sum([s.collective_axis for s in samples], axis=0) / (n * T)  # per ion, Å/s
    shrink = 1.0 - sum_t2 / T ** 2
    r2, col2 = [], []
    for s in samples:
        tb = s.block_time_s[:, None]
        col2.append((s.block_collective - n * v * tb) ** 2)
        r2.append(s.block_r2_axis - 2.0 * tb * v * s.block_collective + n * tb ** 2 * v ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        col2 = [c / shrink if shrink > 1e-12 else np.full_like(c, np.nan) for c in col2]
        c_hat = np.sum([c.sum(axis=0) for c in col2], axis=0) / T  # Å^2/s per axis
        r2 = [r + (s.block_time_s[:, None] / T) * c_hat * sum_t2 / (n * T)
              for r, s in zip(r2, samples)]
    return r2, col2


def replica_values(samples: list[ReplicaSample], dim: int, volume_A3: float,
                   temperature_K: float, charge_e: float = 1.0,
                   field_V_per_A=None) -> dict[str, np.ndarray]:
    """Per-replica transport values (one entry per replica) in output units.

    With a non-zero ``field_V_per_A`` the mean drift is removed from D*, D_J, f and sigma (see
    :func:`block_sums`) and ``drift_velocity_cm_s`` (per ion, along the field) and
    ``sigma_field_S_cm`` are added.
    """
    field = np.zeros(3) if field_V_per_A is None else np.asarray(field_V_per_A, float)
    drifting = bool(np.any(field != 0.0))
    t = np.array([s.time_s for s in samples])
    n = np.array([s.n_ions for s in samples], float)
    hop2 = np.array([s.sum_hop_len2 for s in samples])
    r2_b, col2_b = block_sums(samples, field)
    r2 = np.array([b.sum(axis=0) for b in r2_b])
    col2 = np.array([b.sum(axis=0) for b in col2_b])
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = A2_TO_CM2 / (2.0 * n * t)
        out = {
            "D_tracer_cm2_s": r2.sum(axis=1) * scale / dim,
            "D_jump_cm2_s": col2.sum(axis=1) * scale / dim,
            "correlation_factor": r2.sum(axis=1) / hop2,
        }
        for k, ax in enumerate(AXES):
            out[f"D_tracer_{ax}_cm2_s"] = r2[:, k] * scale
            out[f"D_jump_{ax}_cm2_s"] = col2[:, k] * scale
        density = n / (volume_A3 * A3_TO_CM3)
        out["sigma_S_cm"] = density * (charge_e * E_CHARGE_C) ** 2 * out["D_jump_cm2_s"] / (
            KB_J_K * temperature_K)
        if drifting:
            e_abs = float(np.linalg.norm(field))
            col = np.array([s.collective_axis for s in samples])
            v_along = col @ (field / e_abs) / (n * t) * A_TO_CM  # cm/s per ion
            out["drift_velocity_cm_s"] = v_along
            # q n v / E with E in V/cm (1 V/Å = 1e8 V/cm)
            out["sigma_field_S_cm"] = charge_e * E_CHARGE_C * density * v_along / (e_abs / A_TO_CM)
    return out


def err_key(key: str) -> str:
    """Name of the standard-error key of ``key``: the unit suffix stays last
    (``D_tracer_cm2_s`` -> ``D_tracer_err_cm2_s``, ``haven_ratio`` -> ``haven_ratio_err``)."""
    for suffix in UNIT_SUFFIXES:
        if key.endswith(suffix):
            return f"{key[:-len(suffix)]}_err{suffix}"
    return f"{key}_err"


# ============================================================================ MSD estimator
#: points of the log-spaced lag grid on which MSD curves are computed, exported and fitted
LAG_POINTS = 48
#: the fit window must have a local exponent d ln MSD / d ln t within this of 1 (plus twice its
#: replica standard error, at most another EXPONENT_TOL); 0.1 admits the slow approach of a
#: caged MSD to its asymptote only once its intercept is below ~10 % of the MSD
EXPONENT_TOL = 0.1
#: the fit window starts where the MSD per ion is at least this many mean squared hop lengths
#: ("a few hops": before that, cage rattling and back-and-forth hops dominate)
MSD_MIN_HOPS = 4.0
#: the fit window ends at measurement / max(MIN_ORIGINS, time_origins): at least this many
#: independent (non-overlapping) time origins at the longest fitted lag
MIN_ORIGINS = 4
#: the longest fitted lag is never below this many frame spacings
MIN_MAX_LAG_FRAMES = 8
QUANTITIES = ("D_tracer", "D_jump")
#: basis name -> the MSD whose ``diffusive`` flag decides whether a temperature enters its fit
#: (sigma_T is Nernst-Einstein from D_J; the field route is a drift velocity, not an MSD slope)
BASIS_MSD = {"D_tracer": "D_tracer", "D_jump": "D_jump", "sigma_T": "D_jump",
             "sigma_field_T": None,
             "sigma": "D_jump"}  # "sigma": the campaign basis name of sigma_T
#: least-squares weights t^FIT_WEIGHT_POWER over the fit window (see analyze_frames)
FIT_WEIGHT_POWER = -3.0


def diffusive_subset(basis: str, temperatures: list[float], diffusive: list[dict] | None
                     ) -> tuple[list[int], list[float]]:
    """Indices of the temperatures the ``basis`` fit may use (its MSD in the diffusive regime)
    and the temperatures left out. ``diffusive`` holds per temperature the ``diffusive_<q>``
    flags of a result row; None, or a row without the flag, keeps every temperature."""
    q = "D_tracer" if basis.startswith("D_tracer") else BASIS_MSD.get(basis)
    if diffusive is None or q is None:
        return list(range(len(temperatures))), []
    early = [d.get(f"diffusive_{q}", True) is False for d in diffusive]
    return ([i for i, e in enumerate(early) if not e],
            [float(t) for t, e in zip(temperatures, early) if e])


@dataclass
class FrameBuffer:
    """Unwrapped ion displacements of one replica at frames equally spaced in simulated time.

    Frame ``j`` is the state at time ``j * spacing_s`` after the start of the measurement (the
    state after the last hop before that mark). The buffer holds at most ``capacity + 1``
    frames; when an extended run needs more, every other frame is dropped and the spacing
    doubled (:meth:`make_room`), so memory stays bounded and the frames stay equally spaced.
    Plain data (numbers and numpy arrays) so that checkpoints can serialise it.
    """

    capacity: int
    spacing_s: float
    disp: np.ndarray              # (capacity + 1, n_ions, 3), Å; rows [:n_frames] are used
    n_frames: int = 0
    hop_len2_A2: float = 0.0      # sum over ion moves of |hop|^2 up to the last frame, Å^2
    ion_moves: int = 0            # ion moves up to the last frame

    @classmethod
    def empty(cls, capacity: int, n_ions: int, spacing_s: float) -> "FrameBuffer":
        """A buffer of ``capacity`` intervals for ``n_ions`` ions, frames ``spacing_s`` apart."""
        if capacity < 2 or capacity % 2:
            raise ValueError("the frame capacity must be an even number >= 2.")
        return cls(int(capacity), float(spacing_s), np.zeros((capacity + 1, n_ions, 3)))

    @property
    def time_s(self) -> float:
        """Time of the last frame since the start of the measurement (s)."""
        return max(self.n_frames - 1, 0) * self.spacing_s

    def make_room(self) -> None:
        """Keep every other frame and double the spacing when the buffer is full."""
        if self.n_frames == self.capacity + 1:
            half = self.capacity // 2
            self.disp[:half + 1] = self.disp[0::2]
            self.n_frames = half + 1
            self.spacing_s *= 2.0

    def append(self, disp: np.ndarray, hop_len2_A2: float, ion_moves: int) -> None:
        """Record the frame at the next mark (the first of :meth:`marks_until`)."""
        self.make_room()
        self.disp[self.n_frames] = disp
        self.n_frames += 1
        self.hop_len2_A2 = float(hop_len2_A2)
        self.ion_moves = int(ion_moves)

    def marks_until(self, t_target_s: float) -> np.ndarray:
        """Times (since the start, s) of the next frames, up to the first one at
        ``t_target_s`` (to 1e-12 relative) and at most as many as fit before the buffer must be
        decimated (after making room): the marks one engine call can record
        (:meth:`slots`, :meth:`commit`)."""
        self.make_room()
        j = np.arange(self.n_frames, self.capacity + 1)
        t = j * self.spacing_s
        reached = np.flatnonzero(t >= t_target_s * (1.0 - 1e-12))
        return t[:reached[0] + 1] if len(reached) else t

    def slots(self, k: int) -> np.ndarray:
        """The ``k`` rows the next frames go into (a view, for the engine to write)."""
        return self.disp[self.n_frames:self.n_frames + k]

    def commit(self, k: int, hop_len2_A2: float, ion_moves: int) -> None:
        """Count ``k`` frames written into :meth:`slots`; the sums are those at the last."""
        if k:
            self.n_frames += k
            self.hop_len2_A2 = float(hop_len2_A2)
            self.ion_moves = int(ion_moves)

    @property
    def frames(self) -> np.ndarray:
        """The recorded frames, ``(n_frames, n_ions, 3)`` (a view)."""
        return self.disp[:self.n_frames]


def lag_grid(n_frames: int, points: int = LAG_POINTS) -> np.ndarray:
    """Log-spaced integer lags (in frame spacings) from 1 to ``n_frames - 1``."""
    if n_frames < 2:
        return np.zeros(0, np.int64)
    return np.unique(np.rint(np.geomspace(1, n_frames - 1, points)).astype(np.int64))


def _sq_increments_all_lags(x: np.ndarray) -> np.ndarray:
    """``out[m] = sum_k mean_j (x[j + m, k] - x[j, k])^2`` for every lag m of the series
    ``x`` (n_frames, n_series), averaged over all n_frames - m time origins, by FFT
    (Wiener-Khinchin; the same algorithm as pymatgen-analysis-diffusion and kinisi)."""
    n = x.shape[0]
    x = x - x.mean(axis=0)  # the MSD is shift invariant; centring keeps the FFT precise
    # any zero padding to >= 2n - 1 gives the exact (non-circular) correlation; a 5-smooth
    # length keeps the FFT fast (2n = 514 for the default 256 frame intervals has the prime
    # factor 257, which made it ~11x slower than 540)
    m_fft = next_fast_len(2 * n - 1, real=True)
    f = np.fft.rfft(x, n=m_fft, axis=0)
    s2 = np.fft.irfft(f.real ** 2 + f.imag ** 2, n=m_fft, axis=0)[:n].sum(axis=1)
    d = np.einsum("jk,jk->j", x, x)
    cs = np.concatenate([[0.0], np.cumsum(d)])
    m = np.arange(n)
    s1 = (cs[-1] - cs[m] + cs[n - m])
    return (s1 - 2.0 * s2) / (n - m)


def replica_msd(frames: np.ndarray, lags: np.ndarray, drift_per_frame: np.ndarray | None = None,
                chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Tracer and collective MSD per axis of one replica on ``lags`` (frame spacings).

    Parameters
    ----------
    frames : (K, N, 3) array
        Unwrapped displacements at equally spaced frames, Å.
    lags : int array
        Lags in frame spacings, 1 <= lag < K.
    drift_per_frame : (3,) array, optional
        Per-ion drift per frame spacing to subtract (applied field).

    Returns
    -------
    tracer, collective : (len(lags), 3) arrays
        ``<(r_ia(t0 + t) - r_ia(t0))^2>`` over ions and all time origins, and
        ``<(sum_i dr_ia)^2> / N`` over all time origins, Å^2.
    """
    k_frames, n, _ = frames.shape
    if drift_per_frame is not None:
        frames = frames - np.arange(k_frames)[:, None, None] * np.asarray(drift_per_frame)
    tracer = np.zeros((len(lags), 3))
    for a in range(3):
        acc = np.zeros(k_frames)
        for lo in range(0, n, chunk):
            acc += _sq_increments_all_lags(frames[:, lo:lo + chunk, a])
        tracer[:, a] = acc[lags] / max(n, 1)
    col = frames.sum(axis=1)
    collective = np.stack([_sq_increments_all_lags(col[:, a:a + 1])[lags] for a in range(3)],
                          axis=1) / max(n, 1)
    return tracer, collective


def _ols_slope(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Weighted least-squares slope (with intercept) of every row of ``y`` against ``x``."""
    w = np.ones_like(x) if w is None else w / w.sum()
    w = w / w.sum()
    xc = x - w @ x
    return (y - (y @ w)[..., None]) @ (w * xc) / float(xc @ (w * xc))


def fit_window(t: np.ndarray, msd_mean: np.ndarray, max_lag_index: int, msd_min: float
               ) -> tuple[int, int, bool]:
    """Fit window ``[start, end]`` (indices into the lag grid) of a replica-mean MSD curve.

    The window starts at the first lag whose MSD is at least ``msd_min`` and whose local exponent
    ``d ln MSD / d ln t`` is within :data:`EXPONENT_TOL` of 1, and ends at ``max_lag_index``; it
    needs at least 3 points. Returns ``(start, end, found)``; without such a lag the window is
    the upper quarter of the lags (``found`` False, the estimate is then not diffusive).
    """
    end = int(max_lag_index)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.gradient(np.log(msd_mean), np.log(t)) if len(t) > 1 else np.full(len(t), np.nan)
    ok = (msd_mean >= msd_min) & (np.abs(alpha - 1.0) <= EXPONENT_TOL)
    ok[end - 1:] = False  # at least 3 points
    idx = np.flatnonzero(ok[:end + 1])
    if idx.size:
        return int(idx[0]), end, True
    start = int(np.searchsorted(t, t[end] / 4.0))
    return min(start, max(end - 2, 0)), end, False


def _se(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Standard error of the mean over independent replicas (NaN for one replica)."""
    x = np.asarray(x, float)
    r = x.shape[axis]
    if r < 2:
        return np.full(np.delete(x.shape, axis), np.nan) if x.ndim > 1 else np.float64(np.nan)
    return x.std(axis=axis, ddof=1) / np.sqrt(r)


def jackknife_ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Ratio of replica means ``mean(num) / mean(den)`` and its leave-one-replica-out jackknife
    standard error (NaN with one replica or a non-positive denominator)."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    r = len(num)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(num.mean() / den.mean()) if den.mean() > 0 else float("nan")
        if r < 2 or not np.isfinite(ratio):
            return ratio, float("nan")
        loo = (num.sum() - num) / (den.sum() - den)
    return ratio, float(np.sqrt((r - 1) / r * np.sum((loo - loo.mean()) ** 2)))


@dataclass
class MSDAnalysis:
    """Everything the estimator derives from the frames of one temperature's replicas.

    ``summary`` holds the result.json values, ``values`` the per-replica values (Arrhenius fits,
    convergence), ``curve`` the replica-mean MSD curves with their fit windows.
    """

    summary: dict
    values: dict
    curve: dict


def analyze_frames(buffers: list[FrameBuffer], dim: int, volume_A3: float, temperature_K: float,
                   charge_e: float = 1.0, field_V_per_A=None, time_origins: int = 1
                   ) -> MSDAnalysis:
    """D*, D_J, f, H_R and sigma of one temperature from the slopes of the MSD in the diffusive
    regime, with standard errors over the replicas.

    Parameters
    ----------
    buffers : list of FrameBuffer
        One per replica, all with the same frame times.
    dim : int
        Dimensionality of the conducting network (D = slope / (2 dim); per axis slope / 2).
    volume_A3, temperature_K, charge_e : float
        Supercell volume, temperature and ion charge for Nernst-Einstein.
    field_V_per_A : (3,) array, optional
        Applied field: the mean drift (pooled over the replicas) is removed from the frames and
        the bias of estimating it corrected (see the module docstring); the field route
        ``sigma_field_S_cm`` is added.
    time_origins : int
        The fit window ends at ``T / max(MIN_ORIGINS, time_origins)`` (T the measurement).

    Returns
    -------
    MSDAnalysis
    """
    n_rep = len(buffers)
    k_frames = buffers[0].n_frames
    if any(b.n_frames != k_frames or b.spacing_s != buffers[0].spacing_s for b in buffers):
        raise ValueError("all replicas of a temperature must have the same frame times.")
    if k_frames < 3:
        raise ValueError("the MSD estimator needs at least 3 frames per replica.")
    n = buffers[0].disp.shape[1]
    dt = buffers[0].spacing_s
    T_meas = (k_frames - 1) * dt
    lags = lag_grid(k_frames)
    t = lags * dt
    field = np.zeros(3) if field_V_per_A is None else np.asarray(field_V_per_A, float)
    drifting = bool(np.any(field != 0.0))
    net_col = np.array([b.frames[-1].sum(axis=0) for b in buffers])  # (R, 3), Å
    v = net_col.sum(axis=0) / (n * n_rep * T_meas) if drifting and n else np.zeros(3)
    tr = np.empty((n_rep, len(lags), 3))
    co = np.empty((n_rep, len(lags), 3))
    for r, b in enumerate(buffers):
        tr[r], co[r] = replica_msd(b.frames, lags, v * dt if drifting else None)
    if drifting:
        # E|dX - v_hat tau|^2 = c tau (1 - tau / (R T)) for independent increments; the tracer
        # sum falls short by c tau^2 / (N R T)
        shrink = 1.0 - t / (n_rep * T_meas)
        co = co / shrink[None, :, None]
        tr = tr + co * (t / (n_rep * T_meas))[None, :, None] / max(n, 1)
    hop_len2 = np.array([b.hop_len2_A2 for b in buffers])
    moves = np.array([b.ion_moves for b in buffers])
    mean_hop2 = float(hop_len2.sum() / moves.sum()) if moves.sum() else 0.0
    msd_min = MSD_MIN_HOPS * mean_hop2
    max_lag = max(T_meas / max(MIN_ORIGINS, int(time_origins)), MIN_MAX_LAG_FRAMES * dt)
    end = int(np.searchsorted(t, max_lag * (1 + 1e-9), side="right")) - 1
    end = min(max(end, min(2, len(t) - 1)), len(t) - 1)

    curves = {"D_tracer": tr, "D_jump": co}
    summary: dict = {}
    vals: dict = {}
    fits: dict = {}
    windows = {}
    for q, arr in curves.items():
        total = arr.sum(axis=2)                       # (R, L)
        mean = total.mean(axis=0)
        i0, i1, found = fit_window(t, mean, end, msd_min)
        sl = slice(i0, i1 + 1)
        windows[q] = sl
        w = t[sl] ** FIT_WEIGHT_POWER
        slope = _ols_slope(t[sl], total[:, sl], w)     # (R,), Å^2/s
        slope_ax = np.stack([_ols_slope(t[sl], arr[:, sl, a], w) for a in range(3)], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(np.where(total[:, sl] > 0, total[:, sl], np.nan))
            alpha_r = _ols_slope(np.log(t[sl]), logs)
            alpha = float(_ols_slope(np.log(t[sl]), np.log(mean[sl])[None, :])[0]) \
                if np.all(mean[sl] > 0) else float("nan")
        alpha_err = float(_se(alpha_r)) if np.all(np.isfinite(alpha_r)) else float("nan")
        # noise may widen the tolerance (twice the replica SE of the exponent), at most to
        # twice EXPONENT_TOL: a curve with exponent 1.5 is never called diffusive
        slack = min(2.0 * alpha_err, EXPONENT_TOL) if np.isfinite(alpha_err) else 0.0
        diffusive = bool(found and np.isfinite(alpha) and abs(alpha - 1.0) <= EXPONENT_TOL + slack)
        vals[f"{q}_cm2_s"] = slope * A2_TO_CM2 / (2.0 * dim)
        for a, ax in enumerate(AXES):
            # an axis the network does not span never moves: exactly zero, not rounding noise
            # (hop vectors carry ~1e-16 Å rounding on such axes: MSD ~1e-32 of the others)
            still = float(np.max(np.abs(arr[:, :, a]))) <= 1e-24 * float(np.max(np.abs(arr)))
            vals[f"{q}_{ax}_cm2_s"] = np.zeros(n_rep) if still else slope_ax[:, a] * A2_TO_CM2 / 2.0
        fits[q] = {"start_s": float(t[i0]), "end_s": float(t[i1]), "n_points": int(i1 - i0 + 1),
                   "local_exponent": alpha, "local_exponent_err": alpha_err,
                   "diffusive": diffusive, "msd_at_start_A2": float(mean[i0]),
                   "msd_min_A2": msd_min}
    d_unc = hop_len2 / (2.0 * dim * max(n, 1) * T_meas) * A2_TO_CM2
    vals["D_uncorrelated_cm2_s"] = d_unc
    density = n / (volume_A3 * A3_TO_CM3)
    ne = density * (charge_e * E_CHARGE_C) ** 2 / (KB_J_K * temperature_K)
    vals["sigma_S_cm"] = ne * vals["D_jump_cm2_s"]
    if drifting:
        e_abs = float(np.linalg.norm(field))
        v_along = net_col @ (field / e_abs) / (max(n, 1) * T_meas) * A_TO_CM  # cm/s per ion
        vals["drift_velocity_cm_s"] = v_along
        vals["sigma_field_S_cm"] = charge_e * E_CHARGE_C * density * v_along / (e_abs / A_TO_CM)
    for key, x in vals.items():
        summary[key] = float(np.mean(x))
        summary[err_key(key)] = float(_se(x))
    f, f_err = jackknife_ratio(vals["D_tracer_cm2_s"], d_unc)
    h, h_err = jackknife_ratio(vals["D_tracer_cm2_s"], vals["D_jump_cm2_s"])
    summary["correlation_factor"], summary["correlation_factor_err"] = f, f_err
    summary["haven_ratio"], summary["haven_ratio_err"] = h, h_err
    vals["correlation_factor"] = vals["D_tracer_cm2_s"] / np.where(d_unc > 0, d_unc, np.nan)
    # sigma: the most precise valid route. Nernst-Einstein with D_J is always valid; one ion
    # has D_J = D* identically; the field route is valid in linear response.
    routes = {"nernst_einstein_D_jump": (summary["sigma_S_cm"], summary["sigma_err_S_cm"])}
    if drifting:
        routes["field_drift"] = (summary["sigma_field_S_cm"], summary["sigma_field_err_S_cm"])
    def rel(me):
        m, e = me
        return e / abs(m) if m and np.isfinite(e) else np.inf
    best = min(routes, key=lambda k: (rel(routes[k]), k != "nernst_einstein_D_jump"))
    summary["sigma_best_S_cm"], summary["sigma_best_err_S_cm"] = routes[best]
    summary["sigma_route"] = ("single_ion_D_tracer_equals_D_jump" if n == 1 and best.startswith(
        "nernst") else best)
    summary["estimator"] = "msd_slope"
    summary["errors_from"] = "replicas" if n_rep >= 2 else "none: one replica"
    summary["msd_frames"] = int(k_frames - 1)
    summary["frame_spacing_s"] = float(dt)
    summary["fit"] = fits
    for q in QUANTITIES:
        summary[f"diffusive_{q}"] = fits[q]["diffusive"]
        summary[f"local_exponent_{q}"] = fits[q]["local_exponent"]
        summary[f"fit_start_{q}_s"] = fits[q]["start_s"]
        summary[f"fit_end_{q}_s"] = fits[q]["end_s"]
        summary[f"fit_points_{q}"] = fits[q]["n_points"]
    summary["diffusive"] = all(fits[q]["diffusive"] for q in QUANTITIES)
    summary["replicas"] = n_rep
    summary["n_ions"] = int(n)
    summary["time_s"] = float(T_meas)
    summary["hops"] = int(moves.sum())
    tr_tot, co_tot = tr.sum(axis=2), co.sum(axis=2)
    curve = {"t_s": t, "msd_tracer_A2": tr_tot.mean(axis=0),
             "msd_collective_A2": co_tot.mean(axis=0),
             "msd_tracer_axes_A2": tr.mean(axis=0), "msd_collective_axes_A2": co.mean(axis=0),
             "fit": fits}
    if n_rep > 1:
        curve["msd_tracer_err_A2"] = _se(tr_tot)
        curve["msd_collective_err_A2"] = _se(co_tot)
    return MSDAnalysis(summary, vals, curve)
