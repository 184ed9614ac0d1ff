"""Lesson 2 — vacancy vs interstitial vs interstitialcy mechanisms: D*, D_J and the Haven ratio.

One teaching lattice for all three: bcc with the cube corners as lattice sites (L) and the body
centres as interstitial sites (I), a = 3 Å. L-L and I-I neighbours are 3.00 Å apart, L-I 2.60 Å.

* vacancy mechanism: L full except a few vacancies, I empty and out of reach (1 eV higher);
  the ions move on the simple-cubic L sublattice by L-L hops (0.30 eV);
* interstitial mechanism: L full, a few extra ions on I (0.30 eV higher) hopping I-I (0.30 eV);
* interstitialcy (knock-off): the same, plus the collinear <111> push of an L ion on to the next
  I site by an I ion (0.15 eV), one event that moves two ions.

The numbers come from the estimator of ``kmc run``
(:func:`kmc.runs.replicas.measure_temperature`, i.e.
:func:`kmc.analysis.transport.analyze_frames`): every replica starts from the prepared
occupancy, is equilibrated, and D* and D_J are the slopes of the tracer and collective MSD over
all time origins inside a fit window in the diffusive regime, with errors over the replicas.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kmc.analysis.transport import mean_err
from kmc.config import Config
from kmc.runs.replicas import measure_temperature, replica_seeds
from kmc.runs.system import build_system
from kmc.teaching.tutorials._common import (
    heading,
    new_figure,
    pm,
    save_figure,
    say,
    timed,
)
from kmc.validate import (
    EXACT_CORRELATION_FACTORS,
    exact_two_class_occupation,
    single_vacancy_f_exact,
    vacancy_network,
)

T_K = 500.0
CELLS = 6
SEED = 100


@dataclass(frozen=True)
class Case:
    """One mechanism: its model switches, defect count and run lengths (hops per ion)."""

    name: str
    n_defects: int
    vacancy: bool
    knockoff: bool
    #: equilibration: long enough for the thermal Frenkel pairs (I-site excess) to form, which
    #: the prepared start lacks; they form at the same slow rate in both interstitial cases, but
    #: the knock-off makes many more hops per ion meanwhile, hence its long equilibration
    equilibration_hops_per_ion: float
    hops_per_ion: float
    hops_per_ion_quick: float


CASES = (Case("vacancy", 4, True, False, 20.0, 1000.0, 200.0),
         Case("interstitial", 6, False, False, 100.0, 2000.0, 200.0),
         Case("interstitialcy", 6, False, True, 1000.0, 1000.0, 300.0))


def _config(case: Case, replicas: int, hops_per_ion: float, seed: int):
    """The lesson's bcc L + I lattice for one mechanism, as a ``kmc run`` config."""
    vac = case.vacancy
    model: dict = {"attempt_frequency_THz": 10.0,
                   "site_energies_eV": {"L": 0.0, "I": 1.0 if vac else 0.3},
                   "barrier_eV": {"L-I@2.60": 0.60, "L-L@3.00": 0.30 if vac else 0.60,
                                  "I-I@3.00": 0.30}}
    if case.knockoff:
        model["barrier_eV"]["knockoff:I-L-I@2.60+2.60"] = 0.15
        model["interstitialcy"] = {"interstitial": ["I"], "lattice": ["L"],
                                   "max_angle_deg": 5.0}
    return Config.from_dict({
        "lattice": {"builtin": "bcc", "supercell": [CELLS] * 3, "lattice_constant_A": 3.0,
                    "site_labels": ["L", "I"], "hop_cutoff_A": 3.05},
        "occupancy": {"ions": 1}, "model": model,
        "run": {"temperatures_K": [T_K], "replicas": replicas, "seed": seed,
                "hops_per_ion": hops_per_ion,
                "equilibration_hops_per_ion": case.equilibration_hops_per_ion}})


