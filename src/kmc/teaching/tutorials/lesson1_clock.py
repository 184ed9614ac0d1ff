"""Lesson 1 — a random walk vs the kMC clock: why ``dt = -ln(u) / R_total``.

One ion on a honeycomb lattice whose two sublattices differ in energy (B sites 0.10 eV above A).
Every hop goes A -> B or B -> A, so *counting hops* says the ion spends half of its life on B.
The residence-time (BKL) clock says otherwise: in state s the next event comes after an
exponential waiting time of rate ``R_total(s)`` (the sum of all rates out of s), drawn as
``dt = -ln(u) / R_total`` with u uniform in (0, 1]. Slow escapes from the low A sites mean long
stays there, and the time fraction on B comes out as the Boltzmann value — exactly.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

from kmc.config import Config
from kmc.constants import KB_EV_K
from kmc.engine.simulation import Simulation
from kmc.runs.system import build_system
from kmc.teaching.tutorials._common import heading, new_figure, save_figure, say, timed

DE_EV, KRA_EV, T_K, NU_HZ = 0.10, 0.25, 600.0, 1e13


def _rate(barrier_eV: float) -> float:
    return NU_HZ * math.exp(-barrier_eV / (KB_EV_K * T_K))


@timed
def run(outdir: Path, quick: bool = False) -> dict:
    """Run lesson 1; returns ``numbers`` and ``figures``."""
    heading("Lesson 1 — a random walk vs the kMC clock")
    say("""
    A kinetic Monte Carlo step does two things. It picks WHICH hop happens, with probability
    rate_i / R_total, and it advances the clock by HOW LONG the system waited for it. Events
    with constant rates form a Poisson process: the probability that nothing has happened
    after a time t is exp(-R_total t). Setting that survival probability equal to a uniform
    random number u and solving for t gives the kMC time step

      dt = -ln(u) / R_total,     u uniform in (0, 1]

    so dt is exponentially distributed with mean 1/R_total. A plain random walk that just
    counts hops ("one hop = one tick") gets the order of events right but the time wrong
    whenever R_total differs from state to state.
    """)
    n_hops = 3000 if quick else 40000
    cfg = Config.from_dict({
        "lattice": {"builtin": "honeycomb", "supercell": [6, 6, 1], "site_labels": ["A", "B"]},
        "occupancy": {"ions": 1},
        "model": {"attempt_frequency_THz": NU_HZ / 1e12, "barrier_eV": KRA_EV,
                  "site_energies_eV": {"B": DE_EV}},
        "run": {"temperatures_K": [T_K], "seed": 11}})
    system = build_system(cfg)
    net = system.network
    sim = Simulation(system.model, T_K, n_ions=1, seed=11)
    st = sim.engine.state
    b_class = net.class_names.index("B")
    on_b = np.empty(n_hops, dtype=bool)
    wait = np.empty(n_hops)
    for k in range(n_hops):
        on_b[k] = net.site_class[st["ion_site"][0]] == b_class
        t0 = float(st["clock"][0])
        sim.run(1)
        wait[k] = float(st["clock"][0]) - t0
    # the kinetically resolved barriers: Ea = max(E_KRA + dE/2, dE, 0)
    ea_ab = max(KRA_EV + DE_EV / 2, DE_EV, 0.0)
    ea_ba = max(KRA_EV - DE_EV / 2, -DE_EV, 0.0)
    r_a, r_b = 3 * _rate(ea_ab), 3 * _rate(ea_ba)   # three neighbours on honeycomb
    wa, wb = wait[~on_b], wait[on_b]
    ks_a = stats.kstest(wa, "expon", args=(0, 1 / r_a)).pvalue
    ks_b = stats.kstest(wb, "expon", args=(0, 1 / r_b)).pvalue
    boltz = math.exp(-DE_EV / (KB_EV_K * T_K))
    frac_exact = boltz / (1 + boltz)
    frac_clock = float(wb.sum() / wait.sum())
    frac_count = float(on_b.mean())
    # standard error of the time fraction from 20 consecutive batches of hops
    batches = np.array_split(np.arange(n_hops), 20)
    fb = np.array([wait[i][on_b[i]].sum() / wait[i].sum() for i in batches])
    frac_err = float(fb.std(ddof=1) / math.sqrt(len(fb)))

    say(f"""
    The experiment: one ion on a honeycomb lattice (two sublattices, A and B), {T_K:g} K,
    E_KRA = {KRA_EV} eV, and B sites {DE_EV} eV above A. Every hop goes A -> B or B -> A, so the
    ion alternates. From A the barrier is E_KRA + dE/2 = {ea_ab:.2f} eV, from B it is
    E_KRA - dE/2 = {ea_ba:.2f} eV, and each site has three neighbours:

      R_total(on A) = 3 Gamma_AB = {r_a:.4g} /s     mean stay 1/R = {1 / r_a:.3g} s
      R_total(on B) = 3 Gamma_BA = {r_b:.4g} /s     mean stay 1/R = {1 / r_b:.3g} s

    Measured over {n_hops} hops with the engine's clock:

      mean stay on A = {wa.mean():.3g} ± {wa.std(ddof=1) / math.sqrt(len(wa)):.2g} s,
      on B = {wb.mean():.3g} ± {wb.std(ddof=1) / math.sqrt(len(wb)):.2g} s
      Kolmogorov-Smirnov against the exponential laws: p = {ks_a:.2f} (A), {ks_b:.2f} (B)

    Where does the ion spend its time?

      counting hops (no clock):  {frac_count:.3f} of the steps on B
      the kMC clock:             {frac_clock:.4f} ± {frac_err:.4f} of the time on B
      exact Boltzmann:           {frac_exact:.4f} = e^(-dE/kT) / (1 + e^(-dE/kT))

    The hop sequence alone is the same in both pictures; only the clock turns it into
    physics. Detailed balance (Gamma_AB / Gamma_BA = e^(-dE/kT)) plus exponential waiting
    times give the equilibrium occupations exactly — and the same clock is what makes
    D = <r^2>/(2 d t) a diffusion coefficient in cm2/s rather than a number per hop.
    """)

    fig, (ax1, ax2) = new_figure(10.5, 4.0, ncols=2)
    edges = np.linspace(0, 6, 25)
    for w, r, lab, col in ((wa, r_a, "on A (low)", "C0"), (wb, r_b, "on B (high)", "C3")):
        ax1.hist(w * r, bins=edges, density=True, histtype="step", lw=2, color=col,
                 label=rf"stays {lab}, $R$ = {r:.3g}/s")
    x = np.linspace(0, 6, 100)
    ax1.plot(x, np.exp(-x), color="k", lw=1, ls="--", label=r"$e^{-x}$ (exponential law)")
    ax1.set_yscale("log")
    ax1.set_xlabel(r"waiting time in units of the mean, $x = R_\mathrm{total}\,\Delta t$")
    ax1.set_ylabel("probability density")
    ax1.set_title(r"waiting times are exponential: $\Delta t = -\ln u / R_\mathrm{total}$",
                  fontsize="medium")
    ax1.legend(fontsize="small")
    k = np.arange(1, n_hops + 1)
    ax2.plot(k, np.cumsum(wait * on_b) / np.cumsum(wait), color="C0",
             label="kMC clock: time on B / total time")
    ax2.plot(k, np.cumsum(on_b) / k, color="0.5", ls="--",
             label="hop counting: steps on B / steps")
    ax2.axhline(frac_exact, color="k", lw=1, ls=":",
                label=f"Boltzmann {frac_exact:.3f}")
    ax2.set_xscale("log")
    ax2.set_ylim(0, 0.7)
    ax2.set_xlabel("hops")
    ax2.set_ylabel("fraction on the high-energy B sites")
    ax2.set_title("only the clock gives the Boltzmann occupation", fontsize="medium")
    ax2.legend(fontsize="small", loc="upper right")
    figs = [save_figure(fig, outdir, "lesson1_kmc_clock.png")]
    return {"numbers": {"rate_A_Hz": r_a, "rate_B_Hz": r_b, "mean_wait_A_s": float(wa.mean()),
                        "mean_wait_B_s": float(wb.mean()), "ks_p_A": float(ks_a),
                        "ks_p_B": float(ks_b), "fraction_B_clock": frac_clock,
                        "fraction_B_clock_err": frac_err, "fraction_B_exact": frac_exact,
                        "fraction_B_hop_count": frac_count, "hops": n_hops},
            "figures": figs}
