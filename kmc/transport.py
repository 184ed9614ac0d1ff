"""Transport coefficients from replica displacements, each with a standard error over replicas.

Conventions (d = dimensionality of the conducting network, N ions, t the measurement window):
tracer ``D* = sum_i |dr_i|^2 / (2 d N t)``; jump ``D_J = |sum_i dr_i|^2 / (2 d N t)``;
Haven ratio ``D*/D_J``; correlation factor ``f = sum_i |dr_i|^2 / sum_hops |hop|^2``;
Nernst-Einstein ``sigma = (N/V) q^2 D_J / (kB T)``.  Per-axis values use d = 1 per axis.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kmc.simulation import Simulation

E_CHARGE_C = 1.602176634e-19   # elementary charge (exact, SI 2019)
KB_J_K = 1.380649e-23          # Boltzmann constant (exact, SI 2019)
A2_TO_CM2 = 1e-16
A3_TO_CM3 = 1e-24
AXES = ("xx", "yy", "zz")


@dataclass(frozen=True)
class ReplicaSample:
    """Raw sums of one replica's measurement window."""

    time_s: float
    n_ions: int
    sum_r2_axis: np.ndarray        # (3,) sum_i dr_ia^2, Å^2
    collective_axis: np.ndarray    # (3,) sum_i dr_ia, Å
    sum_hop_len2: float            # sum over hops of |hop|^2, Å^2
    hops: int
    class_occupation: np.ndarray   # time-averaged ions per site class

    @classmethod
    def from_simulation(cls, sim: Simulation) -> "ReplicaSample":
        d = sim.displacements
        st = sim.engine.state
        return cls(sim.time, sim.n_ions, np.einsum("ia,ia->a", d, d), d.sum(axis=0),
                   float(st["sumsq"].sum()), int(st["hops"].sum()) if sim.n_ions else 0,
                   sim.class_occupation())


def mean_err(x: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the mean over independent replicas (NaN error for one)."""
    x = np.asarray(x, float)
    if len(x) < 2:
        return float(x.mean()), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x)))


def replica_values(samples: list[ReplicaSample], dim: int, volume_A3: float,
                   temperature_K: float, charge_e: float = 1.0) -> dict[str, np.ndarray]:
    """Per-replica transport values (one entry per replica) in output units."""
    t = np.array([s.time_s for s in samples])
    n = np.array([s.n_ions for s in samples], float)
    r2 = np.array([s.sum_r2_axis for s in samples])
    col = np.array([s.collective_axis for s in samples])
    hop2 = np.array([s.sum_hop_len2 for s in samples])
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = A2_TO_CM2 / (2.0 * n * t)
        out = {
            "D_tracer_cm2_s": r2.sum(axis=1) * scale / dim,
            "D_jump_cm2_s": (col ** 2).sum(axis=1) * scale / dim,
            "correlation_factor": r2.sum(axis=1) / hop2,
        }
        for k, ax in enumerate(AXES):
            out[f"D_tracer_{ax}_cm2_s"] = r2[:, k] * scale
            out[f"D_jump_{ax}_cm2_s"] = col[:, k] ** 2 * scale
        density = n / (volume_A3 * A3_TO_CM3)
        out["sigma_S_cm"] = density * (charge_e * E_CHARGE_C) ** 2 * out["D_jump_cm2_s"] / (
            KB_J_K * temperature_K)
    return out


def summarize(samples: list[ReplicaSample], dim: int, volume_A3: float, temperature_K: float,
              charge_e: float = 1.0) -> dict:
    """Mean and standard error of every transport value over the replicas."""
    vals = replica_values(samples, dim, volume_A3, temperature_K, charge_e)
    res: dict = {}
    for key, x in vals.items():
        m, e = mean_err(x)
        res[key] = m
        unit_at = key.rfind("_cm2_s") if key.endswith("_cm2_s") else key.rfind("_S_cm")
        err_key = f"{key[:unit_at]}_err{key[unit_at:]}" if unit_at > 0 else f"{key}_err"
        res[err_key] = e
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
