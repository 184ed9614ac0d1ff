"""Command line of the teaching tools: ``kmc validate``, ``kmc tutorial`` and ``kmc animate``.

:func:`add_parsers` registers the three sub-commands on the ``kmc`` parser's sub-parsers.

Exit codes: 0 success (every check passed), 1 a check failed (``kmc validate``), 2 bad input
(one sentence on stderr), 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import time

from kmc.cli.argtypes import positive_float, positive_int
from kmc.files import jsonable


def cmd_validate(args: argparse.Namespace) -> int:
    """Run the exact checks, print the table, return 0 when all pass and 1 otherwise."""
    # lazy: kmc.validate loads the engine and scipy.stats (~1 s); `kmc --help` does not load it
    from kmc import validate

    only = None
    if args.only:
        only = [g.strip() for item in args.only for g in item.split(",") if g.strip()]
    only = validate.resolve_groups(only)
    mode = "quick" if args.quick else "full"
    t0 = time.perf_counter()
    if not args.json:
        print(f"kmc validate ({mode}): model vs exact; a check passes within "
              f"{validate.SE_TOLERANCE:g} standard errors with a sharp SE (KS tests: p > "
              f"{validate.P_MIN:g})")
        print("(f: 'exact' is the value of one vacancy in the simulated periodic box; the "
              "infinite lattice's is beside it)", flush=True)
        print(validate.TABLE_HEAD)
        print("-" * len(validate.TABLE_HEAD), flush=True)

    def show(c: validate.Check) -> None:
        if not args.json:
            print(validate.format_row(c), flush=True)

    checks = validate.run_checks(quick=args.quick, only=only, on_check=show)
    wall = time.perf_counter() - t0
    failed = [c for c in checks if not c.passed]
    if args.json:
        print(json.dumps({"mode": mode, "wall_s": wall, "passed": not failed,
                          "checks": [jsonable(c.to_dict()) for c in checks]}))
    else:
        verdict = (f"{len(checks) - len(failed)} of {len(checks)} checks passed in {wall:.0f} s"
                   + (f"; FAILED: {', '.join(c.name for c in failed)}" if failed else
                      ": the install reproduces the exact results."))
        print("-" * len(validate.TABLE_HEAD))
        print(verdict)
        blunt = [c.name for c in failed if not c.sharp]
        if blunt:
            print(f"(BLUNT: the standard error of {', '.join(blunt)} is too large for the "
                  f"comparison to mean anything)")
    return 1 if failed else 0


def cmd_tutorial(args: argparse.Namespace) -> int:
    """Run one lesson of :mod:`kmc.teaching.tutorials` (or list them)."""
    # lazy: three modules, ~1-3 ms that `kmc --help` would pay; only `kmc tutorial` needs them
    from kmc.teaching.tutorials import LESSONS, run_lesson

    if args.lesson is None:
        for n, (mod, title) in LESSONS.items():
            print(f"  {n}. {title}   (kmc tutorial {n} [--quick] [--outdir DIR])")
        return 0
    run_lesson(args.lesson, outdir=args.outdir, quick=args.quick)
    return 0


def cmd_animate(args: argparse.Namespace) -> int:
    """Write a GIF/MP4 of ions hopping on a 2D teaching lattice."""
    # lazy: kmc.teaching.animate loads kmc.runs.system (~0.4 s, scipy); only `kmc animate` needs it
    from kmc.teaching.animate import animate

    path = animate(args.source, args.out, hops=args.hops, fps=args.fps,
                   supercell=args.supercell, vacancies=args.vacancies, ions=args.ions,
                   temperature_K=args.temperature, seed=args.seed)
    print(f"wrote {path} ({args.hops} hops)")
    return 0


def add_parsers(subparsers) -> None:
    """Register ``validate``, ``tutorial`` and ``animate`` on ``subparsers``."""
    v = subparsers.add_parser(
        "validate", help="check this install against exact results (correlation factors, "
                         "one-ion D, lattice-gas D_J, Boltzmann occupations, Arrhenius)",
        description="Run seeded simulations whose answers are known exactly and print model vs "
                    "exact with the deviation in standard errors. Exit code 0 when every check "
                    "passes, 1 when any fails.")
    v.add_argument("--quick", action="store_true",
                   help="fewer lattices and replicas (under two minutes on two cores)")
    v.add_argument("--only", action="append", metavar="GROUP[,GROUP]",
                   help="run only these check groups: correlation, ring, one-ion, lattice-gas, "
                        "boltzmann, arrhenius")
    v.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    v.set_defaults(func=cmd_validate)

    t = subparsers.add_parser(
        "tutorial", help="run a teaching lesson (1-6) that explains and plots; no number lists "
                         "them",
        description="Six short lessons on ion conduction, each printing an explanation and "
                    "saving its figures into --outdir.")
    t.add_argument("lesson", nargs="?", type=int, choices=range(1, 7), metavar="N",
                   help="lesson number 1-6 (omit to list the lessons)")
    t.add_argument("--quick", action="store_true", help="a few seconds, noisier numbers")
    t.add_argument("--outdir", metavar="DIR", default="tutorial-out",
                   help="where the figures go (default: tutorial-out)")
    t.set_defaults(func=cmd_tutorial)

    a = subparsers.add_parser(
        "animate", help="animate ions, vacancies and the hopping ion on a 2D teaching lattice "
                        "(GIF, or MP4 with ffmpeg)",
        description="One frame per hop on a 2D teaching lattice (square, triangular, honeycomb) "
                    "or a chain, from a lattice name or a TOML config of such a lattice.")
    a.add_argument("source", help="square | triangular | honeycomb | chain, or a TOML config "
                                  "of one of them")
    a.add_argument("--out", metavar="FILE", default="kmc-animation.gif",
                   help="output file, .gif (Pillow) or .mp4 (needs ffmpeg); default "
                        "kmc-animation.gif")
    a.add_argument("--hops", type=positive_int, default=60, help="hops to show (frames)")
    a.add_argument("--fps", type=positive_float, default=4.0, help="frames per second")
    a.add_argument("--supercell", nargs=2, type=positive_int, metavar=("A", "B"),
                   help="repetitions of the unit cell in the plane (default 8 8, chain 16)")
    g = a.add_mutually_exclusive_group()
    g.add_argument("--vacancies", type=int, metavar="N",
                   help="number of vacancies (default 3 for a lattice name)")
    g.add_argument("--ions", type=int, metavar="N", help="number of ions")
    a.add_argument("--temperature", type=positive_float, default=None, metavar="K",
                   help="temperature in K (default 600, or the config's first)")
    a.add_argument("--seed", type=int, default=None, help="random seed (default 1, or the "
                                                          "config's)")
    a.set_defaults(func=cmd_animate)
