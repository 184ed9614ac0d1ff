"""Engine changes that must not change a number: final-state hashes and instructions per hop.

    python scripts/engine_check.py hashes [--out FILE] [--compare FILE]
    python scripts/engine_check.py dump DIR           # warmed-up engines of the benchmark table
    python scripts/engine_check.py replay FILE        # run one of them (under callgrind)

``hashes`` runs every model of :func:`models` for 2e4 hops from a fixed seed and prints one
SHA-256 per model over the final state: occupancy, clock, displacements, hop counts, squared
displacements, ion sites, class occupation integrals, site totals (the sum tree's leaves), the
total rate and the RNG state.  Run it before and after an engine change (``--out`` saves the
hashes as JSON, ``--compare`` checks against such a file and exits 1 on any difference): every
published number depends on the engine's floating-point results, so an optimisation must keep
them bit-identical.  With ``--debug`` every model also checks the engine's incremental rates
against the numpy recompute (``Simulation.check_rates``) every 500 hops.

``dump`` writes one pickled :class:`~kmc.engine.simulation.Simulation` per row of the
instructions-per-hop table in docs/performance.md, after 2e4 warm-up hops.  ``replay`` loads one
and runs 2e4 more hops; under callgrind, counting only the engine's hop loop::

    valgrind --tool=callgrind --toggle-collect='*Engine__run*' \\
        python scripts/engine_check.py replay DIR/sc32_nn.pkl

Instructions per hop = the Ir total / 2e4.  Both builds replay the same pickles, so they start
from the same state.  ``replay --work`` prints the engine's work counters per hop instead.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys

import numpy as np

from kmc.config import Config
from kmc.engine.model import ION, RateModel
from kmc.engine.simulation import Simulation
from kmc.runs.system import build_system
from kmc.system.lattices import teaching_lattice
from kmc.system.network import SiteNetwork

HOPS = 20_000
LLZO_TABLE = [[2.5, 0.10], [3.0, 0.05], [4.0, 0.02]]  # scripts/bench_engine.py's benchmark shells


def lattice(name: str, L: int, **kw) -> SiteNetwork:
    tl = teaching_lattice(name, 1.0)
    kw.setdefault("hop_cutoff_A", 1.01 * tl.nn_distance_A)
    kw.setdefault("site_labels", ["site"] * len(tl.structure))
    return SiteNetwork.from_structure(tl.structure, "Li", (L, L, L), **kw)


def sc(L: int, J: float = 0.0, **kw) -> RateModel:
    """scripts/bench_engine.py's simple cubic: E_KRA 0.25 eV, optional nn pair energy J."""
    net = lattice("sc", L, interaction_cutoff_A=1.01 if J else 0.0)
    return RateModel(net, 1e13, 0.25, mobile_mobile=[(1.01, J)] if J else [], **kw)


def llzo(cells: int, builtin: str = "llzo-cubic-latticegas", shells: bool = False):
    extra = f"[model.interactions_eV]\nmobile_mobile = {LLZO_TABLE}\n" if shells else ""
    system = build_system(Config.from_toml(
        f'[lattice]\nbuiltin = "{builtin}"\nsupercell = [{cells}, {cells}, {cells}]\n{extra}'))
    return system.model, dict(n_ions=system.n_ions)


def knockoffs():
    """tests/test_engine.py's knock-off model on 4^3 bcc cells: corner ions pushed by
    interstitials along <111>."""
    net = lattice("bcc", 4, site_labels=["L", "I"], hop_cutoff_A=0.87)
    net = net.with_interstitialcy(["I"], ["L"], max_angle_deg=5.0)
    barriers = [0.15 if n.startswith("knockoff") else 0.35 for n in net.event_class_names]
    occ = np.zeros(net.n_sites, np.int8)
    occ[net.site_class == 0] = ION
    occ[np.flatnonzero(net.site_class == 1)[:10]] = ION
    return RateModel(net, 1e13, barriers, site_energy_eV=[0.0, 0.3]), dict(occupancy=occ)


