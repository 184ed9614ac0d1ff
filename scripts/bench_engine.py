"""Engine benchmark: hops per second and memory per site (one core).

    python scripts/bench_engine.py            # full table (about a minute)
    python scripts/bench_engine.py --quick    # smaller hop counts

Cases: simple cubic 32^3 half-filled and single-vacancy with equal barriers, the same with
nearest-neighbour pair interactions, a size scan from 10^3 to 10^6 sites (half-filled), and the
realistic workload: cubic garnet LLZO (2x2x2 and 4x4x4 cells, Li7, 300 K) with the data file's
2.0 A hard-core exclusions, alone and with three Li-Li repulsion shells out to 4 A. The shell
energies (0.10, 0.05, 0.02 eV) are a benchmark workload, not a physical parameter set: they give
each site the neighbour lists a screened-Coulomb lattice model would have.
Timing covers engine hops only (one call into the Cython loop), after a warm-up.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no BLAS spin threads competing for the core

import numpy as np  # noqa: E402

from kmc.config import Config  # noqa: E402
from kmc.lattices import teaching_lattice  # noqa: E402
from kmc.model import RateModel  # noqa: E402
from kmc.network import SiteNetwork  # noqa: E402
from kmc.runner import build_system  # noqa: E402
from kmc.simulation import Simulation  # noqa: E402

LLZO_SHELLS = "[[2.5, 0.10], [3.0, 0.05], [4.0, 0.02]]"  # benchmark workload (see docstring)


def sc_model(L: int, barrier_eV: float, J_eV: float = 0.0) -> RateModel:
    """Simple cubic L^3 (a = 1 A), nearest-neighbour hops at 1e13 Hz, optional nn pair energy."""
    net = SiteNetwork.from_structure(teaching_lattice("sc", 1.0).structure, "Li", (L, L, L),
                                     hop_cutoff_A=1.01, interaction_cutoff_A=1.01 if J_eV else 0.0,
                                     site_labels=["site"])
    return RateModel(net, 1e13, barrier_eV, mobile_mobile=[(1.01, J_eV)] if J_eV else [])


def case(L: int, n_ions: str, interactions: bool, hops: int) -> dict:
    model = sc_model(L, 0.25, 0.05 if interactions else 0.0)
    n_sites = model.network.n_sites
    n = n_sites - 1 if n_ions == "vacancy" else n_sites // 2
    return timed(Simulation(model, 600.0, n_ions=n, seed=1), hops)


def llzo_case(cells: int, interactions: bool, hops: int) -> dict:
    """c-LLZO with the data-file model (exclusions), optionally with the benchmark shells."""
    shells = f"[model.interactions_eV]\nmobile_mobile = {LLZO_SHELLS}\n" if interactions else ""
    system = build_system(Config.from_toml(
        f"[lattice]\nbuiltin = \"llzo-cubic\"\nsupercell = [{cells}, {cells}, {cells}]\n{shells}"))
    return timed(Simulation(system.model, 300.0, n_ions=system.n_ions, seed=1), hops)


def timed(sim: Simulation, hops: int) -> dict:
    """Best hop rate of five timed engine calls after a warm-up, and the engine's bytes per site."""
    sim.run(min(hops // 10, 200_000))  # warm-up: caches, page faults
    best = 0.0
    for _ in range(5):  # best of five: the least disturbed by other load on the machine
        t0 = time.perf_counter()
        sim.run(hops)
        best = max(best, hops / (time.perf_counter() - t0))
    n_sites = sim.engine.n_sites
    return {"sites": n_sites, "ions": sim.n_ions, "hops_per_s": best,
            "bytes_per_site": sim.engine.nbytes / n_sites}


def calibration() -> float:
    """Seconds for a fixed pure-Python loop: tells how fast this machine is right now."""
    t0 = time.perf_counter()
    s = 0
    for i in range(5_000_000):
        s += i
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    hops = 500_000 if args.quick else 3_000_000
    print(f"# kmc engine benchmark  {time.strftime('%Y-%m-%d')}  {platform.processor() or platform.machine()}"
          f"  python {platform.python_version()}  numpy {np.__version__}")
    print(f"# machine speed: 5e6-iteration Python loop took {calibration():.2f} s")
    print(f"{'case':48s} {'sites':>9s} {'ions':>8s} {'hops/s':>10s} {'bytes/site':>11s}")
    rows = [
        ("sc 32^3 half-filled", 32, "half", False),
        ("sc 32^3 single vacancy", 32, "vacancy", False),
        ("sc 32^3 half-filled, nn interaction", 32, "half", True),
        ("sc 32^3 single vacancy, nn interaction", 32, "vacancy", True),
    ]
    rows += [(f"size scan: sc {L}^3 half-filled", L, "half", False) for L in (10, 22, 46, 100)]
    rows += [(f"c-LLZO {c}x{c}x{c} Li7 300 K, exclusions{', 3 shells' if inter else ''}",
              c, "llzo", inter) for c in (2, 4) for inter in (False, True)]
    scan = []
    for name, L, n_ions, inter in rows:
        r = llzo_case(L, inter, hops) if n_ions == "llzo" else case(L, n_ions, inter, hops)
        print(f"{name:48s} {r['sites']:9d} {r['ions']:8d} {r['hops_per_s']:10.3g} "
              f"{r['bytes_per_site']:11.1f}",
              flush=True)
        if name.startswith("size scan"):
            scan.append(r)
    ratio = (1 / scan[-1]["hops_per_s"]) / (1 / scan[0]["hops_per_s"])
    print(f"cost per hop grows {ratio:.2f}x from {scan[0]['sites']} to {scan[-1]['sites']} sites")
    print(f"peak resident memory of this process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
