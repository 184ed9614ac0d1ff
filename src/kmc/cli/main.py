"""Command line: ``kmc run CONFIG.toml [--json] [--out DIR [--loglog]]`` and
``kmc info NAME_OR_CIF_OR_CONFIG [--json] [--supercell A B C] [--dopant EL:SITE:X ...]``.

``--out DIR`` writes ``result.json``, ``results.csv``, ``arrhenius.png`` (two or more
temperatures) and ``msd.png`` (see :mod:`kmc.runs.output`).

Every deliberate error is a :class:`KMCError`: the CLI prints its one sentence and exits 2.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import warnings
from pathlib import Path

from kmc import __version__
from kmc.cli.argtypes import positive_int, seconds
from kmc.cli.campaign import add_parsers as add_campaign
from kmc.cli.parametrize import add_parsers as add_parametrize
from kmc.cli.teaching import add_parsers as add_teaching
from kmc.config import Config, config_file
from kmc.exceptions import ConfigError, KMCError, StructureWarning
from kmc.files import clean_stale_temps, jsonable
from kmc.runs.checkpoint import (
    DEFAULT_CHECKPOINT_EVERY_S,
    open_run_checkpoint,
    stop_on_signals,
    stop_requested,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too, but with a usage dump
        sub = self.prog.split()[1:]  # "kmc" or "kmc run"
        raise ConfigError(f"{message}; see `kmc {sub[-1] + ' ' if sub else ''}--help`.")


#: files ``kmc run --out DIR`` writes into DIR (besides ``[output] trajectory``)
RESULT_FILES = ("result.json", "results.csv", "msd.png", "arrhenius.png")


def _prepare_out(out: str | None) -> Path | None:
    if out is None:
        return None
    d = Path(out)
    if d.exists() and not d.is_dir():
        raise ConfigError(f"--out {out!r} is a file, not a directory; give the path of a "
                          f"directory (it is created if missing).")
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=d, delete=True)
        probe.close()
    except OSError as exc:
        raise ConfigError(f"cannot write to the output directory {out!r} ({exc.strerror}); choose "
                          f"a writable --out directory.") from None
    return d


def _table(result) -> str:
    head = (f"{'T (K)':>7} {'D* (cm2/s)':>20} {'D_J (cm2/s)':>20} {'Haven':>13} {'f':>15} "
            f"{'sigma (S/cm)':>20} {'hops/s':>8}")
    rows = [head, "-" * len(head)]

    def pm(v, e, fmt=".3e", efmt=".2e"):
        return f"{v:{fmt}} ± {e:{efmt}}" if e == e else f"{v:{fmt}}"
    for r in result.results:
        flag = "" if r.get("diffusive", True) else "  (not diffusive)"
        rows.append(f"{r['temperature_K']:7.1f} "
                    f"{pm(r['D_tracer_cm2_s'], r['D_tracer_err_cm2_s']):>20} "
                    f"{pm(r['D_jump_cm2_s'], r['D_jump_err_cm2_s']):>20} "
                    f"{pm(r['haven_ratio'], r['haven_ratio_err'], '.3f', '.3f'):>13} "
                    f"{pm(r['correlation_factor'], r['correlation_factor_err'], '.4f', '.4f'):>15} "
                    f"{pm(r['sigma_S_cm'], r['sigma_err_S_cm']):>20} {r['hops_per_s']:8.3g}{flag}")
    net = result.network
    rows.append(f"{net['n_ions']} ions on {net['n_sites']} sites, network dimensionality "
                f"{net['dimensionality']}, {result.results[0]['replicas']} replicas per temperature")
    if result.formula and net.get("source") != "teaching":
        rows.append(f"formula {result.formula} ({result.mobile_ions_per_formula_unit:.4g} "
                    f"{net.get('mobile', 'mobile ions')} per formula unit)")
    for r in result.results:
        perc = r.get("percolation")
        if perc and perc["blocked_sites"]:
            rows.append(f"  {r['temperature_K']:g} K: {perc['blocked_sites']} blocked sites per "
                        f"replica, {perc['spanning_fraction']:.3f} of the free sites in spanning "
                        f"clusters, dimensionality {perc['dimensionality_mean']:g} (min "
                        f"{perc['dimensionality_min']})")
    for r in result.results:
        if "knockoff_event_fraction" in r:
            rows.append(f"  {r['temperature_K']:g} K: knock-offs are "
                        f"{r['knockoff_event_fraction']:.1%} of the events")
    rows.append("MSD fit windows (all time origins; D = slope / 2d), local exponent, diffusive:")
    for r in result.results:
        if "fit" in r:
            rows.append(f"  {r['temperature_K']:g} K: " + "; ".join(
                f"{q} {_g(f['start_s'])}-{_g(f['end_s'])} s ({f['n_points']} lags), exponent "
                f"{_g(f['local_exponent'], '.3f')}, {'yes' if f['diffusive'] else 'NO'}"
                for q, f in r["fit"].items()) + f"; sigma route {r.get('sigma_route')}")
    rows.extend(_convergence_lines(result))
    rows.extend(_field_lines(result))
    rows.extend(_arrhenius_lines(result))
    return "\n".join(rows)


def _g(v, fmt: str = ".3g") -> str:
    return "n/a" if v is None or v != v else format(v, fmt)


def _convergence_lines(result) -> list[str]:
    run = result.config.run
    if run.target_rel_err is None:
        return []
    out = [f"convergence (target: relative standard error of {' and '.join(run.converge_on)} "
           f"<= {run.target_rel_err:g}):"]
    for r in result.results:
        state = "converged" if r["converged"] else "NOT converged"
        line = (f"  {r['temperature_K']:g} K: {state} after {r['hops_per_ion_used']:g} hops/ion "
                f"({r['convergence_rounds']} rounds, {r['stop_reason']}); rel. err D* "
                f"{_g(r['rel_err_D_tracer'])}, D_J {_g(r['rel_err_D_jump'])}")
        if r.get("final_round") == "fresh replicas":
            line += (f" from fresh replicas (the deciding ones had D* "
                     f"{_g(r['pilot_rel_err_D_tracer'])}, D_J {_g(r['pilot_rel_err_D_jump'])})")
        out.append(line)
    return out


def _field_lines(result) -> list[str]:
    if "sigma_field_S_cm" not in result.results[0]:
        return []
    out = ["field route (drift velocity) vs Nernst-Einstein (drift removed):"]
    for r in result.results:
        out.append(f"  {r['temperature_K']:g} K: sigma_field = {_g(r['sigma_field_S_cm'])} ± "
                   f"{_g(r['sigma_field_err_S_cm'], '.2g')} S/cm, sigma_NE = "
                   f"{_g(r['sigma_S_cm'])} ± {_g(r['sigma_err_S_cm'], '.2g')} S/cm, "
                   f"max |qE.dr|/kT = {_g(r['field_work_max_over_kT'], '.2g')}")
    return out


def _arrhenius_lines(result) -> list[str]:
    a = result.arrhenius
    if a is None:
        # the notes are about the whole run (defaults used, why there is no fit), not the fit
        return [f"note: {n}" for n in result.notes] or ["Arrhenius: no fit."]
    lo, hi = a["Ea_ci_eV"]
    s_lo, s_hi = a["sigma_300K_ci_S_cm"]
    fits = a.get("fits", {})
    side = [f"{name} Ea = {_g(f['Ea_eV'], '.4f')} ± {_g(f['Ea_err_eV'], '.4f')} eV"
            for name, f in fits.items() if name in ("D_tracer", "sigma_T")]
    out = [f"Arrhenius ({a['basis']}, {a['n_points']} temperatures {a['T_min_K']:g}-"
           f"{a['T_max_K']:g} K): Ea = {_g(a['Ea_eV'], '.4f')} ± {_g(a['Ea_err_eV'], '.4f')} eV "
           f"({a['level']:.0%} CI {_g(lo, '.4f')}-{_g(hi, '.4f')}), D0 = "
           f"{_g(a['prefactor_cm2_s'])} cm2/s, reduced chi2 = {_g(a['reduced_chi2'], '.2f')}",
           f"  sigma(300 K) = {_g(a['sigma_300K_S_cm'])} S/cm ({a['level']:.0%} CI "
           f"{_g(s_lo)}-{_g(s_hi)})" + (", extrapolated" if a["extrapolated_to_300K"] else "")]
    if len(side) == 2:
        why = (" (auto: smaller median relative error)" if a.get("basis_requested") == "auto"
               else "")
        out.append("  side by side: " + " | ".join(side) + why)
    d = a["non_arrhenius_detail"]
    out.append(("  NON-ARRHENIUS: " if a["non_arrhenius"] else "  ") + d.get("explanation", ""))
    if result.arrhenius_axes:
        out.append("  per axis (D*): " + ", ".join(
            f"{ax} {_g(v['Ea_eV'], '.4f')} ± {_g(v['Ea_err_eV'], '.4f')} eV"
            for ax, v in result.arrhenius_axes.items()))
    out.extend(f"  note: {n}" for n in result.notes)
    return out


def cmd_run(args: argparse.Namespace) -> int:
    config = Config.from_file(config_file(args.config))
    if args.out is None and args.checkpoint_every:
        raise ConfigError("--checkpoint-every needs --out DIR (the checkpoint is DIR/run.ckpt); "
                          "add --out DIR or drop --checkpoint-every.")
    if not args.quiet:
        for w in getattr(config, "warnings", ()):
            print(f"kmc: warning: {w}", file=sys.stderr)
        for d in getattr(config, "defaults_used", ()):
            print(f"kmc: default used: {d}", file=sys.stderr)
    created = args.out is not None and not Path(args.out).exists()
    out = _prepare_out(args.out)
    try:
        return _run_into(args, config, out)
    except BaseException:
        if created:  # leave no empty directory behind a failed run (kills never get here)
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


def _run_into(args: argparse.Namespace, config: Config, out: Path | None) -> int:
    """``kmc run`` after the config is valid and ``--out`` (if any) exists: run, resuming from
    and checkpointing to ``out/run.ckpt``, then write the results."""
    # lazy: kmc.runs.runner costs ~1 s (engine, scipy.stats); `kmc --help` does not load it
    from kmc.runs.runner import run_config

    # lazy: ~4 ms that `kmc --help` would pay; only `kmc run` needs it
    from kmc.runs.trajectory import trajectory_target, write_run_trajectory

    target = trajectory_target(config, out)  # a missing directory is an error before the run
    if out is None and target is not None and target.exists():
        raise ConfigError(f"the trajectory file {str(target)!r} exists already and would be "
                          f"overwritten; remove it, rename [output] trajectory, or use --out DIR.")
    if out is not None and not args.quiet:
        old = [n for n in RESULT_FILES if (out / n).exists()]
        old += [str(target.relative_to(out))] if target is not None and target.exists() else []
        if old:
            print(f"kmc: note: this run replaces {', '.join(old)} in {out}/", file=sys.stderr)
    ckpt = None
    if out is not None:
        clean_stale_temps(out)  # temporary files of killed writers (results, checkpoints)
        every = DEFAULT_CHECKPOINT_EVERY_S if args.checkpoint_every is None \
            else args.checkpoint_every
        ckpt = open_run_checkpoint(out, config, every or None, fresh=args.fresh)
    # a bar on a terminal, else a line every few seconds (logs, batch jobs); --quiet: nothing
    show_progress = not args.json and not args.quiet
    try:
        result = run_config(config, progress=show_progress, checkpoint=ckpt, workers=args.workers)
    except KMCError:
        if ckpt is not None:  # a deterministic failure: resuming would only repeat it
            ckpt.file.discard()
        raise
    data = result.to_dict()
    try:
        if out is not None:
            # lazy: kmc.runs.output loads matplotlib (~0.5 s); only --out needs it
            from kmc.runs.output import write_outputs

            write_outputs(result, out, loglog=args.loglog)
        traj = write_run_trajectory(result, out)
    except OSError as exc:
        keep = " (the checkpoint is kept: rerunning only writes the files)" if ckpt else ""
        raise ConfigError(f"could not write the results into {str(out or '.')!r} "
                          f"({exc.strerror or exc}){keep}; free some space or fix the directory's "
                          f"permissions and rerun.") from None
    if ckpt is not None:
        ckpt.file.discard()  # the results are written: the checkpoint has served
        info = result.checkpoint_info
        if info.get("resumed") and not args.quiet:
            print(f"kmc: resumed from {ckpt.file.path}: {info['restored_hops']} of "
                  f"{info['total_hops']} engine hops were reused", file=sys.stderr)
        if ckpt.write_error and not args.quiet:
            print(f"kmc: warning: checkpoints could not be written ({ckpt.write_error}); the "
                  f"run finished without them", file=sys.stderr)
    if not args.quiet:
        for w in result.warnings:
            print(f"kmc: warning: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps(data))
    else:
        print(_table(result))
        if out is not None:
            print(f"results written to {out}/")
        if traj is not None:
            print(f"trajectory ({result.trajectory.n_frames} frames) written to {traj}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    # lazy: ~5 ms that `kmc --help` would pay; only `kmc info` needs it
    from kmc.cli.info import builtins_info, builtins_text, config_for, info_text, system_info

    src = args.source
    if src is None:
        listing = builtins_info()
        if args.json:
            print(json.dumps(listing))
        else:
            print(builtins_text(listing))
        return 0
    p = Path(src)
    config = config_for(src, supercell=args.supercell, dopants=args.dopant or (),
                        mobile=args.mobile, hop_cutoff_A=args.hop_cutoff,
                        exclusion_distance_A=args.exclusion, symprec=args.symprec,
                        interstitialcy=args.interstitialcy)
    info = system_info(config, from_config=p.suffix.lower() == ".toml")
    if args.json:
        print(json.dumps(jsonable(info)))
    else:
        print(info_text(info))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kmc", description="Rejection-free kinetic Monte Carlo of ion hopping.")
    p.add_argument("--version", action="version", version=f"kmc {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    r = sub.add_parser("run", help="run one simulation config (TOML) or a bundled example")
    r.add_argument("config", help="path to a TOML config, or a bundled example name")
    r.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    r.add_argument("--out", metavar="DIR", help="write result files into DIR")
    r.add_argument("--loglog", action="store_true",
                   help="draw msd.png (with --out) on logarithmic axes")
    r.add_argument("--quiet", action="store_true",
                   help="no progress (a bar on a terminal, else a line every 5 s on stderr), "
                        "notes or warnings on stderr")
    r.add_argument("--checkpoint-every", metavar="SECONDS", type=seconds, default=None,
                   help="with --out: save the run's state to DIR/run.ckpt every SECONDS "
                        "(default 60); a killed run resumes from it when rerun with the same "
                        "config and --out, giving exactly the uninterrupted result. 0 switches "
                        "checkpoints off. The file is deleted once the results are written")
    r.add_argument("--workers", metavar="N", type=positive_int, default=None,
                   help="threads advancing the replicas of all temperatures concurrently "
                        "(default: [run] workers, else every core); the results are "
                        "bit-identical for any N")
    r.add_argument("--fresh", action="store_true",
                   help="discard an existing DIR/run.ckpt and start from the beginning")
    r.set_defaults(func=cmd_run)
    i = sub.add_parser("info", help="describe a framework, teaching lattice, CIF or config: "
                                    "sites, hops, exclusions, dimensionality, formula")
    i.add_argument("source", nargs="?",
                   help="framework name (llzo-cubic, llzo-tetragonal, lgps, ...: `kmc info` lists them), teaching "
                        "lattice name, CIF path or TOML config; without it: the list of builtins, with "
                        "the provenance of the computed ones")
    i.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    i.add_argument("--supercell", nargs=3, type=int, metavar=("A", "B", "C"),
                   help="repetitions of the unit cell (default: 8 8 8 for a teaching lattice; "
                        "the smallest supercell >= 20 Å wide along every axis otherwise)")
    i.add_argument("--dopant", action="append", metavar="EL:SITE:X[:CHARGE]",
                   help="a dopant per formula unit, e.g. Ta:Zr:0.6 or Ga:Li1:0.25 (repeatable)")
    i.add_argument("--mobile", metavar="EL", help="mobile species of a CIF (default Li)")
    i.add_argument("--hop-cutoff", type=float, metavar="A", help="hop cutoff, Å")
    i.add_argument("--exclusion", type=float, metavar="A", help="exclusion distance, Å")
    i.add_argument("--symprec", type=float, help="symmetry tolerance for a CIF's site classes")
    i.add_argument("--interstitialcy", metavar="I:L[:ANGLE]",
                   help="add knock-off events from interstitial classes I through lattice "
                        "classes L (comma-separated), e.g. Li1:Li3:30 for LGPS")
    i.set_defaults(func=cmd_info)
    add_campaign(sub)     # campaign, report
    add_teaching(sub)     # validate, tutorial, animate
    add_parametrize(sub)  # neb, parametrize
    return p


#: exit codes of every command (README "Exit codes"): 0 success, 1 a campaign with failed points,
#: 2 bad input (one sentence on stderr), 128 + signal number when interrupted (130 Ctrl-C,
#: 143 SIGTERM; rerun the same command to resume), 141 when stdout is closed early (``| head``)
EXIT_OK, EXIT_FAILED_POINTS, EXIT_BAD_INPUT, EXIT_BROKEN_PIPE = 0, 1, 2, 141


def _stdout_gone() -> int:
    """After a closed pipe on stdout: point stdout at /dev/null so that the interpreter's final
    flush cannot fail again, and exit quietly as Unix tools do."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE


@contextlib.contextmanager
def kmc_warnings():
    """Show kmc's own warnings (about the input: :class:`~kmc.exceptions.StructureWarning`) as
    one ``kmc: warning:`` line each, once per message, instead of Python's file-and-line form;
    other warnings as Python shows them."""
    seen: set[str] = set()
    python_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, StructureWarning):
            return python_show(message, category, filename, lineno, file, line)
        if str(message) not in seen:
            seen.add(str(message))
            print(f"kmc: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = python_show


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for a bad input, with one sentence on stderr)."""
    try:
        with kmc_warnings():
            return _main(argv)
    except BrokenPipeError:
        return _stdout_gone()


def _main(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            build_parser().print_help()
            print("kmc: error: no command given; name one, e.g. `kmc run quickstart` (see "
                  "`kmc --help`).", file=sys.stderr)
            return 2
        with stop_on_signals():
            code = args.func(args)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        return _stdout_gone()
    except KMCError as exc:
        print(f"kmc: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("kmc: error: out of memory; use a smaller supercell (fewer sites), fewer ions or "
              "a shorter interaction range.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # campaigns (and runs with checkpoints, which saved a last one) continue where they
        # stopped; SIGTERM is handled like Ctrl-C
        signum = stop_requested() or signal.SIGINT
        with contextlib.suppress(OSError):
            print("kmc: interrupted; rerun the same command to resume", file=sys.stderr)
        return 128 + int(signum)


if __name__ == "__main__":
    sys.exit(main())
