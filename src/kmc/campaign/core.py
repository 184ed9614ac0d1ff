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
import difflib
import hashlib
import json
import math
import os
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from itertools import product
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from kmc import __version__
from kmc.campaign.spec import BASES, fmt_value, plain_fmt
from kmc.campaign.store import (
    STORE_NAME,
    Store,
    atomic_write_text,
    atomic_write_with,
    campaign_lock,
    clean_stale_temps,
    dumps,
)
from kmc.config import Config
from kmc.config.keys import canonical_json, parse_dotted, run_key
from kmc.exceptions import CampaignError, ConfigError, KMCError
from kmc.runs.checkpoint import (
    DEFAULT_CHECKPOINT_EVERY_S,
    CheckpointDir,
    RunCheckpointFile,
    check_checkpoint_every,
)

__all__ = ["Campaign", "Point", "CampaignReport", "LocalExecutor", "DaskExecutor",
           "CheckpointDir", "RunCheckpointFile", "PointTask", "GroupFit", "execute_point", "canonical_json", "parse_dotted", "run_key",
           "derive_seed", "TEMPERATURE_KEY", "SEED_KEY", "BASES"]

TOP_KEYS = ("base", "campaign", "grid", "zip", "analysis")
CAMPAIGN_KEYS = ("name", "seed")
ANALYSIS_KEYS = ("arrhenius", "basis")
TEMPERATURE_KEY = "run.temperatures_K"
SEED_KEY = "run.seed"
_SUMMARY_NETWORK_KEYS = ("n_sites", "n_ions", "volume_A3")
#: confidence level of a ±1 standard error interval
ONE_SIGMA = 0.6826894921370859


def _suggest(key: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(valid)}."


# ============================================================================== keys and seeds
def _without_seed(config: dict) -> dict:
    c = copy.deepcopy(config)
    c.get("run", {}).pop("seed", None)
    return c


def derive_seed(config: dict, campaign_seed: int) -> int:
    """Seed of a point: from its config (``run.seed`` ignored) and the campaign seed only."""
    text = canonical_json(_without_seed(config)) + "\n" + str(int(campaign_seed))
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 2**63





