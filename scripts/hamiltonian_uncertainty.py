#!/usr/bin/env python
"""How far a computed model's conductivity moves within its fitted Hamiltonian's own uncertainty.

    python scripts/hamiltonian_uncertainty.py [--model llzo-cubic] [--fits 16] [--quick]
                                              [--out hamiltonian_uncertainty] [--seed 2026]

``kmc parametrize`` stores its bootstrap fits (``fit.bootstrap_values_eV`` in the model's data file:
the Hamiltonian refitted on configurations drawn with replacement; their spread is each term's
bootstrap error). For ``--fits`` of them, evenly spaced through the stored ones, the model is
rewritten with those term values (:func:`kmc.parametrize.pipeline.rewrite_model`: the same lattice,
exclusions, dopant mapping and NEB barriers) and σ is measured at 300 K for each composition below,
with the same run settings and seeds as for the shipped fit (common random numbers: the spread is
the Hamiltonian's, not the sampling's). Reported per composition: σ of the shipped fit, the median,
16-84 % range and extremes over the bootstrap fits, their ratio max/min, and how many runs were
diffusive. Nothing is fitted to experiment; this measures what the fit does not pin down.

Writes ``results.json`` and ``table.md`` (also printed) into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kmc.config import Config
from kmc.files import jsonable
from kmc.parametrize.pipeline import rewrite_model
from kmc.runs.runner import run_config
from kmc.system.frameworks import computed_data

COMPOSITIONS = [
    ("Li7La3Zr2O12", None),
    ("Li6.25Ga0.25La3Zr2O12", {"Ga": {"site": "Li1", "per_formula_unit": 0.25}}),
    ("Li6.4La3Zr1.4Ta0.6O12", {"Ta": {"site": "Zr", "per_formula_unit": 0.6}}),
]
MODES = {
    "full": dict(supercell=[2, 2, 2], temperature_K=300.0, replicas=8, hops_per_ion=200,
                 target_rel_err=0.1, max_hops_per_ion=12800),
    "quick": dict(supercell=[1, 1, 1], temperature_K=600.0, replicas=2, hops_per_ion=40,
                  target_rel_err=None, max_hops_per_ion=None),
}


def measure(model_file: Path, dopants, mode: dict, seed: int) -> dict:
    run = {"temperatures_K": [mode["temperature_K"]], "hops_per_ion": mode["hops_per_ion"],
           "equilibration_hops_per_ion": 50, "replicas": mode["replicas"], "seed": seed}
    if mode["target_rel_err"]:
        # sigma comes from D_J: extend until D_J (not only D*) is diffusive and known to the target
        run.update(target_rel_err=mode["target_rel_err"], max_hops_per_ion=mode["max_hops_per_ion"],
                   converge_on=["D_jump"])
    data = {"lattice": {"framework_file": str(model_file), "supercell": mode["supercell"]}, "run": run}
    if dopants:
        data["dopants"] = dopants
    r = run_config(Config.from_dict(data)).results[0]
    return {"sigma_S_cm": r["sigma_S_cm"], "sigma_err_S_cm": r["sigma_err_S_cm"],
            "diffusive": bool(r["diffusive_D_jump"]), "hops_per_ion": r["hops_per_ion_used"]}


def summarize(rows: dict, model: str, mode: dict, seed: int, n_fits: int, wall_s: float) -> tuple[dict, str]:
    """Per composition: the shipped fit's sigma and the statistics over the diffusive fits; the table."""
    summary = {}
    for name, r in rows.items():
        # a fit whose run is not diffusive at the hop limit has no honest sigma: left out, counted
        s = np.array([x["sigma_S_cm"] for x in r["fits"] if x["diffusive"]])
        n_diff = f"{len(s)}/{len(r['fits'])}"
        if len(s) < 3:
            summary[name] = {"shipped_S_cm": r["shipped"]["sigma_S_cm"], "diffusive": n_diff}
            continue
        summary[name] = {"shipped_S_cm": r["shipped"]["sigma_S_cm"], "shipped_err_S_cm": r["shipped"]["sigma_err_S_cm"],
                         "shipped_diffusive": r["shipped"]["diffusive"],
                         "median_S_cm": float(np.median(s)), "p16_S_cm": float(np.percentile(s, 16)),
                         "p84_S_cm": float(np.percentile(s, 84)), "min_S_cm": float(s.min()), "max_S_cm": float(s.max()),
                         "max_over_min": float(s.max() / s.min()),
                         "p84_over_p16": float(np.percentile(s, 84) / np.percentile(s, 16)), "diffusive": n_diff}
    T = mode["temperature_K"]
    lines = [f"{model}: σ({T:g} K) under {n_fits} bootstrap fits of its Hamiltonian "
             f"({'x'.join(map(str, mode['supercell']))} cells, {mode['replicas']} replicas, seed {seed}; "
             f"same NEB barriers; {wall_s:.0f} s)", "",
             "| composition | shipped fit (S/cm) | median of fits | 16-84 % of fits | min-max of fits | max/min | "
             "fits diffusive (the statistics use only these) |",
             "|---|---|---|---|---|---|---|"]
    for name, v in summary.items():
        if "median_S_cm" not in v:
            lines.append(f"| {name} | {v['shipped_S_cm']:.3g} | fewer than 3 fits diffusive | | | | {v['diffusive']} |")
            continue
        lines.append(f"| {name} | {v['shipped_S_cm']:.3g} ± {v['shipped_err_S_cm']:.2g} | {v['median_S_cm']:.3g} | "
                     f"{v['p16_S_cm']:.3g}-{v['p84_S_cm']:.3g} | {v['min_S_cm']:.3g}-{v['max_S_cm']:.3g} | "
                     f"{v['max_over_min']:.3g} | {v['diffusive']} |")
    return summary, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="llzo-cubic", help="builtin computed model (default llzo-cubic)")
    ap.add_argument("--fits", type=int, default=16, help="bootstrap fits to run (default 16)")
    ap.add_argument("--quick", action="store_true", help="small runs for the test suite")
    ap.add_argument("--out", default="hamiltonian_uncertainty", help="output directory")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--from", dest="from_file", metavar="RESULTS",
                    help="summarize an earlier run's results.json again instead of running")
    args = ap.parse_args(argv)
    if args.from_file:
        old = json.loads(Path(args.from_file).read_text())
        summary, table = summarize(old["rows"], old["model"], old["settings"], old["seed"],
                                   len(old["bootstrap_indices"]), old["wall_s"])
        print(table)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(table + "\n")
        (out / "results.json").write_text(json.dumps(jsonable({**old, "summary": summary}), indent=1))
        return 0
    mode = MODES["quick" if args.quick else "full"]
    data = computed_data(args.model)
    if data is None:
        print(f"{args.model} is not a computed model (no data file); use e.g. llzo-cubic.", file=sys.stderr)
        return 2
    boots = np.array(data["fit"].get("bootstrap_values_eV") or [])
    if len(boots) < args.fits:
        print(f"{args.model}'s data file holds {len(boots)} bootstrap fits, fewer than --fits {args.fits}; "
              "rerun its command (from the cache it recomputes nothing).", file=sys.stderr)
        return 2
    picks = np.linspace(0, len(boots) - 1, args.fits).round().astype(int)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = {name: {"shipped": None, "fits": []} for name, _ in COMPOSITIONS}
    with tempfile.TemporaryDirectory() as tmp:
        variants = [("shipped", None)] + [(int(k), boots[k]) for k in picks]
        for label, values in variants:
            f = Path(tmp) / f"model_{label}.toml"
            f.write_text(rewrite_model(data, values))
            got = []
            for name, dopants in COMPOSITIONS:
                m = measure(f, dopants, mode, args.seed)
                got.append(f"{name} {m['sigma_S_cm']:.3g}")
                if label == "shipped":
                    rows[name]["shipped"] = m
                else:
                    rows[name]["fits"].append({"bootstrap_index": label, **m})
            print(f"fit {label}: {', '.join(got)} S/cm ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    summary, table = summarize(rows, args.model, mode, args.seed, len(picks), time.perf_counter() - t0)
    print(table)
    (out / "table.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps(jsonable({
        "model": args.model, "mode": "quick" if args.quick else "full", "settings": mode, "seed": args.seed,
        "bootstrap_indices": picks.tolist(), "rows": rows, "summary": summary,
        "wall_s": time.perf_counter() - t0}), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
