#!/usr/bin/env python
"""Which Ge/P arrangement on the LGPS 4d sites: computed, not assumed.

    python scripts/lgps_gep_order.py [--arrangements 3] [--threads 1] [--out data/parametrize/lgps]

The builtin ``lgps`` framework has Ge and P mixed 1:1 on the 4d site (as refined). A lattice model
needs one ordered Ge2P2 arrangement per cell. Every way of putting 2 Ge and 2 P on the cell's four
4d sites is built, symmetry-equivalent ones are merged (pymatgen StructureMatcher on the framework
atoms), and each distinct ordering is relaxed with the same few random Li20 arrangements (Li on
the builtin's sites, no two Li closer than its exclusion distance) with CHGNet at fixed cell;
the ordering with the lowest mean energy is written as ``lgps_ordered.cif`` (Li sites with the
builtin's partial occupancies, for ``kmc parametrize``). Every relaxation is cached in
``--out/gep_cache``; ``gep_order.json`` holds the energies and the provenance.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arrangements", type=int, default=3, help="random Li20 arrangements per ordering")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="data/parametrize/lgps")
    args = ap.parse_args(argv)

    from ase import Atoms
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure
    from pymatgen.io.cif import CifWriter

    from kmc.config import Config
    from kmc.engine.model import ION
    from kmc.engine.simulation import Simulation
    from kmc.files import atomic_write_text
    from kmc.parametrize.calculators import get_calculator
    from kmc.parametrize.neb import relax
    from kmc.runs.system import build_system
    from kmc.system.frameworks import load_framework

    out = Path(args.out)
    cache = out / "gep_cache"
    cache.mkdir(parents=True, exist_ok=True)
    fw = load_framework("lgps")
    s = fw.structure
    mixed = [i for i, site in enumerate(s) if "Ge" in {e.symbol for e in site.species.elements}]
    assert len(mixed) == 4, mixed
    # distinct Ge2P2 orderings of the framework
    orderings: list[tuple[tuple[int, ...], Structure]] = []
    matcher = StructureMatcher(primitive_cell=False, scale=False, attempt_supercell=False)
    for ge in itertools.combinations(range(4), 2):
        t = s.copy()
        for k, i in enumerate(mixed):
            t.replace(i, "Ge" if k in ge else "P", properties=s[i].properties)
        if not any(matcher.fit(t, o) for _, o in orderings):
            orderings.append((ge, t))
    print(f"{len(orderings)} distinct Ge2P2 orderings: {[g for g, _ in orderings]}", file=sys.stderr)
    # the same random Li arrangements (valid under the builtin's exclusion) for every ordering
    system = build_system(Config.from_dict({"lattice": {"builtin": "lgps", "supercell": [1, 1, 1]}}))
    net = system.network
    li_sets = []
    for seed in range(args.arrangements):
        sim = Simulation(system.model, 600.0, n_ions=system.n_ions, seed=seed)
        li_sets.append(np.flatnonzero(sim.occupancy == ION))
    backend = get_calculator("chgnet", threads=args.threads, quiet=True)
    rows = []
    for ge, t in orderings:
        energies = []
        for a, occ in enumerate(li_sets):
            f = cache / f"ge{''.join(map(str, ge))}_li{a}.json"
            if f.is_file():
                energies.append(json.loads(f.read_text())["energy_eV"])
                continue
            fixed = [site for site in t if fw.mobile not in {e.symbol for e in site.species.elements}]
            atoms = Atoms([x.specie.symbol for x in fixed] + ["Li"] * len(occ),
                          positions=np.vstack([[x.coords for x in fixed], np.asarray(net.positions)[occ]]),
                          cell=t.lattice.matrix, pbc=True)
            t0 = time.perf_counter()
            relaxed, steps = relax(atoms, backend.calculator, 0.05, 500, f"Ge{ge} Li{a}")
            relaxed.calc = backend.calculator
            e = float(relaxed.get_potential_energy())
            atomic_write_text(f, json.dumps({"ge_sites": list(ge), "li_sites": occ.tolist(), "energy_eV": e,
                                             "steps": steps, "wall_s": time.perf_counter() - t0}))
            energies.append(e)
            print(f"ordering Ge{ge}, Li arrangement {a}: {e:.4f} eV ({steps} steps)", file=sys.stderr)
        rows.append({"ge_sites": list(ge), "energies_eV": energies, "mean_eV": float(np.mean(energies))})
    best = min(rows, key=lambda r: r["mean_eV"])
    t = dict(orderings)[tuple(best["ge_sites"])]
    CifWriter(t, symprec=0.01).write_file(out / "lgps_ordered.cif")
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    sg = SpacegroupAnalyzer(Structure.from_file(out / "lgps_ordered.cif"), symprec=0.01).get_space_group_symbol()
    result = {"orderings": rows, "chosen": best["ge_sites"], "space_group_of_chosen": sg,
              "relative_mean_energies_meV_per_cell": {str(r["ge_sites"]): 1000 * (r["mean_eV"] - best["mean_eV"])
                                                      for r in rows},
              "calculator": backend.provenance, "li_arrangements": [o.tolist() for o in li_sets],
              "relaxation": {"fmax_eV_A": 0.05, "max_steps": 500, "cell": "fixed (builtin lgps)"},
              "command": "python scripts/lgps_gep_order.py " + " ".join(argv or sys.argv[1:])}
    atomic_write_text(out / "gep_order.json", json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("chosen", "space_group_of_chosen",
                                             "relative_mean_energies_meV_per_cell")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
