#!/usr/bin/env python
"""Model vs experiment for the materials kmc is named for: one table, every number measured with
the MSD-slope estimator in the diffusive regime (issue 17).

    python scripts/validate_frameworks.py [--quick] [--out validation_frameworks] [--seed 2026]

Rows (the builtin models, unchanged: nothing here is fitted or adjusted to experiment):

* c-LLZO Li7La3Zr2O12 - builtin ``llzo-cubic``, the computed model (CHGNet lattice Hamiltonian and
  NEB barriers, ``kmc parametrize``; its data file's ``[provenance]`` says how), random start;
* t-LLZO Li7La3Zr2O12 - builtin ``llzo-tetragonal``: the same model started from the ordered
  tetragonal Li7 arrangement (whether it stays ordered is the model's answer);
* Li6.25Ga0.25La3Zr2O12 - ``llzo-cubic`` with Ga on the tetrahedral 24d Li site (each Ga takes a Li
  site and removes two more Li; its computed Ga-Li terms and the 96h sites next to it, which every
  Li relaxed away from, come from the model's ``[dopant_terms]``);
* Li6.4La3Zr1.4Ta0.6O12 - ``llzo-cubic`` with Ta on Zr (one Li less per Ta; its computed Ta-Li
  terms); the supercell holds a whole number of Ta, so the simulated formula is the nearest one
  (printed);
* LGPS Li10GeP2S12 - builtin ``lgps`` (its data-file model: cited barriers; per-axis transport);
* LGPS computed - builtin ``lgps-computed``, the CHGNet model (ordered Ge/P, ``kmc parametrize``;
  ``data/parametrize/lgps/README.md``), with the experiment of the builtin ``lgps``;
* c-LLZO knock-offs - ``data/parametrize/llzo-cubic/runs/knockoff``: llzo-cubic (the same fit and hop
  barriers) plus its computed concerted events (a 96h Li pushes the 24d Li on to another 96h, ``kmc
  parametrize --interstitialcy Li2:Li1:60``), random start.

For each: a temperature sweep with adaptive run length (``target_rel_err``), sigma from the
collective MSD (Nernst-Einstein from D_J), the ``diffusive`` flag and local exponent of every
point, and an Arrhenius fit of sigma*T over the diffusive temperatures only (Ea with its error,
sigma(300 K) with its 95 % interval). Then: the tetragonal/cubic conductivity ratio at 300 K, LGPS
along c vs in the ab plane, a Li-content scan Li(7-x)La3Zr(2-x)Ta(x)O12 at 300 K and 400 K, and
the order parameter per site class (:mod:`kmc.analysis.ordering`) against temperature for Li7,
Li7 from the tetragonal order and Ta-doped Li6.375 in the 1x1x1 cell the model was fitted in.

Writes into --out: ``table.md`` (also printed), ``results.json``, ``arrhenius.png``,
``lgps_axes.png`` and ``li_scan.png``.
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
from kmc.constants import KB_EV_K
from kmc.files import jsonable
from kmc.runs.runner import run_config
from kmc.system.frameworks import load_framework

# Measured values for the doped garnets (no builtin carries them). Each was read in a public
# dataset that gives the primary paper's DOI; the primary papers themselves could not be opened
# with the project's tools, so they are marked as secondary.
EXPT_GA = {"sigma_300K_S_cm": 1.46e-3, "Ea_eV": None,
           "reference": "Li6.25Ga0.25La3Zr2O12 (94.1 % dense): Wu et al., ACS Appl. Mater. Interfaces 9, 1542 "
                        "(2017), doi:10.1021/acsami.6b13902, as tabulated in the llzo_dataset_clean.csv of "
                        "github.com/abd-adhyatma/llzo-improvement (secondary; temperature not given, RT)"}
EXPT_TA = {"sigma_300K_S_cm": 1.0e-3, "Ea_eV": None,
           "reference": "Li6.4La3Zr1.4Ta0.6O12 at 25 C: Li, Han, Wang, Wu, Goodenough, J. Mater. Chem. 22, "
                        "15357 (2012), doi:10.1039/c2jm31413d, as tabulated in OBELiX (github.com/NRC-Mila/"
                        "OBELiX, data/downloads/all.csv; secondary; the Liverpool Ionics Dataset copy lists "
                        "2.06e-3 S/cm at 34 C for the same paper)"}
#: where the Li(7-x)La3Zr(2-x)Ta(x)O12 series of the same paper peaks (same secondary source):
#: x = 0.2..1.0 gives 2.8e-4, 7.3e-4, 9.2e-4, 1.0e-3, 3.2e-4, 1.6e-4 S/cm at x = 0.2, 0.4, 0.5, 0.6, 0.8, 1.0
EXPT_TA_SERIES = {"x": [0.2, 0.4, 0.5, 0.6, 0.8, 1.0],
                  "sigma_S_cm": [2.8e-4, 7.3e-4, 9.2e-4, 1.0e-3, 3.2e-4, 1.6e-4],
                  "reference": "Li et al., J. Mater. Chem. 22, 15357 (2012) via OBELiX (secondary), 25 C"}

#: (name, builtin name or model path, dopants, experiment: a dict, the builtin whose [experiment]
#: applies, or None for the row's own data file)
MATERIALS = [
    ("c-LLZO", "llzo-cubic", None, None),
    ("t-LLZO", "llzo-tetragonal", None, None),
    ("Ga-LLZO", "llzo-cubic", {"Ga": {"site": "Li1", "per_formula_unit": 0.25}}, EXPT_GA),
    ("Ta-LLZO", "llzo-cubic", {"Ta": {"site": "Zr", "per_formula_unit": 0.6}}, EXPT_TA),
    ("LGPS", "lgps", None, None),
    ("LGPS computed", "lgps-computed", None, "lgps"),
    # last, so the rows above keep their seeds: llzo-cubic plus its computed concerted knock-offs
    ("c-LLZO knock-offs", "data/parametrize/llzo-cubic/runs/knockoff/model.toml", None, "llzo-cubic"),
]
REPO = Path(__file__).resolve().parents[1]
NOMINAL = {"c-LLZO": "Li7La3Zr2O12", "t-LLZO": "Li7La3Zr2O12", "Ga-LLZO": "Li6.25Ga0.25La3Zr2O12",
           "Ta-LLZO": "Li6.4La3Zr1.4Ta0.6O12", "LGPS": "Li10GeP2S12", "LGPS computed": "Li10GeP2S12",
           "c-LLZO knock-offs": "Li7La3Zr2O12"}

MODES = {
    "full": dict(temps=[300, 350, 400, 500, 600, 800], replicas=8, hops_per_ion=200,
                 target_rel_err=0.05, max_hops_per_ion=12800,
                 supercell={"llzo-cubic": [2, 2, 2], "llzo-tetragonal": [2, 2, 2], "lgps": [3, 3, 2],
                            "lgps-computed": [3, 3, 2], "data/parametrize/llzo-cubic/runs/knockoff/model.toml": [2, 2, 2]},
                 scan_x=[0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0], scan_temps=[300, 400],
                 order_temps=[200, 300, 400, 600, 800, 1200], order_hops=16000, order_replicas=6),
    "quick": dict(temps=[500, 800], replicas=3, hops_per_ion=60, target_rel_err=None,
                  max_hops_per_ion=None,
                  supercell={"llzo-cubic": [1, 1, 1], "llzo-tetragonal": [1, 1, 1], "lgps": [2, 2, 1],
                             "lgps-computed": [2, 2, 1], "data/parametrize/llzo-cubic/runs/knockoff/model.toml": [1, 1, 1]},
                  scan_x=[0.0, 0.5, 1.0], scan_temps=[500], order_temps=[300, 1200], order_hops=300,
                  order_replicas=3),
}


def sweep_config(builtin: str, supercell, temps, mode: dict, seed: int, dopants=None) -> Config:
    run = {"temperatures_K": [float(t) for t in temps], "hops_per_ion": mode["hops_per_ion"],
           "equilibration_hops_per_ion": 50, "replicas": mode["replicas"], "seed": seed}
    if mode["target_rel_err"]:
        run.update(target_rel_err=mode["target_rel_err"], max_hops_per_ion=mode["max_hops_per_ion"])
    source = {"framework_file": str(REPO / builtin)} if builtin.endswith(".toml") else {"builtin": builtin}
    data = {"lattice": {**source, "supercell": list(supercell)}, "run": run}
    if dopants:
        data["dopants"] = dopants
    return Config.from_dict(data)


def sigma_t_fit(T, s, e, ok) -> dict | None:
    """Arrhenius fit of sigma*T over the diffusive points (None below 3 of them)."""
    T, s, e, ok = (np.asarray(v) for v in (T, s, e, ok))
    if ok.sum() < 3:
        return None
    f = fit_arrhenius(T[ok], s[ok], e[ok], times_T=True, basis="sigma")
    lo, hi = (float(v) for v in f.interval(300.0, 0.95))
    return {"Ea_eV": f.Ea_eV, "Ea_err_eV": f.Ea_err_eV, "sigma_300K_S_cm": float(f.predict(300.0)),
            "sigma_300K_ci_S_cm": [lo, hi], "T_range_K": [float(T[ok].min()), float(T[ok].max())],
            "n_temperatures": int(ok.sum()), "reduced_chi2": f.reduced_chi2}


def summarize(name: str, builtin: str, res, expt: dict) -> dict:
    rs = res.results
    row = {"name": name, "builtin": builtin, "nominal_formula": NOMINAL[name], "formula": res.formula,
           "li_pfu": res.mobile_ions_per_formula_unit, "supercell": res.network["supercell"],
           "n_ions": res.network["n_ions"], "dimensionality": res.network["dimensionality"],
           "temperatures_K": [r["temperature_K"] for r in rs]}
    for key in ("sigma_S_cm", "sigma_err_S_cm", "D_tracer_cm2_s", "D_tracer_err_cm2_s", "haven_ratio",
                "diffusive_D_tracer", "diffusive_D_jump", "local_exponent_D_jump", "hops_per_ion_used",
                "hops_per_s", "stop_reason"):
        row[key] = [r.get(key) for r in rs]
    row["occupation_per_class"] = [r["occupation_per_class"] for r in rs]
    for ax in ("xx", "yy", "zz"):
        row[f"D_jump_{ax}"] = [(r[f"D_jump_{ax}_cm2_s"], r[f"D_jump_{ax}_err_cm2_s"]) for r in rs]
    row["fit"] = sigma_t_fit(row["temperatures_K"], row["sigma_S_cm"], row["sigma_err_S_cm"],
                             row["diffusive_D_jump"])
    row["expt"] = expt
    s300 = row["fit"]["sigma_300K_S_cm"] if row["fit"] else None
    row["model_over_expt"] = s300 / expt["sigma_300K_S_cm"] if s300 and expt.get("sigma_300K_S_cm") else None
    return row


def ratio_with_ci(a: dict, b: dict) -> tuple[float, float, float]:
    """sigma_300K of a / of b with a 95 % interval (log-normal errors added in quadrature)."""
    def log_se(fit):
        lo, hi = fit["sigma_300K_ci_S_cm"]
        return (math.log(hi) - math.log(lo)) / (2 * 1.96)
    r = a["sigma_300K_S_cm"] / b["sigma_300K_S_cm"]
    se = math.hypot(log_se(a), log_se(b))
    return r, r * math.exp(-1.96 * se), r * math.exp(1.96 * se)


def lgps_axes(row: dict) -> dict:
    """D_J along c over the ab-plane mean at the lowest diffusive temperature, and Ea per axis from
    the diffusive D_J per axis."""
    T = np.array(row["temperatures_K"])
    ok = np.array(row["diffusive_D_jump"], bool)
    out: dict = {"Ea_axes": {}}
    for ax in ("xx", "yy", "zz"):
        d = np.array([v[0] for v in row[f"D_jump_{ax}"]])
        e = np.array([v[1] for v in row[f"D_jump_{ax}"]])
        good = ok & (d > 0)
        if good.sum() >= 3:
            f = fit_arrhenius(T[good], d[good], e[good], basis="D_jump")
            out["Ea_axes"][ax] = (f.Ea_eV, f.Ea_err_eV)
    i = int(np.flatnonzero(ok)[0]) if ok.any() else 0
    (z, ez), (x, ex), (y, ey) = row["D_jump_zz"][i], row["D_jump_xx"][i], row["D_jump_yy"][i]
    ab, eab = (x + y) / 2, math.hypot(ex, ey) / 2
    r = z / ab
    out.update(T_K=float(T[i]), jump_ratio=r, jump_ratio_err=r * math.hypot(ez / z, eab / ab),
               diffusive=bool(ok[i]))
    return out


def li_scan(mode: dict, seed: int) -> dict:
    points = []
    for j, x in enumerate(mode["scan_x"]):
        dop = {"Ta": {"site": "Zr", "per_formula_unit": x}} if x > 0 else None
        res = run_config(sweep_config("llzo-cubic", mode["supercell"]["llzo-cubic"], mode["scan_temps"], mode,
                                      seed + 100 + j, dop))
        points.append({"x": x, "li_pfu": res.mobile_ions_per_formula_unit, "formula": res.formula,
                       "sigma_S_cm": [r["sigma_S_cm"] for r in res.results],
                       "sigma_err_S_cm": [r["sigma_err_S_cm"] for r in res.results],
                       "haven_ratio": [r["haven_ratio"] for r in res.results],
                       "diffusive_D_jump": [r["diffusive_D_jump"] for r in res.results],
                       "local_exponent_D_jump": [r["local_exponent_D_jump"] for r in res.results]})
    peak = {}
    for k, T in enumerate(mode["scan_temps"]):
        s = [p["sigma_S_cm"][k] for p in points]
        e = [p["sigma_err_S_cm"][k] for p in points]
        i = int(np.argmax(s))
        # a peak inside the range only if it beats both ends by more than two combined SEs
        inside = 0 < i < len(points) - 1 and all(s[i] - s[j] > 2 * math.hypot(e[i], e[j])
                                                  for j in (0, len(points) - 1))
        peak[str(T)] = {"li_pfu": points[i]["li_pfu"], "x": points[i]["x"], "interior": inside}
    return {"temperatures_K": mode["scan_temps"], "points": points, "peak": peak,
            "supercell": mode["supercell"]["llzo-cubic"]}


def ordering(mode: dict, seed: int) -> list[dict]:
    """Filling and order parameter per site class against T, 1x1x1 (the fitted cell)."""
    from kmc.runs.ordering import measure_ordering

    out = []
    for k, (name, builtin, dop) in enumerate([
            ("Li7 (llzo-cubic)", "llzo-cubic", None),
            ("Li7 from the tetragonal order (llzo-tetragonal)", "llzo-tetragonal", None),
            ("Li6.375 (Ta 0.625 on Zr)", "llzo-cubic", {"Ta": {"site": "Zr", "per_formula_unit": 0.625}}),
            ("Li6.25 (Ga 0.25 on 24d)", "llzo-cubic", {"Ga": {"site": "Li1", "per_formula_unit": 0.25}})]):
        data = {"lattice": {"builtin": builtin, "supercell": [1, 1, 1]},
                "run": {"temperatures_K": [float(t) for t in mode["order_temps"]],
                        "hops_per_ion": mode["order_hops"], "equilibration_hops_per_ion": mode["order_hops"] // 4,
                        "replicas": mode["order_replicas"], "seed": seed + 200 + k}}
        if dop:
            data["dopants"] = dop
        out.append({"composition": name, "rows": measure_ordering(Config.from_dict(data), samples=400)})
    return out


# ---------------------------------------------------------------------------------- table
def _g(x, d=2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{d}e}"


def _diffusive_temps(row: dict) -> str:
    ok = [f"{T:g}" for T, d in zip(row["temperatures_K"], row["diffusive_D_jump"]) if d]
    return "all" if len(ok) == len(row["temperatures_K"]) else ("none" if not ok else ", ".join(ok))


def markdown(rows: list[dict], extra: dict, note: str) -> str:
    out = [note, "",
           "| material (simulated formula, cells) | model σ(300 K) (S/cm) [95 % CI] | expt σ(RT) (S/cm) | "
           "model/expt | model Ea from σT (eV) | expt Ea (eV) | σ diffusive at (K) |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        f, e = r["fit"], r["expt"]
        if f is None:
            s300, ea = "fewer than 3 diffusive temperatures", "n/a"
        else:
            lo, hi = f["sigma_300K_ci_S_cm"]
            s300 = f"{_g(f['sigma_300K_S_cm'])} [{_g(lo)}, {_g(hi)}]"
            ea = f"{f['Ea_eV']:.3f} ± {f['Ea_err_eV']:.3f}"
        ratio = f"{r['model_over_expt']:.3g}" if r["model_over_expt"] else "n/a"
        out.append(f"| {r['name']} {r['nominal_formula']} ({r['formula']}, {'x'.join(map(str, r['supercell']))}) | "
                   f"{s300} | {_g(e.get('sigma_300K_S_cm'))} | {ratio} | {ea} | {e.get('Ea_eV') or 'n/a'} | "
                   f"{_diffusive_temps(r)} |")
    out += ["", "Experimental sources: " + "; ".join(f"{r['name']}: {r['expt'].get('reference', '')}" for r in rows),
            ""]
    tc = extra["t_over_c"]
    out.append(f"- t-LLZO / c-LLZO σ(300 K): model {tc['model']:.3g} [{tc['lo']:.3g}, {tc['hi']:.3g}]; "
               f"experiment {tc['expt']:.3g} (the data files' values).")
    for name, lg in extra["lgps_axes"].items():
        out.append(f"- {name} at {lg['T_K']:g} K: D_J,zz / D_J,(xx+yy)/2 = {lg['jump_ratio']:.2f} ± "
                   f"{lg['jump_ratio_err']:.2f} (diffusive: {lg['diffusive']}); Ea from D_J per axis: "
                   + (", ".join(f"{ax} {v[0]:.3f} ± {v[1]:.3f} eV" for ax, v in lg["Ea_axes"].items()) or "n/a")
                   + ".")
    for r in rows:
        if "llzo" in r["builtin"]:   # garnet rows
            occ = r["occupation_per_class"][0]
            out.append(f"- {r['name']} at {r['temperatures_K'][0]:g} K: Li on 24d = {occ.get('Li1', float('nan')):.3f} "
                       "of the 24d sites (tetragonal order: 1/3).")
    out += ["", "Li-content scan, Li(7-x)La3Zr(2-x)Ta(x)O12 (Ta on Zr, with the model's Ta-Li terms):", ""]
    scan = extra["scan"]
    out.append("| x (Ta) | Li p.f.u. | " + " | ".join(f"σ({t:g} K) (S/cm), diffusive" for t in scan["temperatures_K"])
               + " | Haven |")
    out.append("|---|---|" + "---|" * len(scan["temperatures_K"]) + "---|")
    for p in scan["points"]:
        cells = " | ".join(f"{_g(s)} ± {_g(e, 1)}, {'yes' if d else 'no'}" for s, e, d in
                           zip(p["sigma_S_cm"], p["sigma_err_S_cm"], p["diffusive_D_jump"]))
        out.append(f"| {p['x']:g} | {p['li_pfu']:.4g} | {cells} | {p['haven_ratio'][0]:.2f} |")
    out.append("")
    out.append("Highest σ of the scan: " + "; ".join(
        f"{T} K at {v['li_pfu']:.4g} Li p.f.u. ({'an interior maximum' if v['interior'] else 'not an interior maximum'})"
        for T, v in scan["peak"].items())
        + f". Experiment (same Ta series, {EXPT_TA_SERIES['reference']}): highest at x = 0.6 (Li 6.4).")
    out += ["", "Ordering in the fitted 1x1x1 cell (order parameter per site class, 1 = every site always full or "
            "always empty, 0 = disorder; tetragonal LLZO: 24d filled 1/3, order parameter 1). With dopants, "
            "'imposed' is the part a twin run with the same dopant placement shares, 'chosen' the rest "
            "(kmc.runs.ordering); without dopants nothing is imposed:", "",
            "| composition | T (K) | 24d filled | order parameter 24d | 96h | 24d imposed | 24d chosen | 96h chosen |",
            "|---|---|---|---|---|---|---|---|"]

    def pm(v):
        return f"{v[0]:.3f} ± {v[1]:.3f}"
    for c in extra["ordering"]:
        for r in c["rows"]:
            f, eta = r["filling"], r["order_parameter"]
            st, sp = r["static_order_parameter"], r["spontaneous_order_parameter"]
            out.append(f"| {c['composition']} | {r['temperature_K']:g} | {pm(f['Li1'])} | {pm(eta['Li1'])} | "
                       f"{pm(eta['Li2'])} | {pm(st['Li1'])} | {pm(sp['Li1'])} | {pm(sp['Li2'])} |")
    return "\n".join(out)


# ---------------------------------------------------------------------------------- figures
def _fig(w=6.4, h=4.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


COLOURS = {"c-LLZO": "tab:blue", "t-LLZO": "tab:red", "Ga-LLZO": "tab:purple", "Ta-LLZO": "tab:orange",
           "LGPS": "tab:green", "LGPS computed": "tab:olive", "c-LLZO knock-offs": "tab:cyan"}


def plot_arrhenius(rows: list[dict], path: Path) -> None:
    fig = _fig(7.6, 5.4)
    ax = fig.add_subplot()
    for r in rows:
        c = COLOURS[r["name"]]
        T = np.array(r["temperatures_K"])
        s, e = np.array(r["sigma_S_cm"]), np.array(r["sigma_err_S_cm"])
        ok = np.array(r["diffusive_D_jump"], bool)
        f = r["fit"]
        lab = f"{r['name']}: Ea {f['Ea_eV']:.3f} ± {f['Ea_err_eV']:.3f} eV" if f else f"{r['name']}"
        ax.errorbar(1000 / T[ok], s[ok], yerr=e[ok], fmt="o", color=c, ms=5, capsize=3, label=lab)
        if (~ok).any():   # not diffusive: drawn open, left out of the fit
            ax.plot(1000 / T[~ok], s[~ok], "o", mfc="none", color=c, ms=6)
        if f:
            Tg = np.linspace(T[ok].min(), T[ok].max(), 50)
            A = f["sigma_300K_S_cm"] * 300 * math.exp(f["Ea_eV"] / (KB_EV_K * 300))
            ax.plot(1000 / Tg, A / Tg * np.exp(-f["Ea_eV"] / (KB_EV_K * Tg)), "-", color=c, lw=1)
        if r["expt"].get("sigma_300K_S_cm"):
            ax.plot([1000 / 300], [r["expt"]["sigma_300K_S_cm"]], marker="*", ms=14, color=c, mec="k", ls="none")
    ax.plot([], [], marker="*", ms=12, color="0.6", mec="k", ls="none",
            label="experiment, room temperature\n(refs in docs/frameworks_section.md)")
    ax.plot([], [], "o", mfc="none", color="0.4", label="not diffusive (left out of the fit)")
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel(r"$\sigma$ (S/cm), Nernst-Einstein from $D_J$")
    ax.set_title("Builtin models vs experiment (garnets: computed CHGNet model; LGPS: data-file model)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7.5, loc="lower left")
    top = ax.secondary_xaxis("top", functions=(lambda x: 1000 / np.maximum(x, 1e-9), lambda t: 1000 / np.maximum(t, 1e-9)))
    top.set_xlabel("T (K)")
    fig.savefig(path, dpi=150, bbox_inches="tight")


def plot_lgps_axes(rows: list[dict], path: Path) -> None:
    """D_J per axis against 1/T, one panel per LGPS model (cited barriers; computed)."""
    fig = _fig(10.0, 4.4)
    axes = fig.subplots(1, len(rows), sharey=True)
    for ax, row in zip(np.atleast_1d(axes), rows):
        T = np.array(row["temperatures_K"])
        # a and b are equivalent in tetragonal LGPS, so yy lies on xx: large open squares on a
        # dashed line round small filled circles keep both visible, and the legend says why
        for name, c, lab, fmt, mfc, ls in (("xx", "tab:blue", "a", "o", None, "-"),
                                           ("yy", "tab:orange", "b; a ≡ b by symmetry", "s", "none", "--"),
                                           ("zz", "tab:green", "c", "o", None, "-")):
            d = np.array([v[0] for v in row[f"D_jump_{name}"]])
            e = np.array([v[1] for v in row[f"D_jump_{name}"]])
            ax.errorbar(1000 / T, d, yerr=e, fmt=fmt, ls=ls, color=c, mfc=mfc or c, ms=8 if mfc else 4,
                        capsize=3, lw=1, label=f"$D_{{J,{name}}}$ (along {lab})")
        ax.set_yscale("log")
        ax.set_xlabel("1000 / T (1/K)")
        ax.set_title(row["name"] + (" (cited barriers)" if row["name"] == "LGPS" else " (CHGNet)"), fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel(r"collective $D_J$ per axis (cm$^2$/s)")
    fig.savefig(path, dpi=150, bbox_inches="tight")


def plot_scan(scan: dict, path: Path) -> None:
    fig = _fig(6.4, 4.6)
    ax = fig.add_subplot()
    li = np.array([p["li_pfu"] for p in scan["points"]])
    for k, (T, c) in enumerate(zip(scan["temperatures_K"], ("tab:blue", "tab:red", "tab:green"))):
        s = np.array([p["sigma_S_cm"][k] for p in scan["points"]])
        e = np.array([p["sigma_err_S_cm"][k] for p in scan["points"]])
        ax.errorbar(li, s, yerr=e, fmt="o-", color=c, capsize=3, ms=5, lw=1, label=f"model, {T:g} K")
        early = ~np.array([p["diffusive_D_jump"][k] for p in scan["points"]], bool)
        if early.any():  # drawn open, as in the Arrhenius figure: measured before the diffusive regime
            ax.plot(li[early], s[early], "o", mfc="white", mec=c, ms=6, zorder=5,
                    label=f"not diffusive ({T:g} K)")
    ser = EXPT_TA_SERIES
    ax.plot(7 - np.array(ser["x"]), ser["sigma_S_cm"], "*--", color="k", ms=9, lw=0.8,
            label="experiment, 25 °C (Li et al. 2012,\nvia OBELiX)")
    ax.set_yscale("log")
    ax.set_xlabel("Li per formula unit  (Li$_{7-x}$La$_3$Zr$_{2-x}$Ta$_x$O$_{12}$)")
    ax.set_ylabel(r"$\sigma$ (S/cm)")
    ax.set_title("c-LLZO Li-content scan via Ta on Zr (computed model with its Ta-Li terms)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.invert_xaxis()
    fig.savefig(path, dpi=150, bbox_inches="tight")


# ---------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small runs (< 60 s) for the test suite")
    ap.add_argument("--out", default="validation_frameworks", help="output directory")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    mode = MODES["quick" if args.quick else "full"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rows = []
    for k, (name, builtin, dop, expt) in enumerate(MATERIALS):
        t0 = time.perf_counter()
        res = run_config(sweep_config(builtin, mode["supercell"][builtin], mode["temps"], mode, args.seed + k, dop))
        expt = expt if isinstance(expt, dict) else load_framework(expt or builtin).experiment
        rows.append(summarize(name, builtin, res, expt))
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    by = {r["name"]: r for r in rows}
    extra: dict = {}
    c, t = by["c-LLZO"], by["t-LLZO"]
    if c["fit"] and t["fit"]:
        r, lo, hi = ratio_with_ci(t["fit"], c["fit"])
    else:
        r = lo = hi = float("nan")
    extra["t_over_c"] = {"model": r, "lo": lo, "hi": hi,
                         "expt": t["expt"]["sigma_300K_S_cm"] / c["expt"]["sigma_300K_S_cm"]}
    extra["lgps_axes"] = {name: lgps_axes(by[name]) for name in ("LGPS", "LGPS computed")}
    t0 = time.perf_counter()
    extra["scan"] = li_scan(mode, args.seed)
    print(f"Li scan: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    t0 = time.perf_counter()
    extra["ordering"] = ordering(mode, args.seed)
    print(f"ordering: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    prov = load_framework("llzo-cubic").data["provenance"]
    note = (f"Garnet model: builtin llzo-cubic ({prov.get('calculator')}, {prov.get('n_configurations_fitted')} of "
            f"{prov.get('n_configurations')} configurations fitted, CV RMSE {prov.get('cv_rmse_meV_per_mobile_ion')} "
            f"meV per Li, {prov.get('date')}); LGPS: builtin lgps (data-file model). Mode "
            f"{'quick' if args.quick else 'full'}: {mode['replicas']} replicas, target relative error "
            f"{mode['target_rel_err']}, seed {args.seed}.")
    table = markdown(rows, extra, note)
    (out / "table.md").write_text(table + "\n", encoding="utf-8")
    (out / "results.json").write_text(json.dumps(jsonable(
        {"mode": "quick" if args.quick else "full", "seed": args.seed, "materials": rows, **extra,
         "wall_s": time.perf_counter() - t_start}), indent=1), encoding="utf-8")
    plot_arrhenius(rows, out / "arrhenius.png")
    plot_lgps_axes([by["LGPS"], by["LGPS computed"]], out / "lgps_axes.png")
    plot_scan(extra["scan"], out / "li_scan.png")
    print(table)
    print(f"\nwritten to {out}/ in {time.perf_counter() - t_start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
