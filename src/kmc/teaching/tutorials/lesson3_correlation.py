"""Lesson 3 — correlation: the single-vacancy tracer correlation factor on 2D and 3D lattices.

One vacancy in an otherwise full lattice, every nearest-neighbour hop equally fast. The tracer
correlation factor ``f = sum_i |dr_i|^2 / sum_hops |hop|^2`` is measured on seven teaching
lattices and compared with the exact values (Compaan & Haven 1956/58; the 3D values to nine
digits from Trinkle's ``onsager`` Green-function code, 2017; the 2D closed forms 1/(pi - 1),
(pi + 6 sqrt 3)/(11 pi - 6 sqrt 3) and 1/3), kept in :data:`kmc.validate.EXACT_CORRELATION_FACTORS`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kmc.teaching.tutorials._common import heading, new_figure, save_figure, say, timed
from kmc.validate import EXACT_CORRELATION_FACTORS, check_correlation_factor

#: (lattice, coordination z, dimensionality d), 2D first
LATTICES = (("honeycomb", 3, 2), ("square", 4, 2), ("triangular", 6, 2),
            ("diamond", 4, 3), ("sc", 6, 3), ("bcc", 8, 3), ("fcc", 12, 3))
QUICK_SUPERCELL = {"honeycomb": (12, 12, 1), "square": (18, 18, 1), "triangular": (18, 18, 1),
                   "diamond": (4, 4, 4), "sc": (8, 8, 8), "bcc": (6, 6, 6), "fcc": (5, 5, 5)}


@timed
def run(outdir: Path, quick: bool = False) -> dict:
    """Run lesson 3; returns ``numbers`` and ``figures``."""
    heading("Lesson 3 — correlation: the single-vacancy correlation factor")
    say("""
    An ion can only jump into a vacancy. Right after it has jumped, the vacancy is exactly
    where the ion came from, so the ion's most likely next jump is straight back. Its jumps
    are correlated: successive jump directions have a negative average cosine <cos theta>,
    and the tracer diffuses slower than a random walker with the same jump rate by the
    correlation factor

      f = lim <|R|^2> / (n a^2) = (1 + <cos theta>) / (1 - <cos theta>)   (n jumps of length a)

    measured here as f = sum_i |dr_i|^2 / sum_hops |hop|^2. More neighbours (larger z) give
    the vacancy more ways to wander off before it returns, so f grows with z; a rough rule is
    f ~ 1 - 2/z. The exact numbers need the full return statistics of the vacancy walk
    (lattice Green functions) — which is what makes them a good test of an engine.
    """)
    reps, hops = (6, 60) if quick else (16, 100)
    rows, res = [], {}
    for lattice, z, d in LATTICES:
        c = check_correlation_factor(lattice, reps, hops, seed=2024,
                                     supercell=QUICK_SUPERCELL[lattice] if quick else None)
        res[lattice] = (c.model, c.se, c.exact, z, d, c.infinite)
        rows.append(f"  {lattice:<11} {z:>3} {d:>3}   {c.model:.4f} ± {c.se:.4f}   "
                    f"{c.exact:.6f}   {c.deviation_se:+6.2f}   {c.infinite:.6f}   {1 - 2 / z:.3f}")
    print(f"  {'lattice':<11} {'z':>3} {'d':>3}   {'f (kMC)':<15}   {'f box':<8}   "
          f"{'dev/SE':>6}   {'f infinite':<8}   1-2/z")
    print("\n".join(rows) + "\n")
    note = " (quick mode: smaller supercells and fewer replicas)" if quick else ""
    say(f"""
    ({reps} replicas x {hops:g} hops per ion on each lattice; "f box" is the exact value for the
    simulated periodic supercell with its one vacancy (jump-chain method), "f infinite" that of
    the infinite lattice (Compaan & Haven; Trinkle); the box is a little higher, by O(1/N_sites),
    which is why the supercells here have about 1000 sites{note}. dev/SE is (model - f box) over
    the replica standard error.)

    What to take away:

    - f < 1 everywhere: a vacancy-mediated tracer walk is never a random walk.

    - At the same z, 2D and 3D differ (square and diamond both have z = 4: 0.467 vs 0.500):
    in 2D the vacancy is more likely to come back, so the tracer is pulled back more often.

    - In 1D (a chain) a single vacancy can only rattle the tracer back and forth: f -> 0 as
    the chain grows (exactly 1/(N - 1) on a ring of N sites; `kmc validate` checks the
    finite-ring formula).

    - The Haven ratio of the dilute vacancy mechanism equals this f (lesson 2), so a
    measured H_R near 0.65 in a simple-cubic-like conductor points to vacancies.
    """)
    fig, (ax,) = new_figure(6.4, 4.2)
    for dim, marker, col in ((2, "s", "C0"), (3, "o", "C3")):
        sel = [(lat, v) for lat, v in res.items() if v[4] == dim]
        zz = np.array([v[3] for _, v in sel], float)
        ax.errorbar(zz, [v[0] for _, v in sel], yerr=[v[1] for _, v in sel], fmt=marker,
                    color=col, ms=7, capsize=3, label=f"kMC, {dim}D lattices")
        ax.scatter(zz, [v[2] for _, v in sel], marker="_", s=500, color="k", zorder=3)
        for lat, v in sel:
            ax.annotate(lat, (v[3], v[0]), textcoords="offset points",
                        xytext=(8, -12 if lat == "square" else 4),
                        fontsize="small", color=col)
    zgrid = np.linspace(2.5, 12.5, 100)
    ax.plot(zgrid, 1 - 2 / zgrid, color="0.6", ls=":", label="rough rule $1-2/z$")
    ax.scatter([], [], marker="_", s=300, color="k", label="exact for the simulated box")
    ax.set_xlabel("coordination number z")
    ax.set_ylabel("tracer correlation factor f")
    ax.set_title("single-vacancy correlation factor: kMC vs exact", fontsize="medium")
    ax.set_ylim(0.2, 0.9)
    ax.legend(fontsize="small", loc="lower right")
    figs = [save_figure(fig, outdir, "lesson3_correlation.png")]
    numbers = {}
    for lat, (m, se, ex, z, d, inf) in res.items():
        numbers[f"f_{lat}"], numbers[f"f_{lat}_err"], numbers[f"f_{lat}_exact"] = m, se, ex
        numbers[f"f_{lat}_infinite"] = inf
    assert set(EXACT_CORRELATION_FACTORS) == set(res)
    return {"numbers": numbers, "figures": figs}
