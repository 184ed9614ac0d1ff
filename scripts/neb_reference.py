"""Run kmc's NEB on the public tetragonal-LLZO reference paths and compare with GGA and published MLIPs.

The reference folder (endpoints from sai-mat-group/mlips-migration-barriers, GGA barriers from Devi et
al., arXiv:2508.06459) is given on the command line, e.g.::

    python scripts/neb_reference.py REFERENCE_DIR --calculator chgnet --images 5 \
        --cache neb_cache --out src/kmc/parametrize/neb_reference_chgnet.json

Each path's band is cached in ``--cache`` as it finishes (rerun to resume). The published barriers
in the reference CSVs are max(image) - min(endpoints), i.e. the larger of forward and backward; the
output reports that quantity (``barrier_max_eV``) next to forward/backward/E_KRA/dE.
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from pathlib import Path

from kmc.parametrize.calculators import get_calculator
from kmc.parametrize.neb import NEBSettings, neb_path, read_endpoint

PATHS = ("Li7La3Zr2O12_1", "Li7La3Zr2O12_2", "Li7La3Zr2O12_3")
MLIPS = {"CHGNet": "CHGNET/energies.csv", "M3GNet": "M3GNET/energies.csv", "MACE": "MACE/neb_results.csv",
         "Orb-v3": "Orb-v3/energies.csv", "SevenNet": "SevenNet_run_ACTUAL/energies.csv"}


def published(ref: Path, path: str) -> dict:
    """GGA barrier (tabulation) and the five MLIP barriers (CSV final line) of one path."""
    gga = None
    with open(ref / "tabulation_COMPLETE-TABUATION.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["sys_name"] == path:
                gga = float(row["MIGRATION BARRIER(eV)"])
    out = {"GGA": gga}
    for name, rel in MLIPS.items():
        for line in (ref / path / rel).read_text().splitlines():
            if line.startswith("Migration Barrier"):
                out[name] = float(line.split(",")[1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference_dir", type=Path)
    ap.add_argument("--calculator", default="chgnet")
    ap.add_argument("--images", type=int, default=5)
    ap.add_argument("--fmax", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--paths", nargs="*", default=list(PATHS))
    ap.add_argument("--cache", type=Path, default=Path("neb_cache"))
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    backend = get_calculator(a.calculator, threads=a.threads)
    settings = NEBSettings(n_images=a.images, fmax_eV_A=a.fmax)
    rows = []
    for p in a.paths:
        t0 = time.perf_counter()
        res = neb_path(read_endpoint(a.reference_dir / p / "initial" / "POSCAR"),
                       read_endpoint(a.reference_dir / p / "final" / "POSCAR"), backend, settings,
                       cache_dir=a.cache)
        pub = published(a.reference_dir, p)
        same = {k.lower(): v for k, v in pub.items()}.get(a.calculator.lower())  # this calculator's
        bmax = max(res.barrier_forward_eV, res.barrier_backward_eV)
        rows.append({"path": p, "barrier_max_eV": bmax, "GGA_eV": pub["GGA"],
                     "diff_vs_GGA_eV": bmax - pub["GGA"], "published_MLIP_eV": pub,
                     "this_run_wall_s": time.perf_counter() - t0, **res.to_dict()})
        print(f"{p}: max barrier {bmax:.4f} eV (fwd {res.barrier_forward_eV:.4f}, bwd "
              f"{res.barrier_backward_eV:.4f}, E_KRA {res.E_KRA_eV:.4f}, dE {res.dE_eV:.4f}); GGA "
              f"{pub['GGA']}; published {a.calculator} {same}; converged {res.converged}; "
              f"{res.wall_s:.0f} s", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"calculator": a.calculator, "settings": settings.__dict__,
                                 "platform": platform.platform(), "reference": "sai-mat-group/mlips-"
                                 "migration-barriers Dataset-2; GGA: Devi et al., arXiv:2508.06459",
                                 "paths": rows}, indent=1))


if __name__ == "__main__":
    main()