def models():
    """(name, temperature_K, model, Simulation keywords) of every checked model."""
    n32 = 32 ** 3
    yield "constant rates, half-filled", 600.0, sc(32), dict(n_ions=n32 // 2)
    yield "constant rates, single vacancy", 600.0, sc(32), dict(n_ions=n32 - 1)
    yield "constant rates, dilute", 600.0, sc(16), dict(n_ions=40)
    yield "nn interaction, half-filled", 600.0, sc(32, 0.05), dict(n_ions=n32 // 2)
    yield "nn interaction, single vacancy", 600.0, sc(32, 0.05), dict(n_ions=n32 - 1)
    yield "field", 600.0, sc(16, field_V_per_A=(0.05, 0.0, 0.0)), dict(n_ions=2048)
    bcc = lattice("bcc", 6, site_labels=["A", "B"], interaction_cutoff_A=1.01)
    yield "two shells, site classes, field", 700.0, RateModel(
        bcc, 1e13, 0.2, site_energy_eV=[0.0, 0.07], mobile_mobile=[(0.87, 0.04), (1.01, -0.015)],
        field_V_per_A=(0.01, 0.0, 0.0)), dict(n_ions=200)
    yield "class energies", 700.0, RateModel(lattice("bcc", 6, site_labels=["A", "B"]), 1e13, 0.2,
                                             site_energy_eV=[0.0, 0.07]), dict(n_ions=200)
    offsets = np.random.default_rng(5).normal(0.0, 0.03, 16 ** 3)
    yield "per-site offsets, nn interaction", 600.0, sc(16, 0.05, site_energy_offset_eV=offsets), \
        dict(n_ions=1500)
    fcc = lattice("fcc", 4, exclusion_distance_A=0.75, interaction_cutoff_A=1.01)
    blocked = np.zeros(fcc.n_sites, bool)
    blocked[np.random.default_rng(0).choice(fcc.n_sites, 12, replace=False)] = True
    yield "exclusions, blockers, interactions", 700.0, RateModel(
        fcc, 1e13, 0.3, mobile_mobile=[(0.75, 0.04), (1.01, 0.03)],
        mobile_blocker=[(1.01, -0.05)]), dict(n_ions=30, blocked=blocked)
    yield "c-LLZO lattice gas 2x2x2", 300.0, *llzo(2)
    yield "c-LLZO lattice gas 2x2x2, 3 shells", 300.0, *llzo(2, shells=True)
    yield "c-LLZO llzo-cubic 2x2x2 (interacting builtin)", 600.0, *llzo(2, "llzo-cubic")
    yield "knock-offs", 900.0, *knockoffs()


def state_hash(sim: Simulation) -> str:
    h = hashlib.sha256()
    st = sim.engine.state
    for key in ("occ", "clock", "disp", "hops", "sumsq", "ion_site", "ion_at", "counters",
                "class_n", "class_t", "class_tlast"):
        h.update(key.encode())
        h.update(np.ascontiguousarray(st[key]).tobytes())
    h.update(np.ascontiguousarray(sim.engine.site_totals).tobytes())
    h.update(np.float64(sim.engine.total_rate).tobytes())
    h.update(json.dumps(sim.engine.bit_generator.state, sort_keys=True, default=str).encode())
    return h.hexdigest()


def hashes(debug: bool) -> dict:
    out = {}
    for name, T, model, kw in models():
        sim = Simulation(model, T, seed=11, **kw)
        if debug:
            for _ in range(HOPS // 500):
                sim.run(500)
                sim.check_rates()
        else:
            sim.run(HOPS)
        out[name] = state_hash(sim)
        print(f"{out[name][:16]}  {name}", flush=True)
    return out


def table():
    """(file stem, temperature, model, keywords) of the rows of the instructions/hop table."""
    yield "sc32_half", 600.0, sc(32), dict(n_ions=32 ** 3 // 2)
    yield "sc32_nn", 600.0, sc(32, 0.05), dict(n_ions=32 ** 3 // 2)
    for L in (10, 22, 46):
        yield f"sc{L}_vacancy", 600.0, sc(L), dict(n_ions=L ** 3 - 1)
    yield "llzo4", 300.0, *llzo(4)
    yield "llzo4_shells", 300.0, *llzo(4, shells=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hashes")
    h.add_argument("--out")
    h.add_argument("--compare")
    h.add_argument("--debug", action="store_true")
    d = sub.add_parser("dump")
    d.add_argument("dir")
    r = sub.add_parser("replay")
    r.add_argument("file")
    r.add_argument("--work", action="store_true")
    args = ap.parse_args()
    if args.cmd == "hashes":
        got = hashes(args.debug)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(got, f, indent=1)
        if args.compare:
            with open(args.compare) as f:
                want = json.load(f)
            bad = [k for k in want if got.get(k) != want[k]]
            print(f"{len(want) - len(bad)} of {len(want)} final states identical"
                  + (f"; DIFFERENT: {bad}" if bad else ""))
            sys.exit(1 if bad else 0)
    elif args.cmd == "dump":
        os.makedirs(args.dir, exist_ok=True)
        for stem, T, model, kw in table():
            sim = Simulation(model, T, seed=1, **kw)
            sim.run(HOPS)
            with open(os.path.join(args.dir, stem + ".pkl"), "wb") as f:
                pickle.dump(sim, f)
            print(stem, flush=True)
    else:
        with open(args.file, "rb") as f:
            sim = pickle.load(f)
        sim.engine.reset_work()
        done = sim.run(HOPS)
        if args.work:
            print(json.dumps({k: v / done for k, v in sim.engine.work.items()}))


if __name__ == "__main__":
    main()
