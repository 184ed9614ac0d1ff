"""Lesson 5 — dimensionality and blocking: a 1D-channel framework against a 3D network, and
how to measure D honestly when ions rattle before they diffuse (the MSD slope, not short blocks).

* "LGPS-like": the LGPS framework (``src/kmc/system/structures/lgps.toml``) with its inter-channel hops
  (Li1-Li4 3.02 Å, Li2-Li3 3.15 Å) switched off (2 eV instead of 0.28 eV), so that Li moves
  only along the c channels (Li1-Li1 1.73 Å and Li1-Li3 2.32 Å hops, 0.17 eV). Blockers sit on the
  Li3 sites, which every path along a channel must cross.
* garnet: the teaching lattice gas of c-LLZO (``llzo-cubic-latticegas``: hard-core exclusion only,
  0.30 eV barriers) at Li6 (Li6La3ZrTaO12: Ta on Zr), a 3D network of 24d tetrahedra joined
  through 96h octahedra. Blockers sit on the 24d junctions.

Every blocker is an immobile +1 ion on a Li site (``[dopants] Na = { site = ..., charge = 1 }``):
it replaces one Li, so the Li content drops by one per blocker and the filling of the remaining
network stays about the same — what changes is the topology. Conductivity along the
channels (sigma_zz) and in the garnet (isotropic) is followed as the blocked fraction p of the
junction sites grows, next to the percolation picture: the fraction of free sites in clusters
that span the periodic cell, over many random placements.

Part 2 measures D* of the jammed c-LLZO lattice gas (Li7, 400 K) the way ``kmc run`` does: the MSD over all time
origins on a log-spaced lag grid, fitted in the diffusive regime (local exponent d ln MSD / d ln t
near 1, MSD above a few squared hop lengths). A block estimator with blocks of length tau returns
the apparent D(tau) = MSD(tau) / (6 tau), which in a caged or correlated system is far above the
long-time D until tau reaches the diffusive regime.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kmc.config import Config
from kmc.engine.simulation import Simulation
from kmc.runs.runner import run_config
from kmc.runs.system import build_system
from kmc.system.network import PairList, periodic_components
from kmc.teaching.tutorials._common import heading, new_figure, save_figure, say, timed

T_K = 300.0
LGPS_CHANNEL_HOPS = ("Li1-Li1@1.73", "Li1-Li3@2.32")
#: inter-channel hops "switched off": at 300 K a 2 eV barrier is never crossed
LGPS_SLOW = {"Li1-Li4@3.02": 2.0, "Li2-Li3@3.15": 2.0}


def _config(kind: str, p: float, supercell, run: dict):
    """The config of ``kind`` ("lgps" or "garnet") with a fraction ``p`` of its junction sites
    (LGPS Li3, 4 per formula unit; garnet Li1 = 24d, 3 per formula unit) blocked."""
    if kind == "lgps":
        data = {"lattice": {"builtin": "lgps", "supercell": list(supercell)},
                "model": {"barrier_eV": dict(LGPS_SLOW)}}
        dop = {"Na": {"site": "Li3", "per_formula_unit": 4 * p, "charge": 1}} if p > 0 else {}
    else:
        data = {"lattice": {"builtin": "llzo-cubic-latticegas", "supercell": list(supercell)}}
        dop = {"Ta": {"site": "Zr", "per_formula_unit": 1.0}}
        if p > 0:
            dop["Na"] = {"site": "Li1", "per_formula_unit": 3 * p, "charge": 1}
    data["dopants"] = dop
    data["run"] = {"temperatures_K": [T_K], "equilibration_hops_per_ion": 20, "msd_points": 2,
                   **run}
    return Config.from_dict(data)


def spanning_fraction(net, blocked: np.ndarray, hop_classes: tuple[str, ...] | None = None,
                      exclusions: bool = True) -> float:
    """Fraction of the free sites of the (sub)network that lie in a cluster spanning the periodic
    supercell (periodic dimensionality >= 1).

    Parameters
    ----------
    net : SiteNetwork
    blocked : bool array
        Sites holding blockers.
    hop_classes : tuple of str, optional
        Only these hop classes connect sites (default: all); sites without such a hop do not
        count.
    exclusions : bool
        Also remove the sites a blocker excludes (hard-core neighbours, which can never hold an
        ion next to it).
    """
    h = net.hops
    keep_t = np.ones(len(h), bool) if hop_classes is None else \
        np.isin(np.array(net.hop_class_names)[net.hop_class], hop_classes)
    sub = PairList(h.src[keep_t], h.dst[keep_t], h.image[keep_t], h.length[keep_t])
    src, dst = net._tile(sub)
    n = np.array(net.supercell)
    image = np.floor_divide(net._cells[:, None, :] + sub.image[None, :, :], n).reshape(-1, 3)
    gone = blocked.copy()
    if exclusions and len(net.exclusions):
        e_src, e_dst = net._tile(net.exclusions)
        gone[e_dst[blocked[e_src]]] = True
    keep = ~gone[src] & ~gone[dst]
    labels, dims = periodic_components(net.n_sites, src[keep], dst[keep], image[keep])
    member = np.zeros(net.n_sites, bool)
    member[src] = True
    free = member & ~gone
    return float(np.mean(dims[labels[free]] >= 1)) if free.any() else 0.0


def _percolation_curve(kind: str, supercell, grid: np.ndarray, samples: int,
                       seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SE of the spanning fraction against the blocked fraction of junction sites."""
    system = build_system(_config(kind, 0.0, supercell, {}), with_model=False)
    net = system.network
    junction = "Li3" if kind == "lgps" else "Li1"
    sites = np.flatnonzero(net.site_class == net.class_names.index(junction))
    classes = LGPS_CHANNEL_HOPS if kind == "lgps" else None
    rng = np.random.default_rng(seed)
    mean, err = [], []
    for p in grid:
        vals = []
        for _ in range(samples):
            blocked = np.zeros(net.n_sites, bool)
            blocked[rng.choice(sites, int(round(p * len(sites))), replace=False)] = True
            vals.append(spanning_fraction(net, blocked, classes))
        mean.append(np.mean(vals))
        err.append(np.std(vals, ddof=1) / np.sqrt(samples))
    return np.array(mean), np.array(err)