def _measure(case: Case, replicas: int, hops_per_ion: float, seed: int) -> dict:
    """Measure one mechanism with the estimator of ``kmc run``.

    Parameters
    ----------
    case : Case
        The mechanism.
    replicas : int
        Independent replicas (the errors are taken over them).
    hops_per_ion : float
        Measurement length (first and only round: no ``target_rel_err``).
    seed : int
        Seed of the replicas and of the prepared defect positions.

    Returns
    -------
    dict
        The ``kmc run`` summary of the temperature (``analyze_frames``: D*, D_J, H_R, f with
        errors, ``estimator``, ``diffusive`` and the fit windows), plus ``fit_hops_per_ion``
        (the D* and D_J windows in hops per ion), ``I_occupancy`` (time-averaged ions on I per
        replica, mean and SE), ``curve`` (the replica-mean MSDs) and ``hops_per_s_per_ion``.
    """

    cfg = _config(case, replicas, hops_per_ion, seed)
    system = build_system(cfg)
    net = system.network
    is_l = net.site_class == net.class_names.index("L")
    # the prepared start, taken by every replica as kmc run takes [occupancy] start_structure
    occ = is_l.copy()
    rng = np.random.default_rng(seed)
    if case.vacancy:
        occ[rng.choice(np.flatnonzero(is_l), case.n_defects, replace=False)] = False
    else:
        occ[rng.choice(np.flatnonzero(~is_l), case.n_defects, replace=False)] = True
    system = replace(system, initial_occupancy=occ)
    seeds = replica_seeds(cfg.run.seed, 1, cfg.run.replicas)[0]
    runs, an, record = measure_temperature(system, T_K, seeds, cfg.run, net.dimensionality,
                                           net.volume_A3, cfg.model.charge_e, None)
    s = dict(an.summary)
    i_class = net.class_names.index("I")
    s["I_occupancy"] = mean_err(np.array([r.sample.class_occupation[i_class] for r in runs]))
    # lag (s) -> hops per ion, the unit the run lengths are given in
    per_s = record["hops_per_ion_used"] / s["time_s"]
    s["hops_per_s_per_ion"] = per_s
    s["fit_hops_per_ion"] = {q: (s[f"fit_start_{q}_s"] * per_s, s[f"fit_end_{q}_s"] * per_s)
                             for q in ("D_tracer", "D_jump")}
    s["curve"] = an.curve
    s["equilibration_hops_per_ion"] = case.equilibration_hops_per_ion
    s["hops_per_ion"] = hops_per_ion
    return s


def _exact_I_occupancy(n_ions: int, n_l: int, dE_eV: float) -> float:
    """Exact canonical mean number of ions on I (equal numbers of L and I sites, I higher by
    ``dE_eV``, hard-core sites): the equilibrium the equilibration must reach."""
    return exact_two_class_occupation(n_ions, n_l, dE_eV, T_K) * n_l


