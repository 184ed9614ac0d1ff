"""Precision of long runs: the engine's accumulation of time (Kahan-compensated sum of the waiting
times) and of displacements and squared hop lengths (plain float64 sums per ion), over >= 1e9 hops.

A small C shim (compiled here with the system compiler, as the engine is: gcc -O3, no fast-math)
holds the engine's update lines verbatim:

* ``replay`` feeds the engine's own random numbers (same PCG64 state, drawn with numpy) through the
  engine's clock, event choice and displacement updates for one ion on a static lattice; it must
  reproduce the engine's clock, displacement and sum of squared hops **bit for bit**, which proves
  that the shim is the engine's scheme;
* ``synth`` runs the same scheme for 1e9 hops (waiting times with full 53-bit mantissas, random
  hop directions with non-dyadic components) next to exact references: a double-double sum of the
  same waiting times and integer hop counts per direction (exact displacement = sum of count x
  vector, in rational arithmetic).

The real engine is run for 2e8 hops (``KMC_LONG_RUN_HOPS`` to change it) in the validation suite:
replayed bit for bit, then compared with the exact references.
"""
from __future__ import annotations

import ctypes
import math
import os
import shutil
import subprocess
import time
from fractions import Fraction

import numpy as np
import pytest
from conftest import lattice_network

from kmc.engine.model import RateModel
from kmc.engine.simulation import Simulation

SHIM = r"""
#include <math.h>
#include <stdint.h>

/* the engine's clock update (src/kmc/engine/_engine.pyx, Engine._run), verbatim */
static inline void kahan(double *clock, double dt) {
    double y = dt - clock[1];
    double tnew = clock[0] + y;
    clock[1] = (tnew - clock[0]) - y;
    clock[0] = tnew;
}

/* Engine._run for one ion on a static lattice: u holds the engine's draws (waiting time, event),
   total the tree total (= the site total), r the rates of the site's events in template order. */
void replay(const double *u, int64_t n, double total, const double *r, int64_t nt,
            const double *vec, const double *len2, double *clock, double *disp, double *sumsq,
            int64_t *counts) {
    for (int64_t i = 0; i < n; i++) {
        double dt = -log(1.0 - u[2 * i]) / total;
        kahan(clock, dt);
        double rem = u[2 * i + 1] * total;
        int64_t chosen = -1, last = -1;
        for (int64_t t = 0; t < nt; t++) {
            if (r[t] > 0.0) {
                last = t;
                if (rem < r[t]) { chosen = t; break; }
                rem -= r[t];
            }
        }
        if (chosen < 0) chosen = last;
        for (int k = 0; k < 3; k++) disp[k] += vec[3 * chosen + k];
        *sumsq += len2[chosen];
        counts[chosen] += 1;
    }
}

static inline uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* n hops of the engine's scheme with synthetic draws, next to exact references.
   out: [0,1] engine clock (t, c); [2] naive sum; [3,4] double-double reference (hi, lo);
        [5..7] displacement of a random walk; [8] its sum of squared hops;
        [9..11] displacement of a pure drift (always direction 0).
   counts[t]: hops along direction t of the random walk. */
void synth(int64_t n, uint64_t seed, double mean_dt, const double *vec, const double *len2,
           int64_t nt, double *out, int64_t *counts) {
    double clock[2] = {0.0, 0.0}, naive = 0.0, hi = 0.0, lo = 0.0, lo_c = 0.0;
    double disp[3] = {0.0, 0.0, 0.0}, drift[3] = {0.0, 0.0, 0.0}, sumsq = 0.0;
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        uint64_t x = splitmix64(&s);
        double dt = mean_dt * (0.5 + (double)(x >> 11) * (1.0 / 9007199254740992.0));
        kahan(clock, dt);
        naive += dt;
        /* TwoSum: hi + err == hi_old + dt exactly; the errors are summed with compensation */
        double sum = hi + dt, bp = sum - hi;
        double err = (hi - (sum - bp)) + (dt - bp);
        hi = sum;
        double y = err - lo_c, tl = lo + y;
        lo_c = (tl - lo) - y;
        lo = tl;
        int64_t t = (int64_t)((x & 0x7FF) % (uint64_t)nt);
        for (int k = 0; k < 3; k++) { disp[k] += vec[3 * t + k]; drift[k] += vec[k]; }
        sumsq += len2[t];
        counts[t] += 1;
    }
    out[0] = clock[0]; out[1] = clock[1]; out[2] = naive; out[3] = hi; out[4] = lo;
    for (int k = 0; k < 3; k++) { out[5 + k] = disp[k]; out[9 + k] = drift[k]; }
    out[8] = sumsq;
}
"""