def channel_labels(net) -> np.ndarray:
    """Channel index of every site of the LGPS-like network (connected components of the c
    hops; sites off the channels get their own, non-spanning labels)."""
    h = net.hops
    keep = np.isin(np.array(net.hop_class_names)[net.hop_class], LGPS_CHANNEL_HOPS)
    sub = PairList(h.src[keep], h.dst[keep], h.image[keep], h.length[keep])
    src, dst = net._tile(sub)
    n = np.array(net.supercell)
    image = np.floor_divide(net._cells[:, None, :] + sub.image[None, :, :], n).reshape(-1, 3)
    labels, _ = periodic_components(net.n_sites, src, dst, image)
    return labels


def lgps_channel_conductance(p: float, supercell, replicas: int, blocks: int,
                             block_hops_per_ion: float, seed: int) -> tuple[float, float, dict]:
    """``N D_J,zz`` (Å^2/s, proportional to sigma_zz at fixed volume) of the LGPS-like framework
    with a fraction ``p`` of its Li3 sites blocked, and its replica standard error.

    The channels exchange no ions and do not interact, so the collective displacements of
    different channels are independent and the cross terms of ``|sum_i dz_i|^2`` vanish on
    average: ``N D_J,zz = sum_channels <(sum_{i in channel} dz_i)^2> / (2 t)``. Summing per
    channel in quadrature gives the same mean as the all-ion sum with several times less noise.
    """
    system = build_system(_config("lgps", p, supercell, {}))
    labels = channel_labels(system.network)
    n_lab = int(labels.max()) + 1
    vals = []
    for seq in np.random.SeedSequence(seed).spawn(replicas):
        blocked, _ = system.disorder(seq)
        sim = Simulation(system.model, T_K, n_ions=system.n_ions, blocked=blocked, seed=seq)
        n = sim.n_ions
        sim.run(20 * n)  # equilibration
        num = t = 0.0
        for _ in range(blocks):
            sim.reset_measurement()
            sim.run(int(block_hops_per_ion * n))
            ch = labels[sim.engine.state["ion_site"]]
            c = np.bincount(ch, weights=sim.displacements[:, 2], minlength=n_lab)
            num += float(np.sum(c ** 2))
            t += sim.time
        vals.append(num / (2.0 * t))
    info = {"n_ions": system.n_ions, "n_sites": system.network.n_sites,
            "blocked": sum(system.blocked_counts.values()), "formula": system.formula}
    return float(np.mean(vals)), float(np.std(vals, ddof=1) / np.sqrt(replicas)), info