def _set_dotted(data: dict, path: tuple[str, ...], value: Any) -> None:
    node = data
    for depth, part in enumerate(path[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        elif not isinstance(nxt, dict):
            inner = ".".join(path[:depth + 1])
            raise ConfigError(f"{inner!r} is a value, not a table, so it cannot hold "
                              f"{path[depth + 1]!r}; vary {inner!r} itself or fix the key.")
        node = nxt
    node[path[-1]] = copy.deepcopy(value)


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where} holds {value!r}; use finite numbers only.")
        return
    if isinstance(value, list):
        for v in value:
            _check_plain(v, where)
        return
    if isinstance(value, dict):
        for v in value.values():
            _check_plain(v, where)
        return
    raise ConfigError(f"{where} holds {value!r} ({type(value).__name__}); use numbers, strings, "
                      f"booleans, lists or tables.")


def _check_values(vals: Any, where: str) -> None:
    """A ``[grid]``/``[zip]`` entry: a non-empty list of plain TOML values."""
    if not isinstance(vals, list):
        raise ConfigError(f"{where} must be a list of values, e.g. [0.1, 0.2]; got "
                          f"{fmt_value(vals)}.")
    if not vals:
        raise ConfigError(f"{where} is an empty list; give at least one value.")
    _check_plain(vals, where)


# ============================================================================== data classes
@dataclass(frozen=True)
class Axis:
    """One axis of the product: a ``[grid]`` key, or the whole ``[zip]`` group."""

    table: str                        # "grid" or "zip"
    keys: tuple[str, ...]             # dotted keys as written
    paths: tuple[tuple[str, ...], ...]
    values: tuple[tuple[Any, ...], ...]   # values[i][k]: value of keys[k] at index i

    def __len__(self) -> int:
        return len(self.values)

    def describe(self, i: int) -> str:
        if self.table == "grid":
            return f"[grid] \"{self.keys[0]}\" = {fmt_value(self.values[i][0])}"
        inner = ", ".join(f"{k} = {fmt_value(v)}" for k, v in zip(self.keys, self.values[i]))
        return f"[zip] entry {i + 1} ({inner})"


@dataclass(frozen=True)
class Point:
    """One run of the campaign."""

    index: int
    values: dict              # dotted key -> value as written in the campaign
    config: dict              # full normalised config, final run.seed included
    key: str                  # run key (sha256 hex)
    seed: int
    group: tuple              # (key, value) pairs that define its Arrhenius group

    @property
    def config_json(self) -> str:
        return canonical_json(self.config)

    @property
    def temperatures(self) -> list[float]:
        return list(self.config["run"]["temperatures_K"])

    def describe(self) -> str:
        if not self.values:
            return f"point {self.index + 1} (the base config)"
        return f"point {self.index + 1} (" + ", ".join(
            f"{k} = {fmt_value(v)}" for k, v in self.values.items()) + ")"


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

    @property
    def ok(self) -> bool:
        return not self.errors and not self.crashed

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


@dataclass(frozen=True)
class GroupFit:
    """Arrhenius fit of one group: the fit (None if it could not be made) and a note."""

    label: str
    fit: Any            # kmc.analysis.arrhenius.ArrheniusFit or None
    note: str = ""


# ============================================================================== the worker side
def execute_point(config_json: str, *, checkpoint_dir: str | None = None,
                  checkpoint_every: float | None = None) -> dict:
    """Run one point (in a worker): config JSON text in, plain data out. A :class:`KMCError`
    (e.g. a frozen system) is a deterministic result and comes back as ``status = 'error'``;
    anything else propagates, so the point is not stored and is retried next time.

    With ``checkpoint_dir`` (a campaign directory) and ``checkpoint_every`` seconds the run
    resumes from ``DIR/checkpoints/<run key>.ckpt`` if an earlier attempt left one, and saves
    its state there every ``checkpoint_every`` seconds (:class:`RunCheckpointFile`). The result
    is the same either way; ``checkpoint`` in the returned dict says what was reused."""
    from kmc.runs.runner import run_config

    t0 = time.perf_counter()
    config = Config.from_dict(json.loads(config_json))
    handle = None
    if checkpoint_dir is not None and checkpoint_every is not None:
        key = hashlib.sha256(config_json.encode("utf-8")).hexdigest()   # == run_key(config)
        handle = RunCheckpointFile(CheckpointDir(checkpoint_dir).file(key), checkpoint_every)
    try:
        result = run_config(config, checkpoint=handle)
    except KMCError as exc:
        return {"status": "error", "error": str(exc), "version": __version__,
                "result_json": None, "elapsed_s": time.perf_counter() - t0, "checkpoint": None}
    data = result.to_dict()
    version = data.pop("version", __version__)
    data.pop("config", None)
    info = dict(result.checkpoint_info) if handle is not None else None
    return {"status": "ok", "error": None, "version": version, "result_json": dumps(data),
            "elapsed_s": time.perf_counter() - t0, "checkpoint": info}


class PointTask:
    """The function a worker runs for one point: :func:`execute_point` with the campaign's
    checkpoint settings (a plain, picklable object, so every executor can ship it)."""

    def __init__(self, checkpoint_dir: str | None = None,
                 checkpoint_every: float | None = None) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every

    def __call__(self, config_json: str) -> dict:
        if self.checkpoint_dir is None:
            return execute_point(config_json)
        return execute_point(config_json, checkpoint_dir=self.checkpoint_dir,
                             checkpoint_every=self.checkpoint_every)


# ============================================================================== executors
class LocalExecutor:
    """Local process pool (``concurrent.futures``); ``workers=1`` runs in this process.

    Worker processes are started with ``forkserver`` (POSIX) or ``spawn``, never plain ``fork``,
    so they inherit no open store, lock or thread of the parent.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = _check_workers(workers)

    def describe(self) -> str:
        return f"{self.workers} local worker{'s' if self.workers != 1 else ''}"

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def imap_unordered(self, fn: Callable[[str], dict], tasks: Sequence[tuple[Any, str]]
                       ) -> Iterator[tuple[Any, dict | None, BaseException | None]]:
        """Yield ``(tag, result, exception)`` for every ``(tag, argument)`` as it finishes."""
        if not tasks:
            return
        if self.workers == 1 or len(tasks) == 1:
            for tag, arg in tasks:
                try:
                    res = fn(arg)
                except Exception as exc:  # noqa: BLE001 - reported, not stored, retried
                    yield tag, None, exc
                else:
                    yield tag, res, None
            return
        script = unguarded_main_script()
        if script is not None:
            import warnings

            warnings.warn(f"Campaign.run() is called from the top level of {script} without "
                          f"`if __name__ == \"__main__\":`, and every worker process would run "
                          f"that script again, so the {len(tasks)} runs go one after another "
                          f"in this process; put the campaign code under that guard to use "
                          f"{self.workers} workers.", RuntimeWarning, stacklevel=4)
            yield from LocalExecutor(1).imap_unordered(fn, tasks)
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not forkserver: Python 3.11's forkserver ignores the parent's sys.path, so run
        # from a source checkout it would import the uncompiled tree instead of the installed kmc
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(tasks)), mp_context=ctx,
                                   initializer=_worker_init, initargs=(os.getpid(),))
        try:
            futures = {pool.submit(fn, arg): tag for tag, arg in tasks}
            for fut in as_completed(futures):
                exc = fut.exception()
                yield futures[fut], (None if exc else fut.result()), exc
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM of this process: ask the workers to save a last checkpoint at
            # their next safe point and stop (kmc.runs.checkpoint.install_stop_handlers)
            for child in multiprocessing.active_children():
                with contextlib.suppress(OSError):
                    child.terminate()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Run on a ``dask.distributed`` cluster.

    Without ``scheduler`` a ``LocalCluster`` with ``workers`` single-threaded worker processes is
    started, bound to 127.0.0.1 (scheduler, workers, nannies and dashboard), and closed afterwards.
    With ``scheduler`` (e.g. ``"tcp://10.0.0.5:8786"``) the campaign connects to that cluster; the
    workers need this kmc version installed. Dask moves task arguments and results with pickle,
    so connect only to clusters you trust (see Dask's TLS settings); the campaign itself sends a
    config as JSON text and receives plain data.
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 client: Any = None) -> None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ConfigError("the Dask executor needs dask.distributed; install it (pip "
                              "install \"dask[distributed]\") or use --executor local.") from None
        self.scheduler = scheduler
        self.workers = _check_workers(workers)
        self.client = client
        self._own_client = client is None
        self.cluster = None
        self._depth = 0          # re-entrant: nested `with` blocks share one cluster

    def describe(self) -> str:
        if self.scheduler:
            return f"the Dask scheduler at {self.scheduler}"
        if not self._own_client:
            return "the given Dask client"
        return f"a local Dask cluster of {self.workers} worker{'s' if self.workers != 1 else ''}"

    def __enter__(self) -> "DaskExecutor":
        import logging

        from distributed import Client, LocalCluster

        self._depth += 1
        if self.client is not None:
            return self
        try:
            if self.scheduler:
                self.client = Client(self.scheduler, timeout="20s")
            else:
                self.cluster = LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address="127.0.0.1:0",
                    worker_dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
                self.client = Client(self.cluster)
        except (OSError, TimeoutError, RuntimeError) as exc:
            self._depth = 1
            self.__exit__()
            if self.scheduler:
                raise ConfigError(f"cannot reach the Dask scheduler at {self.scheduler} ({exc}); "
                                  f"check the --scheduler address or use --executor local.") \
                    from None
            raise ConfigError(f"cannot start a local Dask cluster ({exc}); use --executor local "
                              f"or point --scheduler to a running cluster.") from None
        return self

    def __exit__(self, *exc) -> None:
        self._depth = max(0, self._depth - 1)
        if self._depth:
            return
        if self._own_client and self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    @property
    def scheduler_address(self) -> str | None:
        return None if self.client is None else self.client.scheduler.address

    def worker_addresses(self) -> list[str]:
        return [] if self.client is None else list(self.client.scheduler_info()["workers"])

    def imap_unordered(self, fn: Callable[[str], dict], tasks: Sequence[tuple[Any, str]]
                       ) -> Iterator[tuple[Any, dict | None, BaseException | None]]:
        from distributed import as_completed

        if not tasks:
            return
        futures = {}
        for tag, arg in tasks:
            fut = self.client.submit(fn, arg, pure=False,
                                     key=f"kmc-run-{hashlib.sha256(arg.encode()).hexdigest()[:16]}"
                                         f"-{os.urandom(4).hex()}")
            futures[fut] = tag
        try:
            for fut in as_completed(list(futures)):
                tag = futures[fut]
                if fut.status == "finished":
                    yield tag, fut.result(), None
                else:
                    try:
                        exc = fut.exception()
                    except BaseException as e:  # noqa: BLE001 - cancelled futures raise
                        exc = e
                    yield tag, None, exc if exc is not None else RuntimeError(fut.status)
        finally:
            for fut in futures:
                fut.cancel()


def _main_guard_lines(path: str) -> list[tuple[int, int]]:
    """Line ranges of the ``if __name__ == "__main__":`` blocks of the Python file ``path``."""
    import ast

    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return []

    def is_main_test(t: ast.AST) -> bool:
        if not (isinstance(t, ast.Compare) and len(t.ops) == 1 and isinstance(t.ops[0], ast.Eq)):
            return False
        sides = [t.left, t.comparators[0]]
        return (any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
                and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides))
    return [(n.lineno, n.end_lineno or n.lineno) for n in ast.walk(tree)
            if isinstance(n, ast.If) and is_main_test(n.test)]


def unguarded_main_script() -> str | None:
    """The main script's path if this call comes from its top-level code outside an
    ``if __name__ == "__main__":`` block, else None.

    A worker process started with ``spawn`` (or ``forkserver``) first imports the main script
    again; top-level code that starts a campaign would then start it once more in every worker.
    Interactive sessions, notebooks and ``python -c`` have no script file and are safe."""
    import inspect

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or not Path(path).is_file():
        return None
    target = os.path.realpath(path)
    frame = inspect.currentframe()
    while frame is not None:
        if (frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__"
                and os.path.realpath(frame.f_code.co_filename) == target):
            line = frame.f_lineno
            if any(a <= line <= b for a, b in _main_guard_lines(path)):
                return None
            return path
        frame = frame.f_back
    return None


def rerun_by_worker() -> bool:
    """True while a worker process re-imports the main script (as ``__mp_main__``) and that
    script's top-level code calls into kmc: the script lacks an ``if __name__ == "__main__":``
    guard and :func:`unguarded_main_script` could not tell (e.g. code run by ``exec``)."""
    import inspect

    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__":
            return True
        frame = frame.f_back
    return False


def _worker_init(pid: int) -> None:
    """Initializer of local worker processes: stop cleanly on SIGINT/SIGTERM (a run saves a
    last checkpoint), and exit when the parent is gone."""
    from kmc.runs.checkpoint import install_stop_handlers

    install_stop_handlers()
    _watch_parent(pid)


def _watch_parent(pid: int, interval_s: float = 0.5) -> None:
    """Pool-worker initializer: exit as soon as the campaign process ``pid`` is gone.

    A worker holds both ends of the pool's task pipe, so it never sees EOF when the campaign is
    killed with SIGKILL; without this it would sleep (or finish its run) as an orphan forever.
    """
    import threading

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(3)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="kmc-parent-watch", daemon=True).start()


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return max(1, os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"the number of workers must be a whole number of at least 1, got "
                          f"{workers!r}; use e.g. --workers 2.")
    return workers


def make_executor(executor: Any = None, *, workers: int | None = None,
                  scheduler: str | None = None):
    """``None``/``"local"`` -> :class:`LocalExecutor`, ``"dask"`` -> :class:`DaskExecutor`, a
    ``distributed.Client`` -> :class:`DaskExecutor` on it, an executor object -> itself."""
    if executor is None:
        executor = "dask" if scheduler else "local"
    if isinstance(executor, str):
        if executor == "local":
            if scheduler:
                raise ConfigError("--scheduler needs the Dask executor; add --executor dask or "
                                  "leave --executor out.")
            return LocalExecutor(workers)
        if executor == "dask":
            return DaskExecutor(scheduler, workers)
        raise ConfigError(f"unknown executor {executor!r}; use \"local\" or \"dask\".")
    if hasattr(executor, "imap_unordered"):
        return executor
    if type(executor).__name__ == "Client" and hasattr(executor, "submit"):
        return DaskExecutor(client=executor)
    raise ConfigError(f"cannot run on {executor!r}; pass \"local\", \"dask\", a LocalExecutor, "
                      f"a DaskExecutor or a distributed.Client.")


# ============================================================================== checkpoints
# CheckpointDir, RunCheckpointFile and check_checkpoint_every live in kmc.runs.checkpoint (shared with
# `kmc run --out DIR`); they are imported above and stay importable from here.


# ============================================================================== the campaign
def _load_toml(path: Path, what: str) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {str(path)!r} ({exc.strerror}); check the "
                          f"path.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the {what} {str(path)!r} is not UTF-8 text (byte {exc.start}); save "
                          f"it as a UTF-8 TOML file.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the {what} {str(path)!r} is not valid TOML ({exc}); fix the syntax "
                          f"at that line.") from None


def _resolve_base(name: str, root: Path) -> Path:
    p = Path(name)
    cand = p if p.is_absolute() else root / p
    if cand.is_file():
        return cand
    bundled = resources.files("kmc.examples") / (p.name if p.suffix else f"{p.name}.toml")
    if not p.is_absolute() and len(p.parts) == 1 and bundled.is_file():
        return Path(str(bundled))
    raise ConfigError(f"base = {name!r}: no config file at {str(cand)!r}; give a path relative to "
                      f"the campaign file, or an inline [base] table.")


class Campaign:
    """A validated campaign: base config, axes, analysis; expanded into :attr:`points`.

    Build it with :meth:`from_file`, :meth:`from_toml` or :meth:`from_dict`; every problem raises
    :class:`~kmc.exceptions.ConfigError` with one sentence, before anything runs.

    Parameters
    ----------
    out : path, optional
        The campaign directory (store, summary, figures). Default: ``<name>.campaign`` in the
        current directory.
    """

    def __init__(self, spec: dict, *, root: str | Path = ".", out: str | Path | None = None,
                 source: str | None = None) -> None:
        root = Path(root)
        if not isinstance(spec, dict):
            raise ConfigError("a campaign must be a table of keys (base, grid, zip, analysis, "
                              "campaign).")
        for k in spec:
            if k not in TOP_KEYS:
                raise ConfigError(f"unknown key {k!r} at the top of the campaign; "
                                  f"{_suggest(k, TOP_KEYS)}")
        # [campaign]
        meta = spec.get("campaign", {})
        if not isinstance(meta, dict):
            raise ConfigError("[campaign] must be a table (name = ..., seed = ...).")
        for k in meta:
            if k not in CAMPAIGN_KEYS:
                raise ConfigError(f"unknown key {k!r} in [campaign]; {_suggest(k, CAMPAIGN_KEYS)}")
        default_name = Path(source).stem if source else "campaign"
        name = meta.get("name", default_name)
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("[campaign] name must be a non-empty string.")
        seed = meta.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ConfigError(f"[campaign] seed must be a whole number of at least 0, got "
                              f"{seed!r}.")
        self.name, self.seed, self.source = name, seed, source
        # base
        if "base" not in spec:
            raise ConfigError("the campaign has no base config; add base = \"config.toml\" or an "
                              "inline [base] table.")
        base = spec["base"]
        if isinstance(base, str):
            self.base_path: Path | None = _resolve_base(base, root)
            base = _load_toml(self.base_path, "base config")
            #: relative paths in the configs (``[lattice] cif``) are read from here
            self.base_dir = self.base_path.parent.resolve()
        elif isinstance(base, dict):
            self.base_path = None
            self.base_dir = root.resolve()
        else:
            raise ConfigError("base must be a path to a config file or an inline [base] table.")
        self.base = copy.deepcopy(base)
        _check_plain(self.base, "the base config")
        # axes
        self.axes: list[Axis] = []
        self._parse_axes(spec.get("grid", {}), spec.get("zip", {}))
        # [analysis]
        an = spec.get("analysis", {})
        if not isinstance(an, dict):
            raise ConfigError("[analysis] must be a table, e.g. arrhenius = true.")
        for k in an:
            if k not in ANALYSIS_KEYS:
                raise ConfigError(f"unknown key {k!r} in [analysis]; {_suggest(k, ANALYSIS_KEYS)}")
        arr = an.get("arrhenius", False)
        if not isinstance(arr, bool):
            raise ConfigError("[analysis] arrhenius must be true or false.")
        basis = an.get("basis", "sigma")
        if basis not in BASES:
            raise ConfigError(f"[analysis] basis = {basis!r} is not known; "
                              f"{_suggest(str(basis), list(BASES))}")
        self.arrhenius, self.basis = arr, basis
        if seed is not None and SEED_KEY in self.varied_keys:
            raise ConfigError(f"\"{SEED_KEY}\" is varied while [campaign] seed derives every "
                              f"point's seed; remove one of the two.")
        self.points: list[Point] = self._expand()
        if self.arrhenius:
            self._check_arrhenius()
        self.out = Path(out) if out is not None else Path(f"{name}.campaign")
        self._spec = {"name": name, "seed": seed, "base": self.base,
                      "grid": {a.keys[0]: [v[0] for v in a.values]
                               for a in self.axes if a.table == "grid"},
                      "zip": {k: [v[i] for v in a.values]
                              for a in self.axes if a.table == "zip"
                              for i, k in enumerate(a.keys)},
                      "analysis": {"arrhenius": arr, "basis": basis},
                      "source": source, "base_dir": str(self.base_dir)}

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_file(cls, path: str | Path, *, out: str | Path | None = None) -> "Campaign":
        """Read a campaign file (or a bundled example by name, e.g. ``campaign_sc_filling``)."""
        p = Path(path)
        if not p.is_file():
            bundled = resources.files("kmc.examples") / (p.name if p.suffix else f"{p.name}.toml")
            if len(p.parts) == 1 and bundled.is_file():
                p = Path(str(bundled))
            else:
                raise ConfigError(f"no campaign file at {str(p)!r}; check the path.")
        return cls(_load_toml(p, "campaign file"), root=p.parent, out=out, source=str(p))

    @classmethod
    def from_toml(cls, text: str, *, root: str | Path = ".", out: str | Path | None = None
                  ) -> "Campaign":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"the campaign is not valid TOML ({exc}); fix the syntax at that "
                              f"line.") from None
        return cls(data, root=root, out=out)

    @classmethod
    def from_dict(cls, data: dict, *, root: str | Path = ".", out: str | Path | None = None
                  ) -> "Campaign":
        return cls(copy.deepcopy(data), root=root, out=out)

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
        return cls(data, root=spec.get("base_dir", "."), out=out, source=spec.get("source"))

    def to_spec(self) -> dict:
        """The campaign as plain data (base inline): what the store keeps in ``meta``."""
        return copy.deepcopy(self._spec)

    # ------------------------------------------------------------------ parsing
    def _parse_axes(self, grid: Any, zipped: Any) -> None:
        if not isinstance(grid, dict):
            raise ConfigError("[grid] must be a table of dotted config keys to lists of values.")
        if not isinstance(zipped, dict):
            raise ConfigError("[zip] must be a table of dotted config keys to equal-length lists.")
        seen: dict[tuple, str] = {}

        def register(table: str, key: str) -> tuple[str, ...]:
            path = parse_dotted(key)
            for other_path, other in seen.items():
                if other_path == path:
                    raise ConfigError(f"\"{key}\" is in both [{other}] and [{table}]; keep it in "
                                      f"one of them." if other != table else
                                      f"[{table}] names \"{key}\" twice; keep one.")
                short = min(len(path), len(other_path))
                if path[:short] == other_path[:short]:
                    raise ConfigError(f"[{table}] \"{key}\" overlaps \"{'.'.join(other_path)}\" "
                                      f"in [{other}] (one contains the other); vary only one "
                                      f"of them.")
            seen[path] = table
            return path

        for key, vals in grid.items():
            path = register("grid", key)
            where = f"[grid] \"{key}\""
            _check_values(vals, where)
            self._no_duplicates(where, vals)
            self.axes.append(Axis("grid", (key,), (path,), tuple((v,) for v in vals)))
        if zipped:
            keys, paths, columns = [], [], []
            for key, vals in zipped.items():
                path = register("zip", key)
                where = f"[zip] \"{key}\""
                _check_values(vals, where)
                keys.append(key)
                paths.append(path)
                columns.append(vals)
            lengths = {k: len(c) for k, c in zip(keys, columns)}
            if len(set(lengths.values())) != 1:
                desc = ", ".join(f"\"{k}\" has {n}" for k, n in lengths.items())
                raise ConfigError(f"[zip] lists must all have the same length ({desc}); make "
                                  f"them equal or move a key to [grid].")
            rows = list(zip(*columns))
            self._no_duplicates("[zip]", [list(r) for r in rows])
            self.axes.append(Axis("zip", tuple(keys), tuple(paths), tuple(rows)))

    @staticmethod
    def _no_duplicates(where: str, vals: list) -> None:
        seen = {}
        for i, v in enumerate(vals):
            c = canonical_json(v)
            if c in seen:
                raise ConfigError(f"{where} lists {fmt_value(v)} twice (entries {seen[c] + 1} and "
                                  f"{i + 1}); remove the repeat.")
            seen[c] = i

    @property
    def varied_keys(self) -> list[str]:
        """Dotted keys varied by the campaign, in axis order."""
        return [k for a in self.axes for k in a.keys]

    @property
    def group_keys(self) -> list[str]:
        """Varied keys that define the Arrhenius groups (all but temperature and seed)."""
        return [k for k in self.varied_keys
                if parse_dotted(k) not in (parse_dotted(TEMPERATURE_KEY), parse_dotted(SEED_KEY))]

    # ------------------------------------------------------------------ expansion
    def _raw(self, choice: Sequence[int | None]) -> tuple[dict, dict]:
        """Base with the axes set to ``choice`` (None leaves an axis at the base value)."""
        data = copy.deepcopy(self.base)
        values: dict[str, Any] = {}
        for axis, i in zip(self.axes, choice):
            if i is None:
                continue
            for key, path, v in zip(axis.keys, axis.paths, axis.values[i]):
                _set_dotted(data, path, v)
                values[key] = v
        return data, values

    def _normalise(self, data: dict) -> dict:
        norm = Config.from_dict(copy.deepcopy(data), base_dir=self.base_dir).to_dict()
        if self.seed is not None:
            norm["run"]["seed"] = derive_seed(norm, self.seed)
        again = Config.from_dict(copy.deepcopy(norm)).to_dict()
        if again != norm:  # pragma: no cover - guards kmc.config, not user input
            raise ConfigError("the normalised config does not round-trip through "
                              "Config.from_dict; this is a kmc bug, please report it.")
        return norm

    def _valid(self, choice: Sequence[int | None]) -> str | None:
        try:
            self._normalise(self._raw(choice)[0])
        except ConfigError as exc:
            return str(exc)
        return None

    def _expand(self) -> list[Point]:
        n_axes = len(self.axes)
        first = [0] * n_axes
        # 1. the first point; blame the axis whose removal makes it valid
        msg = self._valid(first)
        if msg is not None:
            for a in range(n_axes):
                if self._valid(first[:a] + [None] + first[a + 1:]) is None:
                    raise ConfigError(f"{self.axes[a].describe(0)}: {msg}")
            if n_axes:
                raise ConfigError(f"{self._describe(first)}: {msg}")
            raise ConfigError(f"the base config: {msg}")
        # 2. every value of every axis, the others at their first value
        for a, axis in enumerate(self.axes):
            for i in range(1, len(axis)):
                msg = self._valid(first[:a] + [i] + first[a + 1:])
                if msg is not None:
                    raise ConfigError(f"{axis.describe(i)}: {msg}")
        # 3. every combination
        points: list[Point] = []
        by_key: dict[str, int] = {}
        gkeys = set(self.group_keys)
        for idx, choice in enumerate(product(*(range(len(a)) for a in self.axes))):
            data, values = self._raw(choice)
            try:
                norm = self._normalise(data)
            except ConfigError as exc:
                raise ConfigError(f"{self._describe(choice)}: {exc}") from None
            key = run_key(norm)
            if key in by_key:
                raise ConfigError(f"{self._describe(choice)} is the same simulation as point "
                                  f"{by_key[key] + 1} (equal configs after defaults and number "
                                  f"formats); remove the repeated value.")
            by_key[key] = idx
            group = tuple((k, canonical_json(v)) for k, v in values.items() if k in gkeys)
            points.append(Point(idx, values, norm, key, int(norm["run"]["seed"]), group))
        return points

    def _describe_point(self, p: Point) -> str:
        inner = ", ".join(f"{k} = {fmt_value(v)}" for k, v in p.values.items()) or "the base config"
        return f"campaign point {p.index + 1} of {len(self.points)} ({inner})"

    def _describe(self, choice: Sequence[int]) -> str:
        parts = []
        for axis, i in zip(self.axes, choice):
            parts.extend(f"{k} = {fmt_value(v)}" for k, v in zip(axis.keys, axis.values[i]))
        n = 1
        for a in self.axes:
            n *= len(a)
        idx = 0
        for axis, i in zip(self.axes, choice):
            idx = idx * len(axis) + i
        return f"campaign point {idx + 1} of {n} ({', '.join(parts)})"

    # ------------------------------------------------------------------ analysis groups
    def groups(self) -> dict[tuple, list[Point]]:
        """Points grouped by everything varied except temperature and seed (file order)."""
        out: dict[tuple, list[Point]] = {}
        for p in self.points:
            out.setdefault(p.group, []).append(p)
        return out

    def group_axes(self) -> list[tuple[str, list[str]]]:
        """Axes that define the Arrhenius groups, as ``(name, label keys)``: a ``[grid]`` key is
        labelled by itself, a ``[zip]`` group by its first key when that alone tells its entries
        apart (else by all its keys)."""
        gkeys = set(self.group_keys)
        out = []
        for a in self.axes:
            ks = [k for k in a.keys if k in gkeys]
            if not ks:
                continue
            j = a.keys.index(ks[0])
            first = [canonical_json(v[j]) for v in a.values]
            label = ks[:1] if len(set(first)) == len(first) else ks
            out.append((", ".join(label), label))
        return out

    def group_label(self, group: tuple) -> str:
        """Short legend label of a group, e.g. ``filling = 0.5, builtin = sc``."""
        if not group:
            return self.name
        values = dict(group)
        keys = [k for _, ks in self.group_axes() for k in ks]
        lasts = [parse_dotted(k)[-1] for k in keys]
        names = [last if lasts.count(last) == 1 else k for k, last in zip(keys, lasts)]
        return ", ".join(f"{n} = {plain_fmt(json.loads(values[k]))}" for n, k in zip(names, keys))

    def _check_arrhenius(self) -> None:
        for group, pts in self.groups().items():
            temps = {t for p in pts for t in p.temperatures}
            if len(temps) < 2:
                which = f"the group {self.group_label(group)}" if group else "the campaign"
                raise ConfigError(f"[analysis] arrhenius = true needs at least two temperatures "
                                  f"per group, but {which} has only {min(temps):g} K; add "
                                  f"temperatures to run.temperatures_K or to [grid].")

    # ------------------------------------------------------------------ checks before running
    def check_buildable(self, points: Iterable[Point]) -> None:
        """Build the site network and rate model of each distinct system among ``points`` (not
        the runs), so that errors only a built system can reveal (e.g. an occupancy that gives
        zero ions) stop the campaign before anything runs."""
        from kmc.runs.system import build_system

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
                    store.set_meta("campaign", self.to_spec())
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
                    for r in store.rows([p.key for p in self.points]):
                        if r["version"] != __version__:
                            versions[r["version"]] = versions.get(r["version"], 0) + 1
                    report.other_versions = versions
                if export:
                    report.written = self.export(out)
        report.elapsed_s = time.perf_counter() - t0
        if report.crashed:
            raise CampaignError(crash_message(report), report)
        return report

    def _check_same_campaign(self, store: Store, out: Path, append: bool) -> None:
        """Refuse to run into the store of a different campaign unless ``append``."""
        old = store.get_meta("campaign")
        same = old is None or canonical_json(old) == canonical_json(json.loads(dumps(
            self.to_spec())))
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
        from tqdm import tqdm

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
    def _rows(self, out: str | Path | None = None) -> dict[str, dict]:
        d = Path(out) if out is not None else self.out
        if not (d / STORE_NAME).is_file():
            return {}
        with Store(d, readonly=True) as st:
            return {r["key"]: r for r in st.rows([p.key for p in self.points])}

    def results(self, out: str | Path | None = None):
        """One row per (point, temperature) as a :class:`pandas.DataFrame`.

        Columns: ``point`` (1-based), ``key``, the varied keys (as dotted names; lists and tables
        as JSON text), ``group`` (Arrhenius group label), ``seed``, ``status`` (``ok``, ``error``
        or ``pending``), ``temperature_K``, every per-temperature result key (nested dicts
        flattened with dots), ``network.n_sites``/``n_ions``/``volume_A3``, ``version`` and
        ``error``. Pending points get one row per configured temperature with empty results.
        """
        import pandas as pd

        rows = self._records(self._rows(out))
        cols = list(dict.fromkeys(k for r in rows for k in r))
        head = ["point", "key", *self.varied_keys, "group", "seed", "status", "temperature_K"]
        tail = ["version", "error"]
        middle = [c for c in cols if c not in head and c not in tail]
        return pd.DataFrame(rows, columns=head + middle + tail)

    def _records(self, stored: dict[str, dict]) -> list[dict]:
        from kmc.runs.results import flatten

        out = []
        for p in self.points:
            row = stored.get(p.key)
            common = {"point": p.index + 1, "key": p.key}
            for k in self.varied_keys:
                v = p.values.get(k)
                common[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
            common["group"] = self.group_label(p.group)
            common["seed"] = p.seed
            if row is None or row["status"] != "ok":
                status = "pending" if row is None else row["status"]
                for T in p.temperatures:
                    out.append({**common, "status": status, "temperature_K": T,
                                "version": None if row is None else row["version"],
                                "error": None if row is None else row["error"]})
                continue
            res = row["result"]
            net = res.get("network", {}) or {}
            for r in res.get("results", []):
                rec = {**common, "status": "ok"}
                rec.update(flatten(r))
                for k in _SUMMARY_NETWORK_KEYS:
                    if k in net:
                        rec[f"network.{k}"] = net[k]
                rec["version"] = row["version"]
                rec["error"] = None
                out.append(rec)
        return out

    def fits(self, out: str | Path | None = None) -> dict[tuple, "GroupFit"]:
        """Arrhenius fit of every group (points that differ only in temperature and seed) over
        the finished runs in the store: ``fit_arrhenius`` of the basis (``sigma``: ``sigma*T``)
        weighted by the stored standard errors (unweighted if any is missing)."""
        from kmc.analysis.arrhenius import fit_arrhenius

        value_key, err_key, times_T, basis, _ = BASES[self.basis]
        stored = self._rows(out)
        fits: dict[tuple, GroupFit] = {}
        for group, pts in self.groups().items():
            T, y, e, dropped, missing = [], [], [], 0, 0
            for p in pts:
                row = stored.get(p.key)
                if row is None or row["status"] != "ok":
                    missing += 1
                    continue
                for r in row["result"].get("results", []):
                    t, v, s = r.get("temperature_K"), r.get(value_key), r.get(err_key)
                    if not (isinstance(v, (int, float)) and v > 0):
                        dropped += 1
                        continue
                    T.append(t)
                    y.append(v)
                    e.append(s)
            notes = []
            if missing:
                notes.append(f"{missing} point(s) not finished")
            if dropped:
                notes.append(f"{dropped} non-positive or missing value(s) dropped")
            weighted = bool(e) and all(isinstance(s, (int, float)) and s > 0 for s in e)
            if e and not weighted:
                notes.append("unweighted (some standard errors missing)")
            try:
                fit = fit_arrhenius(T, y, e if weighted else None, times_T=times_T, basis=basis)
            except ValueError as exc:
                fits[group] = GroupFit(self.group_label(group), None,
                                       "; ".join([f"no fit: {exc}", *notes]))
                continue
            fits[group] = GroupFit(self.group_label(group), fit, "; ".join(notes))
        return fits

    def analysis(self, out: str | Path | None = None):
        """Arrhenius analysis, one row per group, as a :class:`pandas.DataFrame`: the group's
        varied values, ``Ea_eV``, ``Ea_err_eV`` (1 s.e.), ``<basis>_300K_<unit>`` with its
        interval at the fit's level (95 %: ``_lo``/``_hi``) and its ±1 s.e. interval
        (``_1se_lo``/``_1se_hi``), the fitted range, ``reduced_chi2``, ``non_arrhenius`` and
        ``note``."""
        import pandas as pd

        _, _, _, basis, unit = BASES[self.basis]
        rows = []
        for group, gf in self.fits(out).items():
            row: dict[str, Any] = {"group": gf.label}
            for k, v in group:
                v = json.loads(v)
                row[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
            fit = gf.fit
            if fit is not None:
                d = fit.to_dict(unit=unit)
                lo1, hi1 = (float(x) for x in fit.interval(300.0, level=ONE_SIGMA))
                row.update({
                    "n_points": d["n_points"], "T_min_K": d["T_min_K"], "T_max_K": d["T_max_K"],
                    "Ea_eV": d["Ea_eV"], "Ea_err_eV": d["Ea_err_eV"],
                    f"{basis}_300K_{unit}": d[f"{basis}_300K_{unit}"],
                    f"{basis}_300K_lo_{unit}": d[f"{basis}_300K_lo_{unit}"],
                    f"{basis}_300K_hi_{unit}": d[f"{basis}_300K_hi_{unit}"],
                    f"{basis}_300K_1se_lo_{unit}": lo1, f"{basis}_300K_1se_hi_{unit}": hi1,
                    "level": d["level"], "ln_prefactor": d["ln_prefactor"],
                    "ln_prefactor_err": d["ln_prefactor_err"], "reduced_chi2": d["reduced_chi2"],
                    "non_arrhenius": d["non_arrhenius"],
                    "extrapolated_to_300K": d["extrapolated_to_300K"],
                })
            row["note"] = gf.note
            rows.append(row)
        head = ["group", *self.group_keys]
        cols = list(dict.fromkeys(head + [k for r in rows for k in r]))
        return pd.DataFrame(rows, columns=cols)

    # ------------------------------------------------------------------ exports
    def export(self, out: str | Path | None = None, formats: Sequence[str] = ("csv",),
               figures: bool = True) -> list[Path]:
        """Write ``summary.<fmt>`` (and ``arrhenius.<fmt>`` with the Arrhenius analysis) for each
        format in ``formats`` (``"csv"``, ``"parquet"``) plus the figures, each file atomically.
        Returns the paths written."""
        d = Path(out) if out is not None else self.out
        written: list[Path] = []
        tables = {"summary": self.results(d)}
        if self.arrhenius:
            tables["arrhenius"] = self.analysis(d)
        for fmt in formats:
            if fmt not in ("csv", "parquet"):
                raise ConfigError(f"unknown export format {fmt!r}; use csv or parquet.")
            for name, df in tables.items():
                path = d / f"{name}.{fmt}"
                if fmt == "csv":
                    written.append(atomic_write_text(path, df.to_csv(index=False)))
                else:
                    written.append(atomic_write_with(path, lambda p, df=df: _to_parquet(df, p)))
        if figures:
            from kmc.campaign.plots import campaign_figures

            written.extend(campaign_figures(self, d, tables))
        return written


def _to_parquet(df, path: Path) -> None:
    df = df.copy()
    for c in df.columns:  # parquet needs one type per column
        if df[c].dtype == object:
            kinds = {type(v) for v in df[c] if v is not None and v == v}
            if len(kinds) > 1:
                df[c] = [None if v is None or v != v else str(v) for v in df[c]]
    df.to_parquet(path, engine="pyarrow", index=False)
