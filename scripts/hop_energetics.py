#!/usr/bin/env python
"""Does a computed model's lattice Hamiltonian get the energy of single hops right?

    python scripts/hop_energetics.py [--model llzo-cubic]

A held-out check of ``kmc parametrize``'s fit on the quantity kMC rates depend on: for every NEB
band behind the model (its data file's ``neb``: configuration, from-site, to-site), the energy
change of that hop predicted by the fitted Hamiltonian (site, pair and dopant terms of the
arrangement after the hop minus before; the composition is unchanged) against the band's own
energy change between its relaxed endpoints (the calculator's, at the parent cell). The bands were
not used in the fit. Also printed: each band's relaxed hop length against the lattice hop length
(how far the relaxed endpoints sit from the lattice sites) and its barriers.

The two energies are not the same quantity: the fit is to cell-relaxed total energies of whole
arrangements, the band to fixed-cell endpoints that may relax off their sites. A model whose pair
Hamiltonian describes single hops gives differences within its CV error per ion of each other.
``kmc parametrize`` stores the same check in the model (``hop_energy_check`` in data.json, per band
``hamiltonian_dE_eV``; ``[provenance] hop_energy_check_eV``); this script computes it another way
(from the configurations' feature counts), so each checks the other.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from kmc.parametrize.lattice import Configuration, DopantSpec, load_problem
from kmc.system.frameworks import computed_data


def hamiltonian_energy(problem, data: dict, excluded: set[int], cfg: Configuration) -> float:
    """The fitted Hamiltonian's energy of ``cfg`` without its composition part (the site, pair and
    dopant terms; constant for a hop)."""
    terms = data["fit"]["terms"]
    f = problem.features(cfg)
    e = sum(terms.get(f"site:{c}", {"value_eV": 0.0})["value_eV"] * n
            for c, n in zip(problem.class_names, f["class"]))
    e += sum(terms.get(f"pair:{problem.orbit_name(o)}", {"value_eV": 0.0})["value_eV"] * n
             for o, n in enumerate(f["pair"]) if o not in excluded)
    e += sum(terms.get(f"dopant:{problem.dopant_orbit_name(o)}", {"value_eV": 0.0})["value_eV"] * n
             for o, n in enumerate(f["dopant"]))
    return float(e)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="llzo-cubic", help="builtin computed model (default llzo-cubic)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)
    data = computed_data(args.model)
    if data is None:
        print(f"{args.model!r} is not a builtin computed model", file=sys.stderr)
        return 2
    a = data["problem_args"]
    problem = load_problem(a["structure"], a["mobile"], tuple(a["supercell"]) if a["supercell"] else None,
                           a["hop_cutoff_A"], a["interaction_cutoff_A"], a["exclusion_cutoff_A"],
                           [DopantSpec(**x) for x in a["dopants"]])
    excluded = {o for o in range(len(problem.orbits)) if problem.orbit_name(o) in data["computed_exclusions"]}
    # a band names its configuration by its index in the run that computed it (joined runs: source)
    index = {(c.get("source"), c.get("source_index", k)): k for k, c in enumerate(data["configurations"])}
    rows = []
    for hop, v in data["neb"].items():
        for b in v["bands"]:
            k = index.get((b.get("source"), b["configuration"]))
            if k is None:  # a joined band whose configuration this run already had
                continue
            c = data["configurations"][k]
            occ = list(c["fitted_occupied"] or c["occupied"])
            dop = [tuple(x) for x in c["dopants"]]
            s, d = b["from_site"], b["to_site"]
            before = Configuration(sorted(occ), dop)
            after = Configuration(sorted([x for x in occ if x != s] + [d]), dop)
            dH = hamiltonian_energy(problem, data, excluded, after) - hamiltonian_energy(problem, data, excluded, before)
            rows.append({"hop": hop, "configuration": k, "source": b.get("source"), "band_dE_eV": b["dE_eV"],
                         "hamiltonian_dE_eV": dH, "barrier_forward_eV": b["barrier_forward_eV"],
                         "barrier_backward_eV": b["barrier_backward_eV"], "relaxed_path_A": b["path_A"][-1],
                         "relaxed_hop_A": b["hop_length_A"]})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{args.model}: hop energy changes, fitted Hamiltonian vs NEB endpoints ({len(rows)} bands; CV RMSE "
          f"{data['fit']['cv_rmse_meV_per_mobile_ion']:.1f} meV per ion)\n")
    print("| hop class | configuration | band ΔE (eV) | Hamiltonian ΔE (eV) | difference | barriers fwd/bwd (eV) "
          "| relaxed path / hop (Å) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['hop']} | {r['configuration']} | {r['band_dE_eV']:+.3f} | {r['hamiltonian_dE_eV']:+.3f} | "
              f"{r['hamiltonian_dE_eV'] - r['band_dE_eV']:+.3f} | {r['barrier_forward_eV']:.3f}/"
              f"{r['barrier_backward_eV']:.3f} | {r['relaxed_path_A']:.2f} / {r['relaxed_hop_A']:.2f} |")
    diff = np.array([r["hamiltonian_dE_eV"] - r["band_dE_eV"] for r in rows])
    print(f"\nHamiltonian minus band: mean {diff.mean():+.3f} eV, RMS {np.sqrt((diff ** 2).mean()):.3f} eV, "
          f"range {diff.min():+.3f} to {diff.max():+.3f} eV")
    return 0


if __name__ == "__main__":
    sys.exit(main())
