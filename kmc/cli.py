"""Command line: ``kmc run CONFIG.toml [--json] [--out DIR]``.

Every deliberate error is a :class:`KMCError`: the CLI prints its one sentence and exits 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path

from kmc import __version__
from kmc.config import Config
from kmc.exceptions import ConfigError, KMCError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too, but with a usage dump
        raise ConfigError(f"{message}; see `kmc {self.prog.split()[-1]} --help`.")


def resolve_config(name: str) -> Path:
    """A config path, or the name of a bundled example (``kmc run quickstart``)."""
    p = Path(name)
    if p.is_file():
        return p
    bundled = resources.files("kmc.examples") / (p.name if p.suffix else f"{p.name}.toml")
    if bundled.is_file():
        return Path(str(bundled))
    examples = sorted(x.name[:-5] for x in resources.files("kmc.examples").iterdir()
                      if x.name.endswith(".toml"))
    raise ConfigError(f"no config file at {name!r}; give a path to a TOML file or one of the "
                      f"bundled examples: {', '.join(examples)}.")


def atomic_write(path: Path, text: str) -> None:
    """Write a file so that it is either complete or absent (temp file + rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prepare_out(out: str | None) -> Path | None:
    if out is None:
        return None
    d = Path(out)
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=d, delete=True)
        probe.close()
    except OSError as exc:
        raise ConfigError(f"cannot write to the output directory {out!r} ({exc.strerror}); choose "
                          f"a writable --out directory.") from None
    return d


def _table(result) -> str:
    head = (f"{'T (K)':>8} {'D* (cm2/s)':>22} {'D_J (cm2/s)':>22} {'Haven':>6} {'f':>14} "
            f"{'sigma (S/cm)':>22} {'hops/s':>9}")
    rows = [head, "-" * len(head)]
    for r in result.results:
        def pm(v, e):
            return f"{v:10.3e} ± {e:9.2e}" if e == e else f"{v:10.3e}"
        rows.append(f"{r['temperature_K']:8.1f} {pm(r['D_tracer_cm2_s'], r['D_tracer_err_cm2_s']):>22} "
                    f"{pm(r['D_jump_cm2_s'], r['D_jump_err_cm2_s']):>22} {r['haven_ratio']:6.3f} "
                    f"{r['correlation_factor']:6.4f}±{r['correlation_factor_err']:.4f} "
                    f"{pm(r['sigma_S_cm'], r['sigma_err_S_cm']):>22} {r['hops_per_s']:9.3g}")
    net = result.network
    rows.append(f"{net['n_ions']} ions on {net['n_sites']} sites, network dimensionality "
                f"{net['dimensionality']}, {result.results[0]['replicas']} replicas per temperature")
    return "\n".join(rows)


def cmd_run(args: argparse.Namespace) -> int:
    from kmc.runner import run_config

    config = Config.from_file(resolve_config(args.config))
    out = _prepare_out(args.out)
    show_progress = not args.json and not args.quiet and sys.stderr.isatty()
    result = run_config(config, progress=show_progress)
    data = result.to_dict()
    text = json.dumps(data, indent=2)
    if out is not None:
        atomic_write(out / "result.json", text + "\n")
    if args.json:
        print(json.dumps(data))
    else:
        print(_table(result))
        if out is not None:
            print(f"results written to {out}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kmc", description="Rejection-free kinetic Monte Carlo of ion hopping.")
    p.add_argument("--version", action="version", version=f"kmc {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    r = sub.add_parser("run", help="run one simulation config (TOML) or a bundled example")
    r.add_argument("config", help="path to a TOML config, or a bundled example name")
    r.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    r.add_argument("--out", metavar="DIR", help="write result files into DIR")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for a bad input, with one sentence on stderr)."""
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            build_parser().print_help()
            return 2
        return args.func(args)
    except KMCError as exc:
        print(f"kmc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kmc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
