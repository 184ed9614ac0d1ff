"""Transport coefficients from replica displacements, each with a standard error over replicas.

Conventions (d = dimensionality of the conducting network, N ions, t the measurement time):
tracer ``D* = sum_i |dr_i|^2 / (2 d N t)``; jump ``D_J = |sum_i dr_i|^2 / (2 d N t)``;
Haven ratio ``D*/D_J``; correlation factor ``f = sum_i |dr_i|^2 / sum_hops |hop|^2``;
Nernst-Einstein ``sigma = (N/V) q^2 D_J / (kB T)``.  Per-axis values use d = 1 per axis.

Time origins: a replica's measurement is a sequence of consecutive, non-overlapping blocks. Its
estimates are ratio estimates over the blocks, e.g. ``D* = sum_b sum_i |dr_ib|^2 / (2 d N sum_b
t_b)``; with one block this is the single-window estimate. Blocks of a replica are not treated as
independent samples: the standard error is always taken over independent replicas, so more
blocks lower it only as far as they really carry new information.

Applied field: with ``field_V_per_A`` non-zero the ions drift. The drift velocity gives a second
route to conductivity, ``sigma_field = q (N/V) <v . E_hat> / |E|`` with ``v = sum_i dr_i / (N t)``
per replica. For D*, D_J, f and the Nernst-Einstein sigma the mean drift is subtracted from every
block displacement (drift velocity pooled over the replicas of the temperature) and the small
downward bias from estimating that mean is removed exactly for independent block increments
(factor ``1 / (1 - sum_b t_b^2 / T^2)`` for the collective displacement, ``+ c sum_b t_b^2 / (N T)``
for the tracer sum). In linear response (``|q E . dr| << kT``) they then equal the zero-field
values to order E^2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kmc.simulation import Simulation

E_CHARGE_C = 1.602176634e-19   # elementary charge (exact, SI 2019)
KB_J_K = 1.380649e-23          # Boltzmann constant (exact, SI 2019)
A2_TO_CM2 = 1e-16
A3_TO_CM3 = 1e-24
A_TO_CM = 1e-8
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


def summarize(samples: list[ReplicaSample], dim: int, volume_A3: float, temperature_K: float,
              charge_e: float = 1.0, field_V_per_A=None) -> dict:
    """Mean and standard error of every transport value over the replicas."""
    vals = replica_values(samples, dim, volume_A3, temperature_K, charge_e, field_V_per_A)
    res: dict = {}
    for key, x in vals.items():
        m, e = mean_err(x)
        res[key] = m
        res[err_key(key)] = e
    dt, dt_e = res["D_tracer_cm2_s"], res["D_tracer_err_cm2_s"]
    dj, dj_e = res["D_jump_cm2_s"], res["D_jump_err_cm2_s"]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = dt / dj if dj > 0 else float("nan")
        res["haven_ratio"] = h
        res["haven_ratio_err"] = float(abs(h) * np.hypot(dt_e / dt, dj_e / dj)) if dt > 0 and dj > 0 \
            else float("nan")
    res["replicas"] = len(samples)
    res["n_ions"] = int(samples[0].n_ions)
    res["time_s"] = float(np.mean([s.time_s for s in samples]))
    res["hops"] = int(sum(s.hops for s in samples))
    return res
