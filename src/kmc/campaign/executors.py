"""Where campaign points run: :func:`execute_point` (one point in a worker: config JSON in,
plain data out, resumable from its checkpoint), :class:`LocalExecutor` (a process pool, serial
fallback when the calling script is not main-guarded), :class:`DaskExecutor` and
:func:`make_executor`."""
from __future__ import annotations

import ast
import contextlib
import hashlib
import inspect
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from kmc import __version__
from kmc.campaign.store import (
    dumps,
)
from kmc.config import Config
from kmc.exceptions import ConfigError, KMCError, StructureWarning
from kmc.runs.checkpoint import (
    CheckpointDir,
    RunCheckpointFile,
    install_stop_handlers,
)

__all__ = ["execute_point", "PointTask", "LocalExecutor", "DaskExecutor", "make_executor",
           "unguarded_main_script", "rerun_by_worker"]

TOP_KEYS = ("base", "campaign", "grid", "zip", "analysis")
CAMPAIGN_KEYS = ("name", "seed")
ANALYSIS_KEYS = ("arrhenius", "basis")
TEMPERATURE_KEY = "run.temperatures_K"
SEED_KEY = "run.seed"
_SUMMARY_NETWORK_KEYS = ("n_sites", "n_ions", "volume_A3")
#: confidence level of a ±1 standard error interval
ONE_SIGMA = 0.6826894921370859


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
    # lazy: kmc.runs.runner costs ~1 s (engine, scipy.stats); `kmc report` loads this module and runs no point
    from kmc.runs.runner import run_config

    t0 = time.perf_counter()
    config = Config.from_dict(json.loads(config_json))
    handle = None
    if checkpoint_dir is not None and checkpoint_every is not None:
        key = hashlib.sha256(config_json.encode("utf-8")).hexdigest()   # == run_key(config)
        handle = RunCheckpointFile(CheckpointDir(checkpoint_dir).file(key), checkpoint_every)
    try:
        result = run_config(config, checkpoint=handle, workers=1)  # the pool is the parallelism
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
            warnings.warn(f"Campaign.run() is called from the top level of {script} without "
                          f"`if __name__ == \"__main__\":`, and every worker process would run "
                          f"that script again, so the {len(tasks)} runs go one after another "
                          f"in this process; put the campaign code under that guard to use "
                          f"{self.workers} workers.", RuntimeWarning, stacklevel=4)
            yield from LocalExecutor(1).imap_unordered(fn, tasks)
            return

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
        # lazy: distributed is the optional [dask] extra
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
        # lazy: the optional [dask] extra
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
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__":
            return True
        frame = frame.f_back
    return False


def _worker_init(pid: int) -> None:
    """Initializer of local worker processes: stop cleanly on SIGINT/SIGTERM (a run saves a
    last checkpoint), exit when the parent is gone, and stay quiet about the input: the campaign
    process already warned about each point when it checked them all before the runs."""
    install_stop_handlers()
    warnings.simplefilter("ignore", StructureWarning)
    _watch_parent(pid)


def _watch_parent(pid: int, interval_s: float = 0.5) -> None:
    """Pool-worker initializer: exit as soon as the campaign process ``pid`` is gone.

    A worker holds both ends of the pool's task pipe, so it never sees EOF when the campaign is
    killed with SIGKILL; without this it would sleep (or finish its run) as an orphan forever.
    """
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
