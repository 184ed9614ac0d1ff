"""``kmc neb`` and ``kmc parametrize``: the command-line face of :mod:`kmc.parametrize`.

Errors are :class:`kmc.exceptions.KMCError` subclasses (one sentence; ``kmc`` exits 2). Nothing is
half-written: the band file and the model directory appear complete or not at all.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from kmc.exceptions import ConfigError

__all__ = ["add_parsers", "cmd_neb", "cmd_parametrize"]


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return v


def cmd_neb(args: argparse.Namespace) -> int:
    """One climbing-image NEB between two endpoint files."""
    # lazy: kmc.parametrize loads ase and scipy (~0.7 s); `kmc --help` does not load it
    from kmc.parametrize.calculators import get_calculator
    from kmc.parametrize.neb import (
        NEBSettings,
        neb_path,
        read_endpoint,
        require_converged,
    )

    if args.images < 1 or args.steps < 1:
        raise ConfigError("--images and --steps must be at least 1; use e.g. --images 5 --steps 400.")
    initial, final = read_endpoint(args.initial), read_endpoint(args.final)
    settings = NEBSettings(n_images=args.images, fmax_eV_A=args.fmax, relax_endpoints=not args.no_relax,
                           max_steps=args.steps)
    band = Path(args.band) if args.band else None
    if band is not None and not band.resolve().parent.is_dir():
        raise ConfigError(f"the directory of --band {args.band!r} does not exist; create it or choose "
                          "another path.")
    backend = get_calculator(args.calculator, threads=args.threads, quiet=args.quiet or args.json)
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="kmc-neb-"))
    log = (lambda m: None) if args.json or args.quiet else None
    result = require_converged(neb_path(initial, final, backend, settings, cache_dir=cache, log=log))
    if band is not None:
        # lazy: ase.io costs ~0.2 s (scipy); `kmc --help` does not load it
        from ase.io import read, write

        images = read(result.band_file, index=":")
        fd, tmp = tempfile.mkstemp(dir=band.resolve().parent, prefix=f".{band.name}.", suffix=".extxyz")
        os.close(fd)
        try:
            write(tmp, images, format="extxyz")
            os.replace(tmp, band)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    d = result.to_dict()
    if args.json:
        print(json.dumps(d))
    else:
        for k in ("barrier_forward_eV", "barrier_backward_eV", "E_KRA_eV", "dE_eV"):
            print(f"{k} = {d[k]:.4f}")
        print(f"moving atom {d['moving_atom']}, hop {d['hop_length_A']:.3f} Å, {settings.n_images} images, "
              f"max force {d['max_force_eV_A']:.3f} eV/Å after {d['steps']} steps, {d['wall_s']:.1f} s "
              f"({backend.name})")
        if band is not None:
            print(f"band written to {band}")
    return 0


def cmd_parametrize(args: argparse.Namespace) -> int:
    """Fit a lattice Hamiltonian and NEB barriers to a structure; write DIR/model.toml + data.json."""
    # lazy: kmc.parametrize loads ase and scipy (~0.7 s); `kmc --help` does not load it
    from kmc.cli.info import parse_interstitialcy_flag
    from kmc.parametrize.lattice import parse_dopant
    from kmc.parametrize.pipeline import ParametrizeSettings, parametrize

    kw = {}
    if args.configs is not None:
        kw["n_configs"] = args.configs
    if args.vacancies is not None:
        kw["max_vacancies"] = args.vacancies
    if args.environments is not None:
        kw["n_environments"] = args.environments
    if args.seed is not None:
        kw["seed"] = args.seed
    if args.relax_cell:
        kw["relax_cell"] = True
    if args.site_tolerance is not None:
        kw["site_tolerance_A"] = args.site_tolerance
    settings = ParametrizeSettings.quick(**kw) if args.quick else ParametrizeSettings(**kw)
    command = "kmc " + " ".join(sys.argv[1:]) if Path(sys.argv[0]).name in ("kmc", "__main__.py") else None
    model = parametrize(args.structure, args.mobile, args.out,
                        supercell=tuple(args.supercell) if args.supercell else None,
                        hop_cutoff_A=args.hop_cutoff, interaction_cutoff_A=args.interaction_cutoff,
                        exclusion_cutoff_A=args.exclusion_cutoff, calculator=args.calculator,
                        dopants=[parse_dopant(d) for d in args.dopant or ()], settings=settings,
                        cache_dir=args.cache, threads=args.threads, include=args.include or (), join=args.join or (),
                        progress=not args.json and not args.quiet and sys.stderr.isatty(),
                        log=(lambda m: None) if args.json or args.quiet else None, command=command,
                        quiet=args.quiet or args.json, name=args.name, workers=args.workers,
                        interstitialcy=parse_interstitialcy_flag(args.interstitialcy) if args.interstitialcy else None)
    s = model.summary
    if args.json:
        print(json.dumps(s, default=float))
        return 0
    print("site energies (eV): " + ", ".join(f"{k} {v:+.4f}" for k, v in s["site_energies_eV"].items()))
    for name, t in s["terms"].items():
        if not name.startswith("site:"):
            print(f"  {name:<40} {t['value_eV']:+.4f} ± {t['error_eV']:.4f} eV")
    if s["undetermined"]:
        print(f"undetermined by the sampled configurations: {', '.join(s['undetermined'])}")
    print(f"CV RMSE {s['cv_rmse_meV_per_cell']:.2f} meV per cell ({s['cv_rmse_meV_per_mobile_ion']:.3f} meV "
          f"per mobile ion), {s['n_configurations']} configurations")
    print(f"relaxed away (computed hard exclusions): {', '.join(s['computed_exclusions']) or 'none'}")
    if s.get("computed_dopant_exclusions"):
        print(f"relaxed away next to a dopant (sites it blocks): {', '.join(s['computed_dopant_exclusions'])}")
    for name, b in s["barriers_eV"].items():
        print(f"E_KRA {name:<30} {b['mean']:.4f} ± {b['std']:.4f} eV ({b['n']} environments)")
    hc = s.get("hop_energy_check", {})
    if hc.get("n_mapped"):
        print(f"hop check (bands not fitted): {hc['n_single_hop']} of {hc['n_bands']} bands are the single hop, "
              f"{hc['n_rearranged']} rearrange several ions, {hc['n_same_arrangement']} relax back; Hamiltonian "
              f"minus band energy change {hc['mean_diff_eV']:+.3f} eV mean, {hc['rms_diff_eV']:.3f} eV RMS")
    print(f"attempt frequency {s['attempt_frequency_THz']:.2f} THz; {s['wall_s']:.0f} s")
    print(f"model written to {s['model']} (data in {s['data']})")
    return 0


def add_parsers(sub) -> None:
    """Register ``kmc neb`` and ``kmc parametrize`` on the ``kmc`` subparsers."""
    n = sub.add_parser("neb", help="climbing-image NEB between two endpoint structures: forward/backward "
                                   "barriers, E_KRA and dE")
    n.add_argument("initial", help="initial endpoint (POSCAR, CIF, extxyz)")
    n.add_argument("final", help="final endpoint (same atoms in the same order, same cell)")
    n.add_argument("--images", type=int, default=5, help="intermediate images (default 5)")
    n.add_argument("--calculator", default="chgnet",
                   help="chgnet (default), sevennet, or module:Class of any ASE calculator")
    n.add_argument("--fmax", type=_positive, default=0.05, help="force tolerance, eV/Å (default 0.05)")
    n.add_argument("--steps", type=int, default=400, help="optimizer steps per stage (default 400)")
    n.add_argument("--no-relax", action="store_true", help="use the endpoints as given (no relaxation)")
    n.add_argument("--band", metavar="FILE", help="write the converged band (extxyz) to FILE")
    n.add_argument("--cache", metavar="DIR", help="keep finished stages in DIR; a rerun resumes")
    n.add_argument("--threads", type=int, help="torch threads of the MLIP")
    n.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    n.add_argument("--quiet", action="store_true", help="no progress lines")
    n.set_defaults(func=cmd_neb)
    p = sub.add_parser("parametrize", help="compute a lattice model (site energies, pair terms, exclusions, "
                                           "barriers) of a structure with an MLIP or any ASE calculator")
    p.add_argument("structure", help="builtin framework name, CIF or POSCAR")
    p.add_argument("--mobile", default="Li", help="mobile species (default Li)")
    p.add_argument("--out", required=True, metavar="DIR", help="new directory for model.toml and data.json")
    p.add_argument("--name", help="the model's name in model.toml (default: STRUCTURE-computed)")
    p.add_argument("--supercell", nargs=3, type=int, metavar=("A", "B", "C"),
                   help="repetitions of the unit cell for the calculations (default: the smallest at least "
                        "twice the longest cutoff wide)")
    p.add_argument("--hop-cutoff", type=_positive, metavar="A", help="hop cutoff, Å")
    p.add_argument("--interaction-cutoff", type=_positive, metavar="A",
                   help="pair terms are fitted for pairs closer than this, Å (default: the hop cutoff)")
    p.add_argument("--exclusion-cutoff", type=float, metavar="A",
                   help="pairs closer than this are tested for relaxing away (default: the framework's "
                        "exclusion distance, 0 for a CIF)")
    p.add_argument("--calculator", default="chgnet",
                   help="chgnet (default), sevennet, or module:Class / module:function of any ASE calculator")
    p.add_argument("--dopant", action="append", metavar="EL:HOST[:MAX[:CHARGE]]",
                   help="sample up to MAX (default 2) EL on HOST sites per supercell, charge-compensated by "
                        "the mobile ions, e.g. Ga:Li or Ta:Zr (repeatable)")
    p.add_argument("--configs", type=int, metavar="N", help="random configurations (default 40, --quick 10)")
    p.add_argument("--vacancies", type=int, metavar="K",
                   help="sample up to K extra vacancies (default 2 if the mobile sites are all full, else 0)")
    p.add_argument("--environments", type=int, metavar="N", help="NEB environments per hop class (default 3)")
    p.add_argument("--seed", type=int, help="seed of the configuration sampling (default 0)")
    p.add_argument("--relax-cell", action="store_true",
                   help="after the fixed-cell relaxation relax the cell too and fit that energy (needed when "
                        "ordering couples to strain, e.g. tetragonal garnet); NEBs stay at the parent cell")
    p.add_argument("--site-tolerance", type=_positive, metavar="A",
                   help="a relaxed ion farther than this from its nearest site is between sites and its "
                        "configuration is not fitted (default 0.5 Å; at most half the shortest distance "
                        "between two sites that may both be occupied)")
    p.add_argument("--include", action="append", metavar="FILE",
                   help="also compute the mobile-ion arrangement of this structure of the same framework "
                        "(e.g. a known ordered phase; repeatable)")
    p.add_argument("--join", action="append", metavar="DATA",
                   help="fit together with another finished run of the same lattice, calculator and "
                        "settings (its data.json, its directory, or a builtin computed model), e.g. an "
                        "undoped run or one with other dopants (repeatable)")
    p.add_argument("--interstitialcy", metavar="I:L[:ANGLE]",
                   help="also compute concerted knock-off events (an ion on an I-class site pushes the "
                        "ion on a neighbouring L-class site on to another I-class site; classes "
                        "comma-separated, pushes within ANGLE degrees of collinear, default 30), each "
                        "class with NEB bands of both ions moving together; the model file then "
                        "includes them")
    p.add_argument("--quick", action="store_true",
                   help="few configurations, 3-image bands, loose tolerances: minutes, for tests and tutorials")
    p.add_argument("--cache", metavar="DIR", help="relaxation/NEB cache (default DIR.cache); a rerun resumes")
    p.add_argument("--threads", type=int, help="torch threads of the MLIP (per process)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes relaxing configurations and running NEB bands at once, e.g. "
                        "one per core (default 1; the model does not depend on it)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_parametrize)