_dbl = np.ctypeslib.ndpointer(dtype=np.float64, flags="C_CONTIGUOUS")
_i64 = np.ctypeslib.ndpointer(dtype=np.int64, flags="C_CONTIGUOUS")


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler for the accumulation shim")
    d = tmp_path_factory.mktemp("shim")
    (d / "shim.c").write_text(SHIM)
    lib = d / "shim.so"
    subprocess.run([cc, "-O3", "-shared", "-fPIC", "-o", str(lib), str(d / "shim.c"), "-lm"],
                   check=True, capture_output=True)
    so = ctypes.CDLL(str(lib))
    so.replay.argtypes = [_dbl, ctypes.c_int64, ctypes.c_double, _dbl, ctypes.c_int64, _dbl, _dbl,
                          _dbl, _dbl, _dbl, _i64]
    so.replay.restype = None
    so.synth.argtypes = [ctypes.c_int64, ctypes.c_uint64, ctypes.c_double, _dbl, _dbl,
                         ctypes.c_int64, _dbl, _i64]
    so.synth.restype = None
    return so


def exact_sum(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """sum_t counts[t] * values[t] (rows or scalars) in exact rational arithmetic, rounded once."""
    values = np.atleast_2d(np.asarray(values, float).T).T
    return np.array([float(sum(Fraction(int(c)) * Fraction(float(v))
                               for c, v in zip(counts, values[:, k])))
                     for k in range(values.shape[1])])


def one_ion(a: float = 1.7, seed: int = 3) -> Simulation:
    """One ion on a static simple-cubic lattice (a non-dyadic lattice constant)."""
    net = lattice_network("sc", (4, 4, 4), a=a)
    sim = Simulation(RateModel(net, 1e13, 0.2), 600.0, n_ions=1, seed=seed)
    assert sim.engine.static
    return sim


def replay_engine(shim, sim: Simulation, n_hops: int, chunk: int = 4_000_000) -> dict:
    """Run the engine ``n_hops`` and replay the same draws through the shim; both results."""
    bg = np.random.PCG64()
    bg.state = sim.engine.bit_generator.state       # the engine's stream, from here on
    draws = np.random.Generator(bg)
    net = sim.model.network
    total = float(sim.engine.total_rate)
    site = int(sim.engine.state["ion_site"][0])
    ev = net.events()
    r = np.ascontiguousarray(sim.engine.rates[ev["out_off"][site]:ev["out_off"][site + 1]])
    vec = np.ascontiguousarray(net.templates.vec1)
    len2 = np.ascontiguousarray(np.einsum("ij,ij->i", vec, vec))
    clock = sim.engine.state["clock"].copy()
    disp = sim.engine.state["disp"][0].copy()
    sumsq = np.array([sim.engine.state["sumsq"][0]])
    counts = np.zeros(len(r), np.int64)
    t0 = time.perf_counter()
    done = 0
    while done < n_hops:
        k = min(chunk, n_hops - done)
        sim.run(k)
        done += k
    engine_s = time.perf_counter() - t0
    done = 0
    while done < n_hops:
        k = min(chunk, n_hops - done)
        shim.replay(draws.random(2 * k), k, total, r, len(r), vec, len2, clock, disp, sumsq,
                    counts)
        done += k
    st = sim.engine.state
    return {"engine_clock": st["clock"].copy(), "engine_disp": st["disp"][0].copy(),
            "engine_sumsq": float(st["sumsq"][0]), "clock": clock, "disp": disp,
            "sumsq": float(sumsq[0]), "counts": counts, "vec": vec, "len2": len2,
            "engine_s": engine_s, "total": total}


def test_shim_is_the_engines_scheme_bit_for_bit(shim):
    sim = one_ion()
    sim.run(1000)                                   # start mid-run (non-zero clock and disp)
    out = replay_engine(shim, sim, 300_000, chunk=100_000)
    assert out["engine_clock"][0] == out["clock"][0]       # bit for bit, compensation included
    assert out["engine_clock"][1] == out["clock"][1]
    assert np.array_equal(out["engine_disp"], out["disp"])
    assert out["engine_sumsq"] == out["sumsq"]
    assert out["counts"].sum() == 300_000 and np.all(out["counts"] > 40_000)


def precision_report(out: np.ndarray, counts: np.ndarray, vec: np.ndarray, len2: np.ndarray,
                     n: int) -> dict:
    ref_t = Fraction(float(out[3])) + Fraction(float(out[4]))
    kahan_t = Fraction(float(out[0])) - Fraction(float(out[1]))   # t - c: the compensated sum
    exact_disp = exact_sum(counts, vec)
    exact_sumsq = float(exact_sum(counts, len2)[0])
    exact_drift = exact_sum(np.array([n]), vec[:1])
    rms = math.sqrt(exact_sumsq)                    # random-walk scale of the displacement
    return {
        "time_kahan_rel": abs(float((Fraction(float(out[0])) - ref_t) / ref_t)),
        "time_kahan_comp_rel": abs(float((kahan_t - ref_t) / ref_t)),
        "time_naive_rel": abs(float((Fraction(float(out[2])) - ref_t) / ref_t)),
        "disp_abs_A": float(np.max(np.abs(out[5:8] - exact_disp))),
        "disp_rel_to_rms": float(np.max(np.abs(out[5:8] - exact_disp)) / rms),
        "msd_rel": abs(float(np.dot(out[5:8], out[5:8]) / np.dot(exact_disp, exact_disp) - 1)),
        "sumsq_rel": abs(out[8] / exact_sumsq - 1.0),
        "drift_rel": float(np.max(np.abs(out[9:12] - exact_drift) / np.abs(exact_drift).max())),
    }


#: non-dyadic hop vectors (an irregular set as in a garnet, each with its reverse)
VECTORS = np.array([[0.8661, 0.1234, -0.4471], [1.6021, -0.0713, 0.2918],
                    [-0.3337, 1.4142, 0.5551]])
VECTORS = np.ascontiguousarray(np.vstack([VECTORS, -VECTORS]))


@pytest.mark.parametrize("n", [10**9])
def test_1e9_hops_keep_time_and_displacement_precision(shim, n):
    out = np.zeros(12)
    counts = np.zeros(len(VECTORS), np.int64)
    len2 = np.ascontiguousarray(np.einsum("ij,ij->i", VECTORS, VECTORS))
    shim.synth(n, 12345, 1.3e-13, VECTORS, len2, len(VECTORS), out, counts)
    rep = precision_report(out, counts, VECTORS, len2, n)
    print(f"\n{n:.0e} hops:", {k: f"{v:.2e}" for k, v in rep.items()})
    assert counts.sum() == n
    # time: the Kahan clock is exact to the last bit; a naive sum would drift
    assert rep["time_kahan_rel"] < 4e-16 and rep["time_kahan_comp_rel"] < 4e-16
    assert rep["time_naive_rel"] > 100 * rep["time_kahan_rel"]
    # displacements: a random walk's rounding errors (measured: 4e-11 of its rms length, 3e-12
    # of the MSD) are far below any error bar of D (>= 1e-4 relative)
    assert rep["disp_rel_to_rms"] < 1e-9 and rep["msd_rel"] < 1e-10
    # sums of one sign (squared hop lengths; a drift in a field) round systematically: measured
    # 4e-9 and 1e-8 after 1e9 hops of ONE ion, still five orders below any error bar
    assert rep["sumsq_rel"] < 1e-7 and rep["drift_rel"] < 1e-7


@pytest.mark.validation
def test_engine_long_run_keeps_precision(shim):
    """The real engine for KMC_LONG_RUN_HOPS hops (default 2e8, about 40 s at 6e6 hops/s with one
    ion): bit-identical to the shim, then compared with the exact references."""
    n = int(float(os.environ.get("KMC_LONG_RUN_HOPS", "2e8")))
    sim = one_ion()
    out = replay_engine(shim, sim, n)
    assert out["engine_clock"][0] == out["clock"][0] and out["engine_clock"][1] == out["clock"][1]
    assert np.array_equal(out["engine_disp"], out["disp"]) and out["engine_sumsq"] == out["sumsq"]
    exact_disp = exact_sum(out["counts"], out["vec"])
    exact_sumsq = float(exact_sum(out["counts"], out["len2"])[0])
    disp_err = float(np.max(np.abs(out["engine_disp"] - exact_disp)))
    msd_rel = abs(np.dot(out["engine_disp"], out["engine_disp"])
                  / np.dot(exact_disp, exact_disp) - 1)
    print(f"\nengine {n:.1e} hops in {out['engine_s']:.0f} s: |disp error| {disp_err:.2e} Å "
          f"(|disp| {np.linalg.norm(exact_disp):.3g} Å), MSD rel {msd_rel:.2e}, sum|hop|^2 rel "
          f"{abs(out['engine_sumsq'] / exact_sumsq - 1):.2e}")
    assert disp_err / math.sqrt(exact_sumsq) < 1e-9 and msd_rel < 1e-10
    assert abs(out["engine_sumsq"] / exact_sumsq - 1) < 1e-7
    # the clock: its mean waiting time is 1/total, so t ~ n/total within a few 1/sqrt(n)
    t = out["engine_clock"][0]
    assert abs(t * out["total"] / n - 1) < 6 / math.sqrt(n)
