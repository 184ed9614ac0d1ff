"""Measure the memory cost per site and per hop event of building a system and of one replica's
engine, for the memory guard (kmc.system.network.MEMORY_*).

Usage: ``python scripts/measure_memory.py`` (about a minute). For each teaching lattice and size
it records, with :mod:`tracemalloc` (numpy reports its buffers to it), the peak of
``build_system`` and the memory one :class:`kmc.engine.simulation.Simulation` keeps, then fits
``bytes = a * n_sites + b * n_events`` by least squares over all of them (sc has 6 events per site,
bcc 8, fcc 12, so the two costs are separable) and prints a and b for both phases.
"""
from __future__ import annotations

import gc
import tracemalloc

import numpy as np

from kmc.config import Config
from kmc.engine.simulation import Simulation
from kmc.runs.system import build_system

CASES = [("sc", n) for n in (16, 24, 32)] + [("bcc", n) for n in (12, 18, 24)] + \
        [("fcc", n) for n in (10, 14, 18)]


def measure(lattice: str, n: int) -> tuple[int, int, int, int]:
    """(sites, events, peak bytes of building the system and its first replica, bytes one
    replica keeps)."""
    config = Config.from_dict({"lattice": {"builtin": lattice, "supercell": [n, n, n]},
                               "occupancy": {"filling": 0.5}, "run": {"replicas": 1}})
    gc.collect()
    tracemalloc.start()
    system = build_system(config)
    sim = Simulation(system.model, 600.0, n_ions=system.n_ions, seed=1)
    system.percolation(np.zeros(system.network.n_sites, bool))
    peak = tracemalloc.get_traced_memory()[1]
    base = tracemalloc.get_traced_memory()[0]
    sim2 = Simulation(system.model, 600.0, n_ions=system.n_ions, seed=2)
    replica = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    net = system.network
    del sim, sim2
    return net.n_sites, len(net.hops) * int(np.prod(net.supercell)), peak, replica


def main() -> None:
    rows = [measure(*c) for c in CASES]
    for (lat, n), (s, e, b, g) in zip(CASES, rows):
        print(f"{lat:4s} {n:3d}^3: {s:8d} sites {e:9d} events  peak {b / s:7.0f} B/site  "
              f"replica {g / s:6.0f} B/site")
    a = np.array([[s, e] for s, e, _, _ in rows], float)
    for name, col in (("peak (system + first replica)", 2), ("each further replica", 3)):
        (per_site, per_event), *_ = np.linalg.lstsq(a, np.array([r[col] for r in rows], float),
                                                    rcond=None)
        print(f"{name}: {per_site:.0f} B per site + {per_event:.0f} B per event")


if __name__ == "__main__":
    main()
