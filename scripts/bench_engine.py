"""Engine benchmark: hops per second and memory per site (one core).

    python scripts/bench_engine.py            # full table (about a minute)
    python scripts/bench_engine.py --quick    # smaller hop counts

Cases: simple cubic 32^3 half-filled and single-vacancy with equal barriers, the same with
nearest-neighbour pair interactions, and a size scan from 10^3 to 10^6 sites (half-filled).
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

from kmc.lattices import teaching_lattice  # noqa: E402
from kmc.model import RateModel  # noqa: E402
from kmc.network import SiteNetwork  # noqa: E402
from kmc.simulation import Simulation  # noqa: E402


def case(L: int, n_ions: str, interactions: bool, hops: int) -> dict:
    tl = teaching_lattice("sc", 1.0)
    net = SiteNetwork.from_structure(tl.structure, "Li", (L, L, L), hop_cutoff_A=1.01,
                                     interaction_cutoff_A=1.01 if interactions else 0.0,
                                     site_labels=["site"])
    model = RateModel(net, 1e13, 0.25, mobile_mobile=[(1.01, 0.05)] if interactions else [])
    n = net.n_sites - 1 if n_ions == "vacancy" else net.n_sites // 2
    sim = Simulation(model, 600.0, n_ions=n, seed=1)
    sim.run(min(hops // 10, 200_000))  # warm-up: caches, page faults
    best = 0.0
    for _ in range(5):  # best of five: the least disturbed by other load on the machine
        t0 = time.perf_counter()
        sim.run(hops)
        best = max(best, hops / (time.perf_counter() - t0))
    return {"sites": net.n_sites, "ions": n, "hops_per_s": best,
            "bytes_per_site": sim.engine.nbytes / net.n_sites}


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
    print(f"{'case':44s} {'sites':>9s} {'hops/s':>10s} {'bytes/site':>11s}")
    rows = [
        ("sc 32^3 half-filled", 32, "half", False),
        ("sc 32^3 single vacancy", 32, "vacancy", False),
        ("sc 32^3 half-filled, nn interaction", 32, "half", True),
        ("sc 32^3 single vacancy, nn interaction", 32, "vacancy", True),
    ]
    rows += [(f"size scan: sc {L}^3 half-filled", L, "half", False) for L in (10, 22, 46, 100)]
    scan = []
    for name, L, n_ions, inter in rows:
        r = case(L, n_ions, inter, hops)
        print(f"{name:44s} {r['sites']:9d} {r['hops_per_s']:10.3g} {r['bytes_per_site']:11.1f}",
              flush=True)
        if name.startswith("size scan"):
            scan.append(r)
    ratio = (1 / scan[-1]["hops_per_s"]) / (1 / scan[0]["hops_per_s"])
    print(f"cost per hop grows {ratio:.2f}x from {scan[0]['sites']} to {scan[-1]['sites']} sites")
    print(f"peak resident memory of this process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
