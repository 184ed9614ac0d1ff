#!/usr/bin/env python
"""c-LLZO with its computed lattice model (``kmc parametrize``, CHGNet) against experiment.

    python scripts/llzo_computed_model.py [--model llzo-cubic | PATH/model.toml]
                                          [--quick] [--out llzo_computed]

Runs the computed model unchanged (no parameter is adjusted) at Li7 (the composition it was
fitted at), at Li6.375 (Ta 0.625 on Zr, near the composition of the best-conducting Ta-doped garnets;
the model holds no Ta-Li term, so this only removes Li), and at Li7 started from the tetragonal
order (``[occupancy] start_structure``: the public ordered t-LLZO structure mapped onto the cubic
lattice, as the builtin ``llzo-tetragonal`` does) over a temperature sweep, with adaptive run lengths (``target_rel_err``). A second table
gives the order parameter per site class (:mod:`kmc.analysis.ordering`) against temperature in the
fitted 1x1x1 cell for the same three cases. For every temperature it reports sigma, D*, D_J, the Haven
ratio, the ``diffusive`` flags with the local MSD exponents and fit windows, and the share of Li
on the tetrahedral 24d sites (site class Li1); the Arrhenius fit of sigma*T uses only the
temperatures whose sigma is diffusive. The experimental values are those of the builtin
``llzo-cubic`` data file (with its sources).

Writes ``table.md`` (also printed) and ``results.json`` into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from kmc.analysis.arrhenius import fit_arrhenius
from kmc.config import Config
from kmc.files import jsonable
from kmc.runs.runner import run_config
from kmc.system.frameworks import framework_names, load_framework, load_framework_file

ORDER_TEMPS = {"full": [200, 300, 400, 600, 800, 1200], "quick": [300, 1200]}
MODES = {
    "full": dict(temps=[300, 350, 400, 500, 600, 800], replicas=8, hops_per_ion=200,
                 target_rel_err=0.05, max_hops_per_ion=12800, supercell=[2, 2, 2]),
    "quick": dict(temps=[500, 800], replicas=3, hops_per_ion=40, target_rel_err=None,
                  max_hops_per_ion=None, supercell=[1, 1, 1]),
}
#: the ordered t-LLZO arrangement the builtin ``llzo-tetragonal`` starts from (public GGA structure)
T_LLZO = Path(load_framework("llzo-tetragonal").start_structure)
#: (name, [dopants], [occupancy] start_structure)
COMPOSITIONS = [("Li7 (fitted composition)", None, None),
                ("Li6.375 (Ta 0.625 on Zr)", {"Ta": {"site": "Zr1", "per_formula_unit": 0.625}}, None),
                ("Li7 started from the tetragonal order", None, T_LLZO)]


def lattice_of(model: str) -> dict:
    """``[lattice]`` source keys of a builtin model name or a model file path."""
    if model in framework_names():
        return {"builtin": model}
    return {"framework_file": str(Path(model).resolve())}


def config(model: str, temps, mode: dict, seed: int, dopants, start: Path | None = None) -> Config:
    run = {"temperatures_K": [float(t) for t in temps], "hops_per_ion": mode["hops_per_ion"],
           "equilibration_hops_per_ion": 50, "replicas": mode["replicas"], "seed": seed}
    if mode["target_rel_err"]:
        run.update(target_rel_err=mode["target_rel_err"], max_hops_per_ion=mode["max_hops_per_ion"])
    data = {"lattice": {**lattice_of(model), "supercell": mode["supercell"]},
            "run": run}
    if dopants:
        data["dopants"] = dopants
    if start is not None:
        data["occupancy"] = {"start_structure": str(start)}
    return Config.from_dict(data)


def summarize(name: str, res) -> dict:
    rows = []
    for r in res.results:
        occ = r["occupation_per_class"]
        rows.append({k: r.get(k) for k in (
            "temperature_K", "sigma_S_cm", "sigma_err_S_cm", "D_tracer_cm2_s", "D_tracer_err_cm2_s",
            "D_jump_cm2_s", "D_jump_err_cm2_s", "haven_ratio", "haven_ratio_err", "diffusive",
            "diffusive_D_tracer", "diffusive_D_jump", "local_exponent_D_tracer", "local_exponent_D_jump",
            "fit_start_D_jump_s", "fit_end_D_jump_s", "hops_per_ion_used", "stop_reason", "hops_per_s")}
                    | {"occupation_per_class": occ})
    diff = [r for r in rows if r["diffusive_D_jump"]]
    fit = None
    if len(diff) >= 3:
        T = np.array([r["temperature_K"] for r in diff])
        s = np.array([r["sigma_S_cm"] for r in diff])
        e = np.array([r["sigma_err_S_cm"] for r in diff])
        f = fit_arrhenius(T, s, e, times_T=True, basis="sigma")
        lo, hi = (float(v) for v in f.interval(300.0, 0.95))
        fit = {"Ea_eV": f.Ea_eV, "Ea_err_eV": f.Ea_err_eV, "sigma_300K_S_cm": float(f.predict(300.0)),
               "sigma_300K_ci_S_cm": [lo, hi], "T_range_K": [float(T.min()), float(T.max())],
               "n_temperatures": len(diff), "reduced_chi2": f.reduced_chi2}
    return {"name": name, "formula": res.formula, "li_pfu": res.mobile_ions_per_formula_unit,
            "n_ions": res.network["n_ions"], "supercell": res.network["supercell"], "rows": rows,
            "arrhenius_diffusive": fit}


def _g(x, d=2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{d}e}"


def markdown(out: list[dict], exp: dict, model_note: str) -> str:
    lines = [model_note, "",
             "| composition | T (K) | σ (S/cm) ± SE | D* (cm²/s) | Haven | diffusive (D*, D_J) | local exponent D_J | "
             "Li on 24d (share of 24d sites) | hops per ion |", "|---|---|---|---|---|---|---|---|---|"]
    for c in out:
        for r in c["rows"]:
            occ = r["occupation_per_class"]
            lines.append(f"| {c['name']} | {r['temperature_K']:g} | {_g(r['sigma_S_cm'])} ± {_g(r['sigma_err_S_cm'], 1)} | "
                         f"{_g(r['D_tracer_cm2_s'])} | {r['haven_ratio']:.2f} | {r['diffusive_D_tracer']}, "
                         f"{r['diffusive_D_jump']} | {r['local_exponent_D_jump']:.2f} | "
                         f"{occ.get('Li1', float('nan')):.3f} | {r['hops_per_ion_used']:.0f} |")
    lines += ["", "| composition | Ea from σT, diffusive points (eV) | σ(300 K) [95 % CI] (S/cm) | T range (K) | "
              "expt σ(RT) (S/cm) | expt Ea (eV) | model / expt at 300 K |", "|---|---|---|---|---|---|---|"]
    for c in out:
        a = c["arrhenius_diffusive"]
        if a is None:
            lines.append(f"| {c['name']} | fewer than 3 diffusive temperatures | | | {exp.get('sigma_300K_S_cm')} | "
                         f"{exp.get('Ea_eV')} | |")
            continue
        ratio = a["sigma_300K_S_cm"] / exp["sigma_300K_S_cm"] if exp.get("sigma_300K_S_cm") else float("nan")
        lines.append(f"| {c['name']} | {a['Ea_eV']:.3f} ± {a['Ea_err_eV']:.3f} | {_g(a['sigma_300K_S_cm'])} "
                     f"[{_g(a['sigma_300K_ci_S_cm'][0])}, {_g(a['sigma_300K_ci_S_cm'][1])}] | "
                     f"{a['T_range_K'][0]:g}-{a['T_range_K'][1]:g} | {exp.get('sigma_300K_S_cm')} | "
                     f"{exp.get('Ea_eV')} | {ratio:.3g} |")
    lines += ["", f"Experiment (builtin llzo-cubic data file): {exp.get('reference', '')}"]
    return "\n".join(lines)


def ordering(model: str, quick: bool, seed: int) -> tuple[list[dict], str]:
    """Li filling and order parameter per site class against T in the fitted cell (1x1x1), where
    tetragonal LLZO's order fits (8 of 24 24d sites filled, one orientation); Li7 and Li6.375."""
    from kmc.runs.ordering import measure_ordering

    out, lines = [], ["| composition | T (K) | 24d filled | order parameter 24d | order parameter 96h |",
                      "|---|---|---|---|---|"]
    for k, (name, dop, start) in enumerate(COMPOSITIONS):
        data = {"lattice": {**lattice_of(model), "supercell": [1, 1, 1]},
                "run": {"temperatures_K": [float(t) for t in ORDER_TEMPS["quick" if quick else "full"]],
                        "hops_per_ion": 500 if quick else 16000, "equilibration_hops_per_ion": 500 if quick else 4000,
                        "replicas": 4 if quick else 6, "seed": seed + 10 + k}}
        if dop:
            data["dopants"] = dop
        if start is not None:
            data["occupancy"] = {"start_structure": str(start)}
        rows = measure_ordering(Config.from_dict(data), samples=400)
        for r in rows:
            f, eta = r["filling"], r["order_parameter"]
            lines.append(f"| {name} | {r['temperature_K']:g} | {f['Li1'][0]:.3f} ± {f['Li1'][1]:.3f} | "
                         f"{eta['Li1'][0]:.3f} ± {eta['Li1'][1]:.3f} | {eta['Li2'][0]:.3f} ± {eta['Li2'][1]:.3f} |")
        out.append({"composition": name, "rows": rows})
    return out, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="llzo-cubic",
                    help="builtin model name or model.toml path (default: the shipped computed llzo-cubic)")
    ap.add_argument("--quick", action="store_true", help="two temperatures, 1x1x1 cell: seconds")
    ap.add_argument("--out", default="llzo_computed")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    mode = MODES["quick" if args.quick else "full"]
    model = args.model
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    out = []
    for k, (name, dop, start) in enumerate(COMPOSITIONS):
        t1 = time.perf_counter()
        res = run_config(config(model, mode["temps"], mode, args.seed + k, dop, start))
        out.append(summarize(name, res))
        print(f"{name}: {time.perf_counter() - t1:.0f} s", file=sys.stderr)
    exp = load_framework("llzo-cubic").experiment
    fw = load_framework(model) if model in framework_names() else load_framework_file(model)
    prov = fw.data["provenance"]
    note = (f"Model: {model} ({prov.get('calculator')}, {prov.get('n_configurations_fitted')} of "
            f"{prov.get('n_configurations')} configurations fitted, CV RMSE {prov.get('cv_rmse_meV_per_mobile_ion')} "
            f"meV per Li; {prov.get('date')}); run mode {'quick' if args.quick else 'full'}, "
            f"{mode['replicas']} replicas, target relative error {mode['target_rel_err']}.")
    table = markdown(out, exp, note)
    order, order_table = ordering(model, args.quick, args.seed)
    table += ("\n\nOrdering in the fitted 1x1x1 cell (order parameter per site class, kmc.analysis.ordering: 1 = "
              "every site of the class always full or always empty, 0 = disorder; tetragonal LLZO: 24d "
              "filled 1/3, order parameter 1):\n\n" + order_table)
    (out_dir / "table.md").write_text(table + "\n", encoding="utf-8")
    (out_dir / "results.json").write_text(json.dumps(jsonable(
        {"model": str(model), "mode": "quick" if args.quick else "full", "seed": args.seed,
         "compositions": out, "ordering": order, "experiment": exp, "wall_s": time.perf_counter() - t0}), indent=1),
        encoding="utf-8")
    print(table)
    print(f"\nwritten to {out_dir}/ in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
