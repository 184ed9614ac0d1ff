#!/usr/bin/env python
"""SevenNet-0 single-point energies along the converged CHGNet CI-NEB bands of the three public
tetragonal-LLZO vacancy hops (a cheap cross-check of the two potentials, not a SevenNet NEB).

    pip install sevenn            # next to the [mlip] extra; SevenNet-0 weights ship in the wheel
    python scripts/sevennet_on_chgnet_bands.py [--out data/parametrize/neb-reference-chgnet/sevennet_on_chgnet_bands.json]

The bands (``data/parametrize/neb-reference-chgnet/*_chgnet_band.extxyz``: 3 climbing images plus
the CHGNet-relaxed endpoints, written by ``scripts/neb_reference.py --images 3``) are evaluated
image by image; nothing is relaxed with SevenNet, so the numbers are SevenNet's energy profile on
CHGNet's path, not SevenNet's barrier (its own NEB would also relax the endpoints and the path).
"""
from __future__ import annotations

import argparse
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np
from ase.io import read

from kmc.parametrize.calculators import get_calculator
from kmc.parametrize.neb import stored_energy

ROOT = Path(__file__).resolve().parents[1]
BANDS = ROOT / "data/parametrize/neb-reference-chgnet"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(BANDS / "sevennet_on_chgnet_bands.json"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    ref = json.loads((resources.files("kmc.parametrize") / "neb_reference_chgnet.json").read_text())
    backend = get_calculator("sevennet", threads=args.threads, quiet=True)
    out = {"provenance": backend.provenance, "paths": []}
    for p in ref["paths"]:
        images = read(str(BANDS / f"{p['path']}_chgnet_band.extxyz"), index=":")
        chg = [stored_energy(a) for a in images]
        t0 = time.perf_counter()
        e = []
        for a in images:
            a = a.copy()
            a.calc = backend.calculator
            e.append(float(a.get_potential_energy()))
        e = np.array(e)
        out["paths"].append({
            "path": p["path"], "chgnet_eV": chg, "sevennet_eV": e.tolist(),
            "sevennet_barrier_max_on_chgnet_band_eV": float(e.max() - e[[0, -1]].min()),
            "sevennet_dE_on_chgnet_band_eV": float(e[-1] - e[0]),
            "chgnet_barrier_max_eV": p["barrier_max_eV"], "GGA_eV": p["GGA_eV"],
            "published_SevenNet_NEB_eV": p["published_MLIP_eV"]["SevenNet"],
            "wall_s": time.perf_counter() - t0})
        r = out["paths"][-1]
        print(f"{p['path']}: SevenNet on the CHGNet band {r['sevennet_barrier_max_on_chgnet_band_eV']:.3f} eV "
              f"(dE {r['sevennet_dE_on_chgnet_band_eV']:+.3f}); CHGNet {p['barrier_max_eV']:.3f}, GGA "
              f"{p['GGA_eV']:.3f}, published SevenNet NEB {r['published_SevenNet_NEB_eV']:.3f}")
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