def junctions_per_channel(supercell) -> int:
    """Li3 (junction) sites along one channel of an LGPS supercell."""
    net = build_system(_config("lgps", 0.0, supercell, {}), with_model=False).network
    labels = channel_labels(net)
    li3 = net.site_class == net.class_names.index("Li3")
    counts = np.bincount(labels[li3])
    return int(np.max(counts))


#: part 2: c-LLZO (Li7) at this temperature, where short blocks overstate D* several times
ESTIMATOR_T_K = 400.0
#: the block length the old estimator was commonly run with (issue 15): 20 hops per ion
SHORT_BLOCK_HOPS_PER_ION = 20.0
#: frames per replica in part 2: with the 32000 hops per ion of the run the shortest lag is
#: 32000 / 4096 = 7.8 hops per ion, so the 20-hop value lies inside the lag grid (interpolated
#: between its neighbours; with the default 256 frames the shortest lag is 125 hops)
ESTIMATOR_MSD_FRAMES = 4096


def apparent_D(supercell, hops_per_ion: float, replicas: int, seed: int) -> dict:
    """Part 2: D* of c-LLZO at :data:`ESTIMATOR_T_K` from the MSD slope (``kmc run``'s
    estimator) and the apparent D(tau) = MSD(tau) / (6 tau) that a block estimator with blocks of
    length tau would report, on the run's lag grid."""
    cfg = Config.from_dict({
        "lattice": {"builtin": "llzo-cubic-latticegas", "supercell": list(supercell)},
        "run": {"temperatures_K": [ESTIMATOR_T_K], "hops_per_ion": hops_per_ion,
                "equilibration_hops_per_ion": 20, "replicas": replicas, "seed": seed,
                "msd_frames": ESTIMATOR_MSD_FRAMES}})
    res = run_config(cfg)
    r, c = res.results[0], res.msd[0]
    t, msd = c["t_s"][1:], c["msd_tracer_A2"][1:]
    hops_at = t * r["hops_per_ion_used"] / r["time_s"]       # hops per ion in a lag
    app = msd / (2 * r["dimensionality"] * t) * 1e-16        # cm^2/s
    # the lag grid is log-spaced: interpolate (log-log) to exactly the block length the text
    # names, which must lie inside the grid (np.interp would return the end value instead)
    if not hops_at[0] <= SHORT_BLOCK_HOPS_PER_ION <= hops_at[-1]:
        raise RuntimeError(f"the shortest lag is {hops_at[0]:.3g} hops per ion, longer than the "
                           f"{SHORT_BLOCK_HOPS_PER_ION:g}-hop blocks; raise ESTIMATOR_MSD_FRAMES")
    short = float(np.exp(np.interp(np.log(SHORT_BLOCK_HOPS_PER_ION), np.log(hops_at), np.log(app))))
    return {"t_s": t, "hops_per_ion": hops_at, "apparent_D_cm2_s": app,
            "D_cm2_s": r["D_tracer_cm2_s"], "D_err_cm2_s": r["D_tracer_err_cm2_s"],
            "fit": r["fit"]["D_tracer"], "diffusive": r["diffusive_D_tracer"],
            "short_block_D_cm2_s": short, "short_block_hops": SHORT_BLOCK_HOPS_PER_ION,
            "shortest_lag_hops": float(hops_at[0]),
            "n_ions": res.network["n_ions"], "f": r["correlation_factor"]}


