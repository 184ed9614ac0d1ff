"""Measure the memory cost per site and per hop event of building a system and of one replica's
engine, for the memory guard (kmc.system.network.MEMORY_*).

Usage: ``python scripts/measure_memory.py`` (about a minute). For each teaching lattice and size
it records, with :mod:`tracemalloc` (numpy reports its buffers to it), the peak of
``build_system`` and the memory one :class:`kmc.engine.simulation.Simulation` keeps, then fits
``bytes = a * n_sites + b * n_events`` by least squares over all of them (sc has 6 events per site,
bcc 8, fcc 12, so the two costs are separable) and prints a and b for both phases.

``python scripts/measure_memory.py --construction sc 100 [--occupancy vacancy|half|default]``
measures one system of ``N x N x N`` cells of a builtin lattice or framework (sc 100: 10^6 sites;
llzo-cubic-latticegas 20: 960 000) instead: the resident-memory high-water mark (Linux ``VmHWM``, reset
before each phase) of each construction phase -- ``build_system``, the first replica's
``Simulation`` (event catalogue, neighbour lists, placement) and the percolation analysis every
run reports (``System.percolation``) -- in bytes per site above the resident memory before the
build.
"""
from __future__ import annotations

import argparse
import gc
import time
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


def _rss() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in bytes (Linux)."""
    got = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                got[key] = int(value.split()[0]) * 1024
    return got["VmRSS"], got["VmHWM"]


def _reset_peak() -> None:
    """Reset VmHWM to the current resident memory (``clear_refs`` 5, Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")


def construction(lattice: str, n: int, occupancy: str) -> None:
    """Print the resident-memory peak of each construction phase in bytes per site."""
    occ = {"vacancy": {"vacancies": 1}, "half": {"filling": 0.5}, "default": {}}[occupancy]
    config = Config.from_dict({"lattice": {"builtin": lattice, "supercell": [n, n, n]},
                               "occupancy": occ, "run": {"replicas": 1}})
    gc.collect()
    _reset_peak()
    base = _rss()[0]
    state: dict = {}

    def build() -> int:
        state["system"] = build_system(config)
        return state["system"].network.n_sites

    n_sites = 0
    phases = (("build_system", build),
              ("Simulation", lambda: Simulation(state["system"].model, 600.0,
                                                n_ions=state["system"].n_ions, seed=1)),
              ("percolation", lambda: state["system"].percolation(np.zeros(n_sites, bool))))
    worst = 0
    for name, phase in phases:
        _reset_peak()
        t0 = time.perf_counter()
        out = phase()
        if name == "build_system":
            n_sites = out
        elif name == "Simulation":
            state["sim"] = out
        rss, peak = _rss()
        worst = max(worst, peak - base)
        print(f"{lattice} {n}^3 ({n_sites} sites, {occupancy}): {name:<12} peak "
              f"{(peak - base) / n_sites:6.0f} B/site, kept {(rss - base) / n_sites:6.0f} B/site, "
              f"{time.perf_counter() - t0:6.1f} s", flush=True)
    print(f"construction peak: {worst / n_sites:.0f} B/site ({worst / 2**20:.0f} MiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--construction", nargs=2, metavar=("LATTICE", "N"),
                    help="peak resident memory of building one N x N x N system, per phase")
    ap.add_argument("--occupancy", choices=["vacancy", "half", "default"], default="half",
                    help="with --construction: one vacancy, half filling or the source's default")
    args = ap.parse_args()
    if args.construction:
        construction(args.construction[0], int(args.construction[1]), args.occupancy)
        return
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
