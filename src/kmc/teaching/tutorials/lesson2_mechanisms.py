"""Lesson 2 — vacancy vs interstitial vs interstitialcy mechanisms: D*, D_J and the Haven ratio.

One teaching lattice for all three: bcc with the cube corners as lattice sites (L) and the body
centres as interstitial sites (I), a = 3 Å. L-L and I-I neighbours are 3.00 Å apart, L-I 2.60 Å.

* vacancy mechanism: L full except a few vacancies, I empty and out of reach (1 eV higher);
  the ions move on the simple-cubic L sublattice by L-L hops (0.30 eV);
* interstitial mechanism: L full, a few extra ions on I (0.30 eV higher) hopping I-I (0.30 eV);
* interstitialcy (knock-off): the same, plus the collinear <111> push of an L ion on to the next
  I site by an I ion (0.15 eV), one event that moves two ions.

Every replica starts from the prepared occupancy (not a random one) and the statistics come from
many short blocks (time origins) in independent replicas, as in ``kmc run``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kmc.teaching.tutorials._common import (
    heading,
    new_figure,
    pm,
    save_figure,
    say,
    timed,
)

T_K = 500.0
CELLS = 6


def _system(knockoff: bool, vacancy: bool):
    from kmc.config import Config
    from kmc.runs.system import build_system

    model: dict = {"attempt_frequency_THz": 10.0,
                   "site_energies_eV": {"L": 0.0, "I": 1.0 if vacancy else 0.3},
                   "barrier_eV": {"L-I@2.60": 0.60, "L-L@3.00": 0.30 if vacancy else 0.60,
                                  "I-I@3.00": 0.30}}
    if knockoff:
        model["barrier_eV"]["knockoff:I-L-I@2.60+2.60"] = 0.15
        model["interstitialcy"] = {"interstitial": ["I"], "lattice": ["L"],
                                   "max_angle_deg": 5.0}
    cfg = Config.from_dict({
        "lattice": {"builtin": "bcc", "supercell": [CELLS] * 3, "lattice_constant_A": 3.0,
                    "site_labels": ["L", "I"], "hop_cutoff_A": 3.05},
        "occupancy": {"ions": 1}, "model": model, "run": {"temperatures_K": [T_K]}})
    return build_system(cfg)


def _measure(system, n_defects: int, vacancy: bool, replicas: int, blocks: int,
             block_hops: int, seed: int) -> dict:
    """Replicas from a prepared occupancy (L full minus/plus ``n_defects``), equilibrated, then
    ``blocks`` measurement blocks each; D*, D_J, H_R and f with replica standard errors."""
    from kmc.analysis.transport import ReplicaSample, summarize
    from kmc.engine.model import ION
    from kmc.engine.simulation import Simulation

    net = system.network
    is_l = net.site_class == net.class_names.index("L")
    l_sites, i_sites = np.flatnonzero(is_l), np.flatnonzero(~is_l)
    samples = []
    for seq in np.random.SeedSequence(seed).spawn(replicas):
        rng = np.random.default_rng(seq.spawn(1)[0])
        occ = np.zeros(net.n_sites, np.int8)
        occ[l_sites] = ION
        if vacancy:
            occ[rng.choice(l_sites, n_defects, replace=False)] = 0
        else:
            occ[rng.choice(i_sites, n_defects, replace=False)] = ION
        sim = Simulation(system.model, T_K, occupancy=occ, seed=seq)
        sim.run(block_hops)  # equilibration
        parts = []
        for _ in range(blocks):
            sim.reset_measurement()
            sim.run(block_hops)
            parts.append(ReplicaSample.from_simulation(sim))
        samples.append(ReplicaSample.concat(parts))
    return summarize(samples, net.dimensionality, net.volume_A3, T_K)


@timed
def run(outdir: Path, quick: bool = False) -> dict:
    """Run lesson 2; returns ``numbers`` and ``figures``."""
    from kmc.validate import EXACT_CORRELATION_FACTORS

    heading("Lesson 2 — vacancy vs interstitial vs interstitialcy")
    say("""
    Two diffusion coefficients describe ion transport, and the difference between them is the
    point of this lesson (d = dimensionality, N ions, t time, dr_i the displacement of ion i):

      tracer  D*  = < sum_i |dr_i|^2 > / (2 d N t)     how fast ONE labelled ion wanders
      jump    D_J = < |sum_i dr_i|^2 > / (2 d N t)     how fast the CHARGE moves (conductivity)
      Haven ratio H_R = D* / D_J

    D_J contains the cross terms <dr_i . dr_j>: if ions move together, the charge moves
    further than any single ion, D_J > D* and H_R < 1. The conductivity follows D_J
    (Nernst-Einstein: sigma = (N/V) q^2 D_J / kT); tracer experiments (and NMR) see D*.
    """)
    reps = 6 if quick else 16
    blocks = 12 if quick else 50
    cases = [("vacancy", 4, True, False, 5000 if quick else 6000),
             ("interstitial", 6, False, False, 600),
             ("interstitialcy", 6, False, True, 600)]
    res = {}
    for k, (name, n_def, vac, knock, bh) in enumerate(cases):
        system = _system(knock, vac)
        res[name] = _measure(system, n_def, vac, reps, blocks, bh, seed=100 + k)
        res[name]["n_ions"] = int(res[name]["n_ions"])
    f_sc = EXACT_CORRELATION_FACTORS["sc"]
    expect = {"vacancy": (f_sc, f"f(sc) = {f_sc:.4f}: dilute vacancies walk at random, so the "
                                 "charge (-vacancy) is uncorrelated while each tracer is not"),
              "interstitial": (1.0, "1: dilute interstitials are independent random walkers"),
              "interstitialcy": (0.5, "about 1/2 before correlations: one event moves two ions "
                                      "by l each, i.e. the charge by 2l: (2 l^2)/(2l)^2")}
    rows = []
    for name, r in res.items():
        rows.append(f"  {name:<15} {pm(r['D_tracer_cm2_s'], r['D_tracer_err_cm2_s']):>22} "
                    f"{pm(r['D_jump_cm2_s'], r['D_jump_err_cm2_s']):>22} "
                    f"{pm(r['haven_ratio'], r['haven_ratio_err'], 3):>15} "
                    f"{pm(r['correlation_factor'], r['correlation_factor_err'], 3):>15}")
    say(f"""
    Results at {T_K:g} K on bcc {CELLS}x{CELLS}x{CELLS} ({2 * CELLS ** 3} sites), {reps}
    replicas x {blocks} blocks each (D in cm2/s; every ion, mobile or not, counts in N):
    """)
    print(f"  {'mechanism':<15} {'D* (cm2/s)':>22} {'D_J (cm2/s)':>22} {'Haven H_R':>15} "
          f"{'tracer f':>15}")
    print("\n".join(rows) + "\n")
    print("Expected Haven ratios:")
    print("\n".join(f"  {name:<15} {v[1]}" for name, v in expect.items()) + "\n")
    say("""
    Reading the table:

    - VACANCY: after an ion jumps into a vacancy, the vacancy sits right behind it, so the
    ion's next jump is likely to be straight back: tracer jumps are correlated (f < 1) while
    the vacancy itself, and hence the charge, walks at random. H_R = f. (The tracer f here
    sits a little above the single-vacancy 0.653 of lesson 3: four vacancies meet now and
    then, and each block is a finite window.)

    - INTERSTITIAL: a dilute interstitial meets nothing; each jump is independent of the last,
    D* and D_J agree and H_R = 1 within the error bars.

    - INTERSTITIALCY: the knock-off moves two ions by one hop length in the same direction. The
    charge moves twice as far as either ion, D_J is about twice D*, and H_R comes out well
    below 1. A measured H_R < 1 from tracer diffusion vs conductivity is how experimentalists
    recognise concerted (interstitialcy or collective) mechanisms.
    """)

    fig, (ax1, ax2) = new_figure(10.5, 3.8, ncols=2)
    names = list(res)
    x = np.arange(len(names))
    for off, key, lab, col in ((-0.18, "D_tracer", "$D^*$", "C0"), (0.18, "D_jump", "$D_J$", "C1")):
        v = [res[n][f"{key}_cm2_s"] for n in names]
        e = [res[n][f"{key}_err_cm2_s"] for n in names]
        ax1.bar(x + off, v, 0.36, yerr=e, color=col, label=lab, capsize=3)
    ax1.set_yscale("log")
    ax1.set_xticks(x, names)
    ax1.set_ylabel("diffusivity (cm$^2$/s)")
    ax1.set_title(f"tracer and jump diffusivity at {T_K:g} K", fontsize="medium")
    ax1.legend(fontsize="small")
    h = [res[n]["haven_ratio"] for n in names]
    he = [res[n]["haven_ratio_err"] for n in names]
    ax2.bar(x, h, 0.5, yerr=he, color=["C2", "C4", "C3"], capsize=4)
    for i, n in enumerate(names):
        ax2.hlines(expect[n][0], i - 0.35, i + 0.35, colors="k", linestyles="--", lw=1.2)
    ax2.set_xticks(x, names)
    ax2.set_ylim(0, 1.25)
    ax2.set_ylabel(r"Haven ratio $H_R = D^*/D_J$")
    ax2.set_title("Haven ratio (dashed: f(sc), 1, and the uncorrelated 1/2)",
                  fontsize="medium")
    figs = [save_figure(fig, outdir, "lesson2_mechanisms.png")]
    numbers = {f"{n}_{k}": float(res[n][k]) for n in names
               for k in ("D_tracer_cm2_s", "D_tracer_err_cm2_s", "D_jump_cm2_s",
                         "D_jump_err_cm2_s", "haven_ratio", "haven_ratio_err",
                         "correlation_factor", "correlation_factor_err")}
    numbers["f_sc_exact"] = f_sc
    return {"numbers": numbers, "figures": figs}