def estimator_part(outdir: Path, quick: bool = False) -> tuple[dict, Path]:
    """Part 2 of lesson 5 (c-LLZO lattice gas only): D* from the MSD slope against the apparent D
    of short blocks; prints its text, saves ``lesson5_msd_estimator.png`` and returns its numbers
    and the figure's path."""
    # ~30000 hops per ion reach the diffusive regime (f ~ 0.005): the quick lesson uses fewer
    # replicas, not fewer hops, so it says what the full one says
    est = {"supercell": (2, 2, 2), "hops_per_ion": 32000, "replicas": 3 if quick else 8, "seed": 5}
    heading("Part 2 — measuring D honestly: the MSD slope, not short blocks")
    a = apparent_D(**est)
    fit = a["fit"]
    ratio = a["short_block_D_cm2_s"] / a["D_cm2_s"]
    say(f"""
    Lithium in c-LLZO (Li7) spends most hops rattling between a 24d site and its 96h
    neighbours and back: at {ESTIMATOR_T_K:g} K the tracer correlation factor of this run is
    f = {a['f']:.3f}. A block estimator cuts each trajectory into blocks of length tau and reports
    sum |dr|^2 / (6 N tau) — the apparent D(tau) = MSD(tau) / (6 tau). In the diffusive
    regime (MSD linear in t) that is D*, but before it the back-and-forth hops inflate it.
    `kmc run` instead records the unwrapped displacements at frames equally spaced in time,
    forms the MSD over all time origins on a log-spaced grid of lags, and fits its slope
    in a window where the local exponent d ln MSD / d ln t is near 1 and the MSD exceeds a
    few squared hop lengths; the error is the spread over independent replicas.

      {a['n_ions']} Li, {est['replicas']} replicas, {est['hops_per_ion']} hops per ion:
      D* (MSD slope, fit {fit['start_s']:.3g}-{fit['end_s']:.3g} s, {fit['n_points']} lags,
      local exponent {fit['local_exponent']:.2f}, diffusive: {a['diffusive']})
         = {a['D_cm2_s']:.3g} ± {a['D_err_cm2_s']:.2g} cm2/s
      apparent D with {a['short_block_hops']:.0f}-hop-per-ion blocks = {a['short_block_D_cm2_s']:.3g}
      cm2/s, {ratio:.1f} times too high (lags from {a['shortest_lag_hops']:.2g} hops per ion)

    When the window never becomes diffusive, the result says so (`diffusive: false` in
    result.json and a warning on the command line): run longer (raise [run] hops_per_ion, or
    set target_rel_err so the run extends until it is diffusive) rather than trusting the
    number.
    """)
    fig2, (ax,) = new_figure(6.4, 4.2)
    ax.plot(a["hops_per_ion"], a["apparent_D_cm2_s"], "o-", ms=3, color="C0",
            label=r"apparent $D(\tau)$ = MSD$(\tau)/6\tau$ (a block estimator)")
    ax.axhspan(a["D_cm2_s"] - a["D_err_cm2_s"], a["D_cm2_s"] + a["D_err_cm2_s"], color="C3",
               alpha=0.3, label=r"$D^*$ from the MSD slope ($\pm$1 SE)")
    scale = a["hops_per_ion"][-1] / a["t_s"][-1]
    ax.axvspan(fit["start_s"] * scale, fit["end_s"] * scale, color="0.5", alpha=0.15,
               label="fit window" + ("" if a["diffusive"] else " (NOT diffusive)"))
    ax.axvline(SHORT_BLOCK_HOPS_PER_ION, color="0.3", ls=":")
    ax.plot([SHORT_BLOCK_HOPS_PER_ION], [a["short_block_D_cm2_s"]], "D", ms=7, mfc="white", mec="k",
            ls=":", color="0.3", zorder=3,
            label=f"{SHORT_BLOCK_HOPS_PER_ION:g}-hop blocks: {ratio:.1f}× $D^*$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"block length / lag $\tau$ (hops per ion)")
    ax.set_ylabel(r"$D$ (cm$^2$/s)")
    ax.set_title(f"c-LLZO (Li7), {ESTIMATOR_T_K:g} K: short blocks overstate D*",
                 fontsize="medium")
    ax.legend(fontsize="small")
    path = save_figure(fig2, outdir, "lesson5_msd_estimator.png")
    return {"estimator_D_cm2_s": a["D_cm2_s"], "estimator_D_err_cm2_s": a["D_err_cm2_s"],
            "estimator_diffusive": a["diffusive"], "short_block_D_cm2_s": a["short_block_D_cm2_s"],
            "short_block_over_msd_D": ratio, "shortest_lag_hops": a["shortest_lag_hops"]}, path


@timed
def run(outdir: Path, quick: bool = False) -> dict:
    """Run lesson 5; returns ``numbers`` and ``figures``."""
    heading("Lesson 5 — dimensionality and blocking: 1D channels vs a 3D network")
    say("""
    Superionic conductors come in different dimensionalities. In LGPS (Li10GeP2S12) lithium
    runs fastest along 1D channels parallel to c; in garnets (Li7La3Zr2O12 and its doped
    relatives) the Li sites form a 3D network of tetrahedral (24d) junctions joined through
    octahedral (96h) sites. Put immobile ions on some of the junction sites — a dopant, an
    impurity, a stuck ion — and the two respond differently: a blocker cuts its 1D channel
    for good, while a 3D network can be walked round.
    """)
    if quick:
        ps, lg_cell, ga_cell = [0.0, 0.2], (2, 2, 2), (1, 1, 1)
        lg_stats = {"replicas": 4, "blocks": 4, "block_hops_per_ion": 200}
        ga_run = {"hops_per_ion": 300, "time_origins": 6, "replicas": 6, "seed": 5}
        grid, samples, long_cell = np.linspace(0, 1, 6), 2, (2, 2, 4)
    else:
        ps, lg_cell, ga_cell = [0.0, 0.05, 0.1, 0.2, 0.3], (2, 2, 4), (2, 2, 2)
        lg_stats = {"replicas": 8, "blocks": 8, "block_hops_per_ion": 400}
        ga_run = {"hops_per_ion": 600, "time_origins": 6, "replicas": 12, "seed": 5}
        grid, samples, long_cell = np.linspace(0, 1, 21), 6, (2, 2, 8)
    L = junctions_per_channel(lg_cell)
    L_long = junctions_per_channel(long_cell)
    lg, ga = {}, {}
    for p in ps:
        m, e, info = lgps_channel_conductance(p, lg_cell, seed=5, **lg_stats)
        lg[p] = (m, e, info["blocked"], info["n_ions"])
    for p in ps:
        res = run_config(_config("garnet", p, ga_cell, ga_run))
        r, n = res.results[0], res.network["n_ions"]
        ga[p] = (n * r["D_jump_cm2_s"], n * r["D_jump_err_cm2_s"],
                 sum(res.network.get("blocked_per_class", {}).values()), n)
    print(f"  {'framework':<22} {'p':>5} {'blockers':>8} {'ions':>5}   {'sigma/sigma(0)':>16}"
          f"   open channels (1-p)^{L}")
    for name, data in (("LGPS-like, sigma_zz", lg), ("garnet Li6, sigma", ga)):
        s0 = data[0.0][0]
        for p, (s, e, nb, n) in data.items():
            tail = f"   {(1 - p) ** L:.3f}" if data is lg else ""
            print(f"  {name:<22} {p:5.2f} {nb:8d} {n:5d}   {s / s0:7.3f} ± {e / s0:.3f}{tail}")
    print()
    curves = {"lgps": _percolation_curve("lgps", lg_cell, grid, samples, seed=9),
              "lgps_long": _percolation_curve("lgps", long_cell, grid, samples, seed=9),
              "garnet": _percolation_curve("garnet", ga_cell, grid, samples, seed=9)}
    above = grid[curves["garnet"][0] > 0.5]
    p_c = float(above.max()) if len(above) else float("nan")
    say(f"""
    ({T_K:g} K. LGPS-like: {'x'.join(map(str, lg_cell))} cells, inter-channel hops switched off;
    each channel of this cell crosses L = {L} Li3 junction sites. Garnet: Li6La3ZrTaO12,
    {'x'.join(map(str, ga_cell))} cells. p = fraction of the junction sites blocked (LGPS Li3,
    garnet 24d); each blocker replaces one Li. sigma/sigma(0) compares (N/V) D_J with the
    unblocked run, so the lost Li are accounted for. For LGPS the channels are independent,
    so their collective displacements add in quadrature — the same mean as the all-ion sum
    with several times less noise.)

    LGPS-like channels: a channel carries current only if none of its L junctions is
    blocked, probability (1 - p)^L, and the simulated conductivity follows that fraction of
    open channels. L grows with the length of the crystal: {L} junctions here, {L_long} in a
    cell twice as long (right panel), about 10^7 in a 1 cm crystal — so ANY blocker content
    switches truly 1D conduction off. Real LGPS survives because its channels are linked by
    slower hops through the 4c/4d sites (quasi-1D), which give ions a way round a blocker.

    Garnet: the 3D network keeps spanning the crystal until about p = {p_c:.2f} (right panel),
    and that threshold does not depend on the crystal size. Its conductivity still falls
    with p, and faster than geometry alone suggests: in this hard-core model a blocked 24d
    also excludes Li from the four 96h sites next to it, so each blocker takes a whole
    junction with its approaches out of play and forces the Li around it into fewer
    arrangements. The loss is local and finite, though — it does not compound with the length
    of the crystal the way the 1D loss does.
    """)
    fig, (ax1, ax2) = new_figure(11.0, 4.2, ncols=2)
    for data, label, col, mk in ((lg, rf"LGPS-like 1D channels ($\sigma_{{zz}}$, L = {L})", "C3",
                                  "o"),
                                 (ga, "garnet 3D network (Li6)", "C0", "s")):
        s0 = data[0.0][0]
        pp = np.array(list(data))
        ax1.errorbar(pp, [v[0] / s0 for v in data.values()],
                     yerr=[v[1] / s0 for v in data.values()], fmt=mk + "-", color=col,
                     capsize=3, label=label)
    pg = np.linspace(0, max(ps), 50)
    ax1.plot(pg, (1 - pg) ** L, color="C3", ls=":", label=f"open channels $(1-p)^{{{L}}}$")
    ax1.plot(pg, (1 - pg) ** L_long, color="C1", ls=":",
             label=f"... twice as long, $(1-p)^{{{L_long}}}$")
    ax1.set_yscale("log")
    ax1.set_ylim(3e-3, 1.5)
    ax1.set_xlabel("fraction p of junction sites blocked")
    ax1.set_ylabel(r"$\sigma(p)/\sigma(0)$")
    ax1.set_title(f"conductivity with immobile blockers, {T_K:g} K", fontsize="medium")
    ax1.legend(fontsize="small", loc="lower left")
    for key, label, col in (("lgps", f"LGPS-like channels, L = {L}", "C3"),
                            ("lgps_long", f"LGPS-like channels, L = {L_long}", "C1"),
                            ("garnet", "garnet network", "C0")):
        m, e = curves[key]
        ax2.errorbar(grid, m, yerr=e, fmt=".-", color=col, capsize=2, label=label)
    ax2.set_xlabel("fraction p of junction sites blocked")
    ax2.set_ylabel("free sites in a spanning cluster")
    ax2.set_title("percolation picture (random blockers, no dynamics)", fontsize="medium")
    ax2.legend(fontsize="small")
    figs = [save_figure(fig, outdir, "lesson5_blocking.png")]
    numbers: dict = {"junctions_per_channel": L, "junctions_per_channel_long": L_long,
                     "garnet_threshold_p": p_c, "p_grid": grid.tolist()}
    for name, data in (("lgps", lg), ("garnet", ga)):
        s0 = data[0.0][0]
        for p, v in data.items():
            numbers[f"{name}_sigma_ratio_p{p:g}"] = v[0] / s0
            numbers[f"{name}_sigma_ratio_err_p{p:g}"] = v[1] / s0
    for key, (m, _) in curves.items():
        numbers[f"{key}_spanning_curve"] = m.tolist()

    part2_numbers, part2_figure = estimator_part(outdir, quick)
    numbers.update(part2_numbers)
    figs.append(part2_figure)
    return {"numbers": numbers, "figures": figs}
