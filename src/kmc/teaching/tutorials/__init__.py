"""Six short lessons on ion conduction, each printing an explanation and saving its figures.

Run one with ``kmc tutorial N [--quick] [--outdir DIR]`` or
``python scripts/tutorials/lessonN_*.py [--quick] [--outdir DIR]``; from Python,
:func:`run_lesson` returns the lesson's key numbers and the figures it wrote.

1. :mod:`~kmc.teaching.tutorials.lesson1_clock` — a random walk vs the kMC clock: ``dt = -ln(u)/R_total``.
2. :mod:`~kmc.teaching.tutorials.lesson2_mechanisms` — vacancy, interstitial and interstitialcy
   mechanisms: D*, D_J and the Haven ratio.
3. :mod:`~kmc.teaching.tutorials.lesson3_correlation` — the single-vacancy correlation factor on 2D and
   3D lattices against the exact values.
4. :mod:`~kmc.teaching.tutorials.lesson4_arrhenius` — from a temperature sweep to Ea and sigma(300 K) with
   the uncertainty band, and where the activation energy comes from.
5. :mod:`~kmc.teaching.tutorials.lesson5_blocking` — a 1D-channel framework (LGPS-like) against a 3D
   network (garnet) as immobile blockers are added; percolation.
6. :mod:`~kmc.teaching.tutorials.lesson6_barriers` — where barriers come from: a CI-NEB band, the
   lattice Hamiltonian ``kmc parametrize`` fitted for c-LLZO, and that model run through ``kmc run``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from kmc.exceptions import ConfigError, KMCError
from kmc.teaching.tutorials._common import prepare_outdir

#: lesson number -> (module, title)
LESSONS: dict[int, tuple[str, str]] = {
    1: ("kmc.teaching.tutorials.lesson1_clock", "A random walk vs the kMC clock"),
    2: ("kmc.teaching.tutorials.lesson2_mechanisms",
        "Vacancy vs interstitial vs interstitialcy: D*, D_J and the Haven ratio"),
    3: ("kmc.teaching.tutorials.lesson3_correlation", "Correlation: the single-vacancy correlation factor"),
    4: ("kmc.teaching.tutorials.lesson4_arrhenius", "Arrhenius: from a temperature sweep to Ea and sigma"),
    5: ("kmc.teaching.tutorials.lesson5_blocking", "Dimensionality and blocking: 1D channels vs a 3D "
                                          "network"),
    6: ("kmc.teaching.tutorials.lesson6_barriers", "Where barriers come from: NEB, a fitted lattice "
                                                   "Hamiltonian, the computed model in kmc run"),
}


def run_lesson(number: int, outdir: str | Path = "tutorial-out", quick: bool = False) -> dict:
    """Run lesson ``number`` (1-6): print its explanation, save its figures into ``outdir``.

    Parameters
    ----------
    number : int
        Lesson number, 1-6.
    outdir : str or Path
        Directory for the figures (created if missing).
    quick : bool
        A few seconds instead of up to a minute, with noisier numbers.

    Returns
    -------
    dict
        ``numbers`` (the lesson's key results), ``figures`` (paths written) and ``seconds``.
    """
    if number not in LESSONS:
        raise ConfigError(f"there is no lesson {number}; choose 1 to {len(LESSONS)}.")
    out = prepare_outdir(outdir)
    module = importlib.import_module(LESSONS[number][0])
    return module.run(out, quick=quick)


def script_main(number: int, argv: list[str] | None = None) -> int:
    """Entry point of ``scripts/tutorials/lessonN_*.py``: ``[--quick] [--outdir DIR]``."""
    p = argparse.ArgumentParser(description=f"kmc lesson {number}: {LESSONS[number][1]}")
    p.add_argument("--quick", action="store_true", help="a few seconds, noisier numbers")
    p.add_argument("--outdir", default="tutorial-out", help="where the figures go")
    args = p.parse_args(argv)
    try:
        run_lesson(number, outdir=args.outdir, quick=args.quick)
    except KMCError as exc:
        print(f"kmc: error: {exc}", file=sys.stderr)
        return 2
    return 0
