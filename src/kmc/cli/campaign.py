"""Command line of campaigns: ``kmc campaign FILE --out DIR`` and ``kmc report DIR``.

:func:`add_parsers` registers both sub-commands on the ``kmc`` parser's sub-parsers;
``python -m kmc.cli.campaign campaign|report ...`` works on its own too. Every deliberate error
is a :class:`~kmc.exceptions.KMCError`: one sentence on stderr and exit code 2, raised before
any run starts and before anything is written to ``DIR``.

Exit codes: 0 all points finished, 1 some points failed (stored as errors, or crashed and left
for the next run), 2 bad input, 130 interrupted.
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
import warnings
from pathlib import Path

from kmc.campaign.store import STORE_NAME
from kmc.cli.argtypes import positive_int, seconds
from kmc.exceptions import CampaignError, ConfigError, ResultWarning


def cmd_campaign(args: argparse.Namespace) -> int:
    from kmc.campaign.core import Campaign  # lazy: pulls kmc.runs.runner (~1 s) into every kmc call

    campaign = Campaign.from_file(args.file, out=args.out)
    executor = args.executor or ("dask" if args.scheduler else "local")
    quiet = args.quiet

    def log(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        with warnings.catch_warnings():  # printed below as `kmc: warning:` lines instead
            warnings.simplefilter("ignore", ResultWarning)
            report = campaign.run(executor, workers=args.workers, scheduler=args.scheduler,
                                  resume=not args.no_resume, progress=not quiet, log=log,
                                  checkpoint_every=args.checkpoint_every, append=args.append)
    except CampaignError as exc:  # crashed runs: exit 1 with the summary, as documented
        report = exc.report
        print(f"kmc: error: {exc}", file=sys.stderr)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"the store {str(Path(args.out) / STORE_NAME)!r} is damaged ({exc}); "
                          f"move it away (the campaign then computes every point again) or "
                          f"restore it from a backup.") from None
    print(report.summary())
    # warnings to stderr, like `kmc run`: stdout is the report users redirect into files
    for w in report.warnings:
        print(f"kmc: warning: {w}", file=sys.stderr)
    if report.written:
        print(f"wrote {', '.join(str(p.relative_to(report.out)) for p in report.written)} "
              f"in {report.out}/")
    return 0 if report.ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    from kmc.campaign.core import Campaign  # lazy: pulls kmc.runs.runner (~1 s) into every kmc call

    campaign = Campaign.from_store(args.dir)
    formats = ["csv", "parquet"] if args.format == "all" else [args.format]
    written = campaign.export(args.dir, formats=formats, figures=not args.no_figures)
    df = campaign.results(args.dir)
    points = df.drop_duplicates("point")
    counts = points["status"].value_counts().to_dict()
    state = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"campaign {campaign.name!r}: {len(campaign.points)} points ({state}); wrote "
          f"{', '.join(p.name for p in written)} in {args.dir}/")
    return 0


def add_parsers(subparsers) -> None:
    """Register ``campaign`` and ``report`` on ``subparsers`` (from ``add_subparsers``)."""
    c = subparsers.add_parser(
        "campaign", help="run a campaign (grid of configs) into a resumable results store",
        description="Expand the campaign's grid, run every point not yet in DIR/store.sqlite "
                    "(resuming is the default), then write DIR/summary.csv and DIR/figures.")
    c.add_argument("file", metavar="FILE", help="campaign TOML file")
    c.add_argument("--out", metavar="DIR", required=True, help="campaign directory (store, "
                   "summary, figures); created if missing")
    c.add_argument("--workers", metavar="N", type=positive_int, default=None,
                   help="worker processes (default: number of cores; 1 runs in-process)")
    c.add_argument("--executor", choices=["local", "dask"], default=None,
                   help="local process pool (default) or dask.distributed")
    c.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="address of a running Dask scheduler (implies --executor dask); "
                        "without it --executor dask starts a LocalCluster on 127.0.0.1")
    c.add_argument("--no-resume", action="store_true",
                   help="recompute every point and replace its stored row (default: skip "
                        "points already in the store)")
    c.add_argument("--checkpoint-every", metavar="SECONDS", type=seconds, default=60.0,
                   help="save the state of every run in progress to DIR/checkpoints every "
                        "SECONDS (default 60), so a killed campaign resumes its interrupted "
                        "runs instead of restarting them; 0 switches checkpoints off")
    c.add_argument("--append", action="store_true",
                   help="add this campaign's points to DIR even if DIR holds the store of a "
                        "different campaign (refused without it, so that one campaign's "
                        "summary never silently mixes with or hides another's rows)")
    c.add_argument("--quiet", action="store_true", help="no progress bar or status line")
    c.set_defaults(func=cmd_campaign)

    r = subparsers.add_parser(
        "report", help="export a campaign store to CSV/Parquet and redraw its figures",
        description="Write DIR/summary.<fmt> (one row per point and temperature), "
                    "DIR/arrhenius.<fmt> (with the Arrhenius analysis) and DIR/figures from the "
                    "store; works while a campaign is running (unfinished points are 'pending').")
    r.add_argument("dir", metavar="DIR", help="campaign directory")
    r.add_argument("--format", choices=["csv", "parquet", "all"], default="csv",
                   help="table format (default csv)")
    r.add_argument("--no-figures", action="store_true", help="tables only")
    r.set_defaults(func=cmd_report)
