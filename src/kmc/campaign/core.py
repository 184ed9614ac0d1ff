"""Simulation campaigns: a declarative grid over config keys, run locally or on Dask, resumable.

A campaign TOML (configs are data: it is parsed with ``tomllib`` and nothing in it is ever
evaluated or unpickled)::

    base = "sim.toml"                  # a config file, relative to this file (or a bundled example
                                       # name), or an inline [base] table (not both)
    [campaign]                         # optional
    name = "filling-scan"              # default: the file name without .toml
    seed = 7                           # derive every point's run.seed from the point (see below)

    [grid]                             # dotted config keys -> non-empty lists; full product
    "occupancy.filling" = [0.2, 0.5, 0.8]
    "run.temperatures_K" = [400, 500, 600]
    'model.barrier_eV."site-site@1.00"' = [0.2, 0.3]   # quote a segment that contains dots

    [zip]                              # optional: equal-length lists that vary together
    "lattice.builtin" = ["sc", "bcc"]
    "lattice.supercell" = [[6, 6, 6], [5, 5, 5]]

    [analysis]                         # optional
    arrhenius = true                   # fit each group of points that differ only in temperature
    basis = "sigma"                    # "sigma" (fits sigma*T), "D_tracer" or "D_jump"

Expansion: the axes are the ``[grid]`` keys in file order, then the ``[zip]`` group as one axis;
the points are their Cartesian product with the last axis varying fastest (like nested loops).
Every point must be a valid config (:meth:`kmc.config.Config.from_dict`) and every problem is
reported before anything runs.

Run key and seeds. Each point becomes its full, normalised config
(``Config.from_dict(point).to_dict()``: every default filled in). Its **run key** is the sha256 of
the canonical JSON (sorted keys, no whitespace) of that config, ``run.seed`` included. With
``[campaign] seed = S`` every point's ``run.seed`` is replaced by::

    int.from_bytes(sha256(canonical_json(config without run.seed) + "\\n" + str(S))[:8]) % 2**63

so the seed depends on the point and the campaign seed only (never on the worker, the executor
or the order); without it every point keeps the base's (or the grid's) ``run.seed``. The kmc
version is stored with every row but is **not** part of the key: re-running a campaign after a
patch release resumes instead of recomputing. A release that adds config fields changes the
normalised configs and therefore the keys (those points are then run again, which is right:
the stored config says exactly what ran).

Execution: :class:`LocalExecutor` (``concurrent.futures`` process pool, ``workers=1`` runs in
the calling process) or :class:`DaskExecutor` (``dask.distributed``; a ``LocalCluster`` bound to
127.0.0.1 unless a scheduler address is given). Workers receive a config as JSON text and return
plain data; only the parent process writes to the store, so results are identical whatever the
executor and the worker count.

Checkpoints of long single runs: every ``checkpoint_every`` seconds (default 60) a run in
progress saves its whole state to ``DIR/checkpoints/<run key>.ckpt`` (:class:`RunCheckpointFile`,
:func:`kmc.runs.runner.run_config`'s ``checkpoint`` hook); a killed campaign resumes each interrupted
run from there to exactly the uninterrupted result, and never loses a stored row.

See docs/campaigns.md for the store schema, outputs, exit codes and security notes.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm import tqdm

from kmc import __version__
from kmc.campaign.analysis import CampaignAnalysis
from kmc.campaign.executors import (  # noqa: F401
    DaskExecutor,
    LocalExecutor,
    PointTask,
    execute_point,
    make_executor,
    rerun_by_worker,
)
from kmc.campaign.spec import CampaignSpec, Point
from kmc.campaign.store import (
    STORE_NAME,
    Store,
    campaign_lock,
    clean_stale_temps,
    dumps,
)
from kmc.config import Config
from kmc.config.keys import canonical_json
from kmc.exceptions import CampaignError, ConfigError, KMCError, ResultWarning
from kmc.runs.checkpoint import (
    DEFAULT_CHECKPOINT_EVERY_S,
    CheckpointDir,
    check_checkpoint_every,
)
from kmc.runs.system import build_system

__all__ = ["Campaign", "CampaignReport", "crash_message"]

#: keys of a stored campaign spec that say where its files were read from, not what it computes
LOCATION_KEYS = ("source", "base_dir")


@dataclass
class CampaignReport:
    """What :meth:`Campaign.run` did."""

    name: str
    out: Path
    n_points: int
    executed: int = 0           # runs computed now (rows written, 'ok' or 'error')
    skipped: int = 0            # already in the store (resume)
    errors: list = field(default_factory=list)     # (point index, sentence): stored 'error' rows
    crashed: list = field(default_factory=list)    # (point index, message): not stored, retried
    resumed: list = field(default_factory=list)    # (point index, hops reused, hops of the run)
    other_versions: dict = field(default_factory=dict)   # version -> rows of this campaign
    written: list = field(default_factory=list)    # exported files
    elapsed_s: float = 0.0
    recomputed: list = field(default_factory=list)  # (point index, why): rows that failed
                                                    # the store's integrity check
    not_diffusive: list = field(default_factory=list)  # (point index, T): results measured
                                                       # before the diffusive regime
    n_results: int = 0                              # (point, temperature) results in the store

    @property
    def ok(self) -> bool:
        return not self.errors and not self.crashed

    @property
    def warnings(self) -> list[str]:
        """Sentences about results not to be quoted as they stand (one per kind of problem).

        They are kept out of :meth:`summary` so that a caller can send them elsewhere: the
        command line prints them to stderr as ``kmc: warning:`` lines, while the summary goes
        to stdout, which users redirect into files.

        Returns
        -------
        list of str
            Empty when every stored result is in the diffusive regime.
        """
        out = []
        if self.not_diffusive:
            nd = self.not_diffusive
            first = ", ".join(f"point {i + 1} at {T:g} K" for i, T in nd[:3])
            out.append(f"{len(nd)} of the {self.n_results} results are not in the diffusive regime "
                       f"({first}{', ...' if len(nd) > 3 else ''}; the `diffusive` column of "
                       f"summary.csv is false): their D*, D_J and sigma are slopes of an MSD that "
                       f"is still bending; raise [run] hops_per_ion or set target_rel_err in the "
                       f"campaign file before quoting them.")
        return out

    def summary(self) -> str:
        parts = [f"campaign {self.name!r}: {self.n_points} points, {self.executed} run now, "
                 f"{self.skipped} already in the store"]
        if self.errors:
            parts.append(f"{len(self.errors)} stored as errors (first: point "
                         f"{self.errors[0][0] + 1}: {self.errors[0][1]})")
        if self.crashed:
            parts.append(f"{len(self.crashed)} crashed and will be retried on the next run "
                         f"(first: point {self.crashed[0][0] + 1}: {self.crashed[0][1]})")
        if self.resumed:
            reused = sum(r[1] for r in self.resumed)
            total = sum(r[2] for r in self.resumed)
            parts.append(f"{len(self.resumed)} resumed from checkpoints ({reused / total:.0%} of "
                         f"their hops reused)" if total else
                         f"{len(self.resumed)} resumed from checkpoints")
        if self.recomputed:
            parts.append(f"{len(self.recomputed)} recomputed because the stored row failed its "
                         f"integrity check (first: point {self.recomputed[0][0] + 1}: "
                         f"{self.recomputed[0][1]})")
        text = ", ".join(parts) + f" in {self.elapsed_s:.1f} s."
        if self.other_versions:
            vs = ", ".join(f"{n} by kmc {v}" for v, n in sorted(self.other_versions.items()))
            text += (f"\nnote: reused rows computed by another kmc version ({vs}); rerun with "
                     f"--no-resume to recompute them with kmc {__version__}.")
        return text


def crash_message(report: CampaignReport) -> str:
    """One sentence listing the runs of ``report`` that crashed (not stored) and what to do."""
    n = len(report.crashed)
    listed = "; ".join(f"point {i + 1}: {msg}" for i, msg in report.crashed[:5])
    more = f"; and {n - 5} more" if n > 5 else ""
    hint = (" (a worker process died: if the script has no `if __name__ == \"__main__\":` guard, "
            "add one)" if any("BrokenProcessPool" in m for _, m in report.crashed) else "")
    return (f"{n} of the {report.n_points} runs of campaign {report.name!r} crashed and were not "
            f"stored ({listed}{more}){hint}; fix the cause and run the campaign again: the "
            f"finished points are kept and only these run again.")


class Campaign(CampaignSpec, CampaignAnalysis):
    """A validated campaign: base config, axes, analysis; expanded into :attr:`points`.

    Build it with :meth:`from_file`, :meth:`from_toml` or :meth:`from_dict`; every problem raises
    :class:`~kmc.exceptions.ConfigError` with one sentence, before anything runs.

    Parameters
    ----------
    out : path, optional
        The campaign directory (store, summary, figures). Default: ``<name>.campaign`` in the
        current directory.
    """

    @classmethod
    def from_store(cls, out: str | Path) -> "Campaign":
        """The campaign last run into ``out`` (its spec is saved in the store as JSON)."""
        with Store(out, readonly=True) as st:
            spec = st.get_meta("campaign")
        if spec is None:
            raise ConfigError(f"the store in {str(out)!r} holds no campaign description; run "
                              f"`kmc campaign FILE --out {out}` once.")
        data = {"base": spec["base"], "grid": spec["grid"], "zip": spec["zip"],
                "analysis": spec["analysis"], "campaign": {"name": spec["name"]}}
        if spec.get("seed") is not None:
            data["campaign"]["seed"] = spec["seed"]
        here = Path(out).resolve()  # stored locations are relative to the store (older stores: absolute)
        root = here / spec.get("base_dir", ".")
        source = spec.get("source")
        return cls(data, root=root, out=out, source=str(here / source) if source else None)

    def check_buildable(self, points: Iterable[Point]) -> None:
        """Build the site network and rate model of each distinct system among ``points`` (not
        the runs), so that errors only a built system can reveal (e.g. an occupancy that gives
        zero ions) stop the campaign before anything runs."""
        seen: set[str] = set()
        for p in points:
            sys_part = {k: v for k, v in p.config.items() if k != "run"}
            tag = canonical_json(sys_part)
            if tag in seen:
                continue
            seen.add(tag)
            try:
                build_system(Config.from_dict(copy.deepcopy(p.config)))
            except KMCError as exc:
                raise ConfigError(f"{self._describe_point(p)}: {exc}") from None

    @staticmethod
    def check_out(out: str | Path) -> Path:
        """Check that ``out`` is (or can become) a writable directory, creating nothing."""
        d = Path(out)
        if d.exists():
            if not d.is_dir():
                raise ConfigError(f"--out {str(out)!r} exists and is not a directory; choose a "
                                  f"directory.")
            probe = d
        else:
            probe = d.absolute().parent
            while not probe.exists():
                probe = probe.parent
            if not probe.is_dir():
                raise ConfigError(f"cannot create the output directory {str(out)!r} because "
                                  f"{str(probe)!r} is not a directory; choose another --out.")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise ConfigError(f"cannot write to the output directory {str(out)!r} (no write "
                              f"permission on {str(probe)!r}); choose a writable --out.")
        if d.is_dir() and (d / STORE_NAME).exists() and not os.access(d / STORE_NAME, os.W_OK):
            raise ConfigError(f"the store {str(d / STORE_NAME)!r} is read-only; choose a writable "
                              f"--out.")
        return d

    def pending(self, out: str | Path | None = None, resume: bool = True) -> list[Point]:
        """Points not yet in the store of ``out`` (all of them when ``resume`` is False)."""
        d = Path(out) if out is not None else self.out
        if not resume or not (d / STORE_NAME).is_file():
            return list(self.points)
        with Store(d, readonly=True) as st:
            done = st.done_keys()
        return [p for p in self.points if p.key not in done]

    # ------------------------------------------------------------------ running
    def run(self, executor: Any = None, *, out: str | Path | None = None,
            workers: int | None = None, scheduler: str | None = None, resume: bool = True,
            progress: bool = False, export: bool = True,
            log: Callable[[str], None] | None = None,
            checkpoint_every: float | None = DEFAULT_CHECKPOINT_EVERY_S,
            append: bool = False) -> CampaignReport:
        """Run every point not yet in the store, then export the summary and figures.

        Parameters
        ----------
        executor : None, "local", "dask", LocalExecutor, DaskExecutor or distributed.Client
            Where to run (default: a local process pool of ``workers`` processes).
        out : path, optional
            Campaign directory (default :attr:`out`).
        workers : int, optional
            Worker processes (default: the number of cores).
        scheduler : str, optional
            Address of a Dask scheduler (implies the Dask executor).
        resume : bool
            Skip points already in the store (default). ``False`` recomputes every point and
            replaces its row.
        progress : bool
            Show a tqdm bar with ETA on stderr (only if stderr is a terminal).
        log : callable, optional
            Receives one status line when the runs start, and one per run resumed from a
            checkpoint.
        checkpoint_every : float or None
            Seconds between two checkpoints of a run in progress (``DIR/checkpoints``; default
            60). A killed campaign then loses at most about this much work per interrupted run.
            ``0`` or ``None`` disables checkpoints.
        append : bool
            Allow ``out`` to hold the store of a different campaign and add this campaign's
            points to it (``--append``); without it such a directory is refused.

        Returns
        -------
        CampaignReport
            Its ``errors`` are stored error rows (a deterministic :class:`KMCError` of a point,
            e.g. a frozen system).

        Warns
        -----
        kmc.exceptions.ResultWarning
            Once per entry of :attr:`CampaignReport.warnings` (e.g. results not in the
            diffusive regime).

        Raises
        ------
        CampaignError
            If any run crashed (not stored; the next run retries it), after everything else
            was stored and exported; its ``report`` is the report of this attempt. In a script
            without ``if __name__ == "__main__":`` the runs happen one after another in this
            process (with a RuntimeWarning), since worker processes would run the script again.
        """
        t0 = time.perf_counter()
        if rerun_by_worker():  # never reach the store's lock: the parent holds it
            raise ConfigError("a worker process re-imported the main script, whose top-level code "
                              "starts this campaign again; put the campaign code under `if "
                              "__name__ == \"__main__\":`.")
        every = check_checkpoint_every(checkpoint_every)
        out = self.check_out(self.out if out is None else out)
        self.out = out
        ex = make_executor(executor, workers=workers, scheduler=scheduler)
        todo = self.pending(out, resume)
        self.check_buildable(todo)
        report = CampaignReport(self.name, out, len(self.points), skipped=len(self.points) -
                                len(todo))
        # start/connect the executor before anything is created in out (a scheduler that cannot
        # be reached is a bad input: exit 2, nothing written); no executor when nothing is left
        with (ex if todo else contextlib.nullcontext()):
            try:
                out.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryFile(dir=out):
                    pass
            except OSError as exc:
                raise ConfigError(f"cannot write to the output directory {str(out)!r} "
                                  f"({exc.strerror or exc}); choose a writable --out.") from None
            with campaign_lock(out):
                clean_stale_temps(out)
                clean_stale_temps(out / "figures")
                ckpts = CheckpointDir(out)
                clean_stale_temps(ckpts.directory)
                ckpts.check_no_legacy({p.key for p in self.points})
                with Store(out) as store:
                    self._check_same_campaign(store, out, append)
                    store.set_meta("campaign", self._stored_spec(out))
                    by_key = {p.key: p for p in self.points}
                    for key, why in sorted(store.bad_rows.items()):
                        if key in by_key:
                            report.recomputed.append((by_key[key].index, why))
                            if log:
                                log(f"point {by_key[key].index + 1}: the stored row failed its "
                                    f"integrity check ({why}); computing it again")
                    stored = store.done_keys()
                    done = stored if resume else set()
                    todo = [p for p in self.points if p.key not in done]
                    report.skipped = len(self.points) - len(todo)
                    # checkpoints of runs already stored (killed between the commit and the
                    # delete), and with --no-resume those of the runs about to be recomputed
                    stale = stored if resume else stored | {p.key for p in todo}
                    for key in ckpts.keys() & stale:
                        ckpts.discard(key)
                    task = PointTask(str(out.absolute()), every) if every else PointTask()
                    self._execute(ex, store, todo, report, resume, progress, log, task, ckpts)
                    versions: dict[str, int] = {}
                    index = {p.key: p.index for p in self.points}
                    for r in store.rows([p.key for p in self.points]):
                        if r["version"] != __version__:
                            versions[r["version"]] = versions.get(r["version"], 0) + 1
                        if r["status"] == "ok":
                            for t in (r["result"] or {}).get("results", []):
                                report.n_results += 1
                                if t.get("diffusive") is False:
                                    report.not_diffusive.append((index[r["key"]], t["temperature_K"]))
                    report.not_diffusive.sort()
                    report.other_versions = versions
                if export:
                    report.written = self.export(out)
        report.elapsed_s = time.perf_counter() - t0
        for message in report.warnings:  # a script sees what `kmc campaign` prints on stderr
            warnings.warn(message, ResultWarning, stacklevel=2)
        if report.crashed:
            raise CampaignError(crash_message(report), report)
        return report

    def _stored_spec(self, out: Path) -> dict:
        """:meth:`to_spec` with its file locations relative to the store directory ``out``, so
        that a campaign directory can be moved or shared together with its inputs."""
        spec = self.to_spec()
        here = Path(out).resolve()
        for k in LOCATION_KEYS:
            if isinstance(spec.get(k), str) and spec[k]:
                spec[k] = os.path.relpath(Path(spec[k]).resolve(), here)
        return spec

    def _check_same_campaign(self, store: Store, out: Path, append: bool) -> None:
        """Refuse to run into the store of a different campaign unless ``append``."""
        old = store.get_meta("campaign")

        def what(spec: dict) -> str:  # where the files were read from does not change the campaign
            return canonical_json({k: v for k, v in spec.items() if k not in LOCATION_KEYS})
        same = old is None or (isinstance(old, dict)
                                and what(old) == what(json.loads(dumps(self.to_spec()))))
        if same:
            return
        if append:  # keep the earlier campaign's spec: its points stay reportable
            store.set_meta("appended", [*store.get_meta("appended", []), old])
            return
        name = old.get("name") if isinstance(old, dict) else None
        raise ConfigError(f"{str(out)!r} already holds the store of a different campaign"
                          f"{f' ({name!r})' if name else ''}; choose another --out, or pass "
                          f"--append to add this campaign's points to that store.")

    def _execute(self, ex: Any, store: Store, todo: list[Point], report: CampaignReport,
                 resume: bool, progress: bool, log: Callable[[str], None] | None,
                 task: Callable[[str], dict], ckpts: CheckpointDir) -> None:
        if log:
            log(f"campaign {self.name!r}: {len(self.points)} points, {report.skipped} already "
                f"in the store, running {len(todo)} on {ex.describe()}")

        bar = tqdm(total=len(todo), unit="run", desc=self.name, file=sys.stderr, leave=False,
                   dynamic_ncols=True, disable=not (progress and sys.stderr.isatty()))
        by_tag = {p.index: p for p in todo}
        try:
            tasks = [(p.index, p.config_json) for p in todo]
            for tag, res, exc in ex.imap_unordered(task, tasks):
                p = by_tag[tag]
                if exc is not None:
                    report.crashed.append((p.index, f"{type(exc).__name__}: {exc}"))
                else:
                    store.put(p.key, config_json=p.config_json, seed=p.seed,
                              version=res["version"], status=res["status"],
                              result_json=res["result_json"], error=res["error"],
                              elapsed_s=res["elapsed_s"], replace=not resume)
                    ckpts.discard(p.key)          # only once the row is committed
                    report.executed += 1
                    if res["status"] == "error":
                        report.errors.append((p.index, res["error"]))
                    info = res.get("checkpoint") or {}
                    if info.get("resumed"):
                        reused, total = info["restored_hops"], info["total_hops"]
                        report.resumed.append((p.index, reused, total))
                        if log:
                            with tqdm.external_write_mode(file=sys.stderr):
                                log(f"point {p.index + 1}: resumed from its checkpoint, "
                                    f"{reused} of {total} hops reused")
                bar.update(1)
        finally:
            bar.close()

    # ------------------------------------------------------------------ results