@timed
def run(outdir: Path, quick: bool = False) -> dict:
    """Run lesson 2; returns ``numbers`` and ``figures``."""
    heading("Lesson 2 — vacancy vs interstitial vs interstitialcy")
    say("""
    Two diffusion coefficients describe ion transport, and the difference between them is the
    point of this lesson (d = dimensionality, N ions, t time, dr_i the displacement of ion i):

      tracer  D*  = lim <|dr_i(t)|^2> / (2 d t)          how fast ONE labelled ion wanders
      jump    D_J = lim <|sum_i dr_i(t)|^2> / (2 d N t)  how fast the CHARGE moves (conductivity)
      Haven ratio H_R = D* / D_J

    D_J contains the cross terms <dr_i . dr_j>: if ions move together, the charge moves
    further than any single ion, D_J > D* and H_R < 1. The conductivity follows D_J
    (Nernst-Einstein: sigma = (N/V) q^2 D_J / kT); tracer experiments (and NMR) see D*.

    Both are limits of long times. The numbers below come from the estimator of `kmc run`:
    each replica is equilibrated, its displacements are recorded at equally spaced times, the
    tracer and collective MSD are averaged over all time origins, and D is the slope of the
    MSD inside a fit window where it is already diffusive (local exponent d ln MSD / d ln t
    near 1, MSD above a few squared hop lengths); errors are over independent replicas. A
    result whose window never becomes diffusive is flagged `diffusive: False`.
    """)
    reps = 8 if quick else 32
    res = {}
    for k, case in enumerate(CASES):
        hpi = case.hops_per_ion_quick if quick else case.hops_per_ion
        res[case.name] = _measure(case, reps, hpi, seed=SEED + k)
    n_l = CELLS ** 3
    f_sc = EXACT_CORRELATION_FACTORS["sc"]
    f_box = single_vacancy_f_exact(vacancy_network("sc", (CELLS,) * 3))
    f_knock = res["interstitialcy"]["correlation_factor"]
    expect = {"vacancy": (f_box, f"f of one vacancy on the {CELLS}^3 simple-cubic box = "
                                 f"{f_box:.4f} (infinite sc lattice {f_sc:.4f}, Compaan & "
                                 "Haven 1956): the vacancies, and so the charge, walk at "
                                 "random, each tracer does not"),
              "interstitial": (1.0, "1: dilute interstitials are independent random walkers"),
              "interstitialcy": (f_knock / 2, f"f/2 = {f_knock / 2:.3f} with the measured "
                                 "tracer f: one event moves two ions by l each, the charge by "
                                 "2l, (2 l^2)/(2l)^2 = 1/2 (Murch, Solid State Ionics 7, 177 "
                                 "(1982))")}
    print(f"Results at {T_K:g} K on bcc {CELLS}x{CELLS}x{CELLS} ({2 * n_l} sites), {reps} "
          "replicas each (D in cm2/s; every ion, mobile or not, counts in N):\n")
    print(f"  {'mechanism':<15} {'D* (cm2/s)':>22} {'D_J (cm2/s)':>22} {'Haven H_R':>15} "
          f"{'tracer f':>15}  diffusive")
    for name, r in res.items():
        print(f"  {name:<15} {pm(r['D_tracer_cm2_s'], r['D_tracer_err_cm2_s']):>22} "
              f"{pm(r['D_jump_cm2_s'], r['D_jump_err_cm2_s']):>22} "
              f"{pm(r['haven_ratio'], r['haven_ratio_err'], 3):>15} "
              f"{pm(r['correlation_factor'], r['correlation_factor_err'], 3):>15}  "
              f"{r['diffusive']}")
    print(f"\n  {'mechanism':<15} {'equil.':>7} {'measured':>9} {'D* fit window':>16} "
          f"{'D_J fit window':>16} {'exponent D*, D_J':>17} {'ions on I':>13} {'exact':>6}")
    for name, r in res.items():
        n_ions = r["n_ions"]
        dE = 1.0 if name == "vacancy" else 0.3
        r["I_occupancy_exact"] = _exact_I_occupancy(n_ions, n_l, dE)
        win = {q: f"{a:.3g}-{b:.3g}" for q, (a, b) in r["fit_hops_per_ion"].items()}
        print(f"  {name:<15} {r['equilibration_hops_per_ion']:>7g} {r['hops_per_ion']:>9g} "
              f"{win['D_tracer']:>16} {win['D_jump']:>16} "
              f"{r['local_exponent_D_tracer']:>8.3f}{r['local_exponent_D_jump']:>9.3f} "
              f"{pm(*r['I_occupancy'], 3):>13} {r['I_occupancy_exact']:>6.3g}")
    print("  (equilibration, measurement and fit windows in hops per ion)\n")
    print("Expected Haven ratios:")
    print("\n".join(f"  {name:<15} {v[1]}" for name, v in expect.items()) + "\n")
    speedup = (res["interstitialcy"]["hops_per_s_per_ion"]
               / res["interstitial"]["hops_per_s_per_ion"])
    say(f"""
    Reading the tables:

    - VACANCY: after an ion jumps into a vacancy, the vacancy sits right behind it, so the
    ion's next jump is likely to be straight back: tracer jumps are correlated (f < 1) while
    the vacancy itself, and hence the charge, walks at random. H_R = f, the single-vacancy
    correlation factor of lesson 3. The tracer f measured here sits slightly above the
    single-vacancy value of the box: with four vacancies, another vacancy now and then
    reaches the ion before the first one returns and erases part of the back-jump
    correlation (an effect of order the vacancy fraction, 4/216).

    - INTERSTITIAL: a dilute interstitial meets nothing; each jump is independent of the last,
    D* and D_J agree and H_R = 1 within the error bars.

    - INTERSTITIALCY: the knock-off moves two ions by one hop length in the same direction. The
    charge moves twice as far as either ion, D_J is about twice D*, and H_R = f/2 well below 1.
    A measured H_R < 1 from tracer diffusion vs conductivity is how experimentalists recognise
    concerted (interstitialcy or collective) mechanisms.

    - EQUILIBRATION: the prepared start has the extra ions on I and no thermal defects, but at
    500 K the L + I lattice also holds a few Frenkel pairs (an ion lifted from L to I, 0.3 eV).
    They form slowly (an L-to-I hop, 0.60 + 0.3/2 eV), so every replica is run before the
    measurement until its ions on I match the exact canonical count ('ions on I' against
    'exact'). The knock-off makes {speedup:.0f} times more hops per ion in that time than the
    plain interstitial, hence its longer equilibration in hops per ion. Measuring from an
    unrelaxed start mixes the start's transient into D.

    - FIT WINDOW: each D is the MSD slope from the first lag where the MSD is diffusive to a
    quarter of the run (all time origins); 'diffusive: True' means the local exponent there is
    1 within tolerance. With dilute defects the MSDs here are straight almost from the first
    hops (right panel), so the windows start where the MSD passes a few squared hop lengths.
    Lesson 5 shows a jammed crystal where they are not, and where short blocks mislead.
    """)

    fig, (ax1, ax2, ax3) = new_figure(14.5, 4.0, ncols=3)
    names = list(res)
    x = np.arange(len(names))
    for off, key, lab, col in ((-0.18, "D_tracer", "$D^*$", "C0"), (0.18, "D_jump", "$D_J$", "C1")):
        v = [res[n][f"{key}_cm2_s"] for n in names]
        e = [res[n][f"{key}_err_cm2_s"] for n in names]
        ax1.bar(x + off, v, 0.36, yerr=e, color=col, label=lab, capsize=3)
    ax1.set_yscale("log")
    ax1.set_xticks(x, names)
    ax1.set_ylabel("diffusivity (cm$^2$/s)")
    ax1.set_title(f"tracer and jump diffusivity at {T_K:g} K\n(MSD slope, diffusive regime)",
                  fontsize="medium")
    ax1.legend(fontsize="small")
    h = [res[n]["haven_ratio"] for n in names]
    he = [res[n]["haven_ratio_err"] for n in names]
    ax2.bar(x, h, 0.5, yerr=he, color=["C2", "C4", "C3"], capsize=4)
    for i, n in enumerate(names):
        ax2.hlines(expect[n][0], i - 0.35, i + 0.35, colors="k", linestyles="--", lw=1.2)
        top = max(h[i] + he[i], expect[n][0])
        ax2.text(i, top + 0.04, "diffusive" if res[n]["diffusive"] else "NOT diffusive",
                 ha="center", fontsize="small")
    ax2.set_xticks(x, names)
    ax2.set_ylim(0, 1.3)
    ax2.set_ylabel(r"Haven ratio $H_R = D^*/D_J$")
    ax2.set_title("Haven ratio (dashed: f of the sc box, 1, f/2)", fontsize="medium")
    for n, col in zip(names, ["C2", "C4", "C3"]):
        r = res[n]
        c = r["curve"]
        hops = c["t_s"] * r["hops_per_s_per_ion"]
        # MSD / lag: flat where the MSD is diffusive; the lags beyond the fit window (fewer
        # than four independent origins) are left out
        last = max(b for _, b in r["fit_hops_per_ion"].values()) * (1 + 1e-9)
        keep = hops <= last
        for q, key, ls in (("D_tracer", "msd_tracer_A2", "-"),
                           ("D_jump", "msd_collective_A2", "--")):
            y = c[key] / hops
            ax3.semilogx(hops[keep], y[keep], color=col, lw=1.2, ls=ls,
                         label=f"{n} {'tracer' if q == 'D_tracer' else 'collective'}")
            a, b = r["fit_hops_per_ion"][q]
            sel = (hops >= a * (1 - 1e-9)) & (hops <= b * (1 + 1e-9))
            ax3.semilogx(hops[sel], y[sel], color=col, lw=5, alpha=0.3)
    ax3.set_ylim(bottom=0)
    ax3.set_xlabel(r"lag $\tau$ (hops per ion)")
    ax3.set_ylabel(r"MSD$(\tau)/\tau$ ($\AA^2$ per hop per ion)")
    ax3.set_title("MSD / lag over all time origins (flat = diffusive)\n"
                  "thick: fit windows; solid tracer, dashed collective", fontsize="medium")
    ax3.legend(fontsize="x-small", ncols=2, loc="lower center")
    figs = [save_figure(fig, outdir, "lesson2_mechanisms.png")]
    numbers: dict = {f"{n}_{k}": float(res[n][k]) for n in names
                     for k in ("D_tracer_cm2_s", "D_tracer_err_cm2_s", "D_jump_cm2_s",
                               "D_jump_err_cm2_s", "haven_ratio", "haven_ratio_err",
                               "correlation_factor", "correlation_factor_err",
                               "I_occupancy_exact",
                               "local_exponent_D_tracer",
                               "local_exponent_D_jump")}
    for n in names:
        r = res[n]
        numbers[f"{n}_estimator"] = r["estimator"]
        numbers[f"{n}_diffusive"] = bool(r["diffusive"])
        numbers[f"{n}_I_occupancy"], numbers[f"{n}_I_occupancy_err"] = r["I_occupancy"]
        for q, (a, b) in r["fit_hops_per_ion"].items():
            numbers[f"{n}_fit_{q}_hops_per_ion"] = (float(a), float(b))
    numbers["f_sc_exact"] = f_sc
    numbers["f_sc_box_exact"] = f_box
    numbers["replicas"] = reps
    return {"numbers": numbers, "figures": figs}
