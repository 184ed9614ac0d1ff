"""Checkpoint files of runs in progress, shared by ``kmc run --out DIR`` and campaigns.

One checkpoint file holds the state of one run (:func:`kmc.runner.encode_checkpoint`: every engine
with its RNG state, the observers, the finished temperatures), framed as::

    b"KMCCKPT1" + run key (64 hex digits) + b"\\n" + blob

The run key is the sha256 of the canonical JSON of the full, normalised config
(:func:`kmc.campaign.run_key`), so a file can never be applied to another run. Files are written
atomically (temporary file in the same directory, fsync, rename:
:func:`kmc.store.atomic_write_bytes`), so a kill at any moment leaves either the previous
checkpoint or the new one, never a mixture; a temporary file left by a killed writer is removed by
:func:`kmc.store.clean_stale_temps`.

Where they live:

* ``kmc run CONFIG --out DIR``: ``DIR/run.ckpt`` (:data:`RUN_CHECKPOINT_NAME`), deleted once the
  result files are written;
* ``kmc campaign FILE --out DIR``: ``DIR/checkpoints/<run key>.ckpt`` (:class:`CheckpointDir`),
  deleted once the run's row is in the store.

**Loading a checkpoint runs pickle**: only load files kmc wrote itself, from a trusted directory.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from kmc.exceptions import CheckpointError, ConfigError
from kmc.store import atomic_write_bytes

__all__ = ["MAGIC", "RUN_CHECKPOINT_NAME", "DEFAULT_CHECKPOINT_EVERY_S", "CheckpointFile",
           "CheckpointDir", "RunCheckpointFile", "check_checkpoint_every", "open_run_checkpoint"]

#: first bytes of every checkpoint file (then the run key and a newline)
MAGIC = b"KMCCKPT1"
#: checkpoint of ``kmc run CONFIG --out DIR`` inside ``DIR``
RUN_CHECKPOINT_NAME = "run.ckpt"
#: default seconds between two checkpoints of a run in progress (``--checkpoint-every``)
DEFAULT_CHECKPOINT_EVERY_S = 60.0
_KEY_LEN = 64


def check_checkpoint_every(seconds: Any) -> float | None:
    """The checkpoint interval in seconds, or None for "no checkpoints" (``0`` or None).

    Raises
    ------
    ConfigError
        When ``seconds`` is not a finite number >= 0.
    """
    if seconds is None:
        return None
    if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds) or seconds < 0):
        raise ConfigError(f"the checkpoint interval must be a number of seconds of at least 0 (0 "
                          f"switches checkpoints off), got {seconds!r}; use e.g. "
                          f"--checkpoint-every 60.")
    return float(seconds) or None


class CheckpointFile:
    """One framed checkpoint file of the run ``key``.

    Parameters
    ----------
    path : path
        The file.
    key : str
        Run key (ASCII, e.g. the 64 hex digits of :func:`kmc.campaign.run_key`).
    make_parent : bool
        Create the parent directory (not its parents) before the first save.
    """

    def __init__(self, path: str | Path, key: str, *, make_parent: bool = False) -> None:
        self.path = Path(path)
        self.key = key
        self.make_parent = make_parent

    @property
    def _head(self) -> bytes:
        return MAGIC + self.key.encode("ascii") + b"\n"

    def save(self, blob: bytes) -> Path:
        """Replace the file atomically by ``blob`` (framed); an OSError leaves the old file."""
        if self.make_parent:
            # not parents=True: a worker on another machine without DIR must fail, not create it
            self.path.parent.mkdir(exist_ok=True)
        return atomic_write_bytes(self.path, self._head + blob)

    def load(self) -> bytes | None:
        """The saved blob, or None when there is no file.

        Raises
        ------
        CheckpointError
            With ``reason = "unreadable"`` for a file without a complete kmc checkpoint header,
            ``reason = "other-run"`` for the checkpoint of another run (another config).
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        head = self._head
        if data.startswith(head):
            return data[len(head):]
        nl = data.find(b"\n", len(MAGIC))
        if data.startswith(MAGIC) and nl == len(MAGIC) + _KEY_LEN:
            exc = CheckpointError(f"the checkpoint {str(self.path)!r} belongs to another run "
                                  f"(another config); delete it and rerun.")
            exc.reason = "other-run"
        else:
            exc = CheckpointError(f"the checkpoint {str(self.path)!r} is truncated or corrupt; "
                                  f"delete it and rerun.")
            exc.reason = "unreadable"
        raise exc

    def discard(self) -> None:
        """Delete the file (no error if it is missing)."""
        self.path.unlink(missing_ok=True)


class CheckpointDir:
    """Storage of mid-run checkpoints of a campaign: ``DIR/checkpoints/<run key>.ckpt``.

    A checkpoint is a pickle written by kmc itself (:func:`kmc.runner.encode_checkpoint`: the
    run's whole state, every engine with its RNG), framed by a header naming the run key
    (:class:`CheckpointFile`), so a file can never be applied to another run. Only files in this
    directory are ever loaded and nothing from a campaign file is unpickled, but **loading a
    checkpoint runs pickle**: the directory must be trusted (never copy checkpoints from untrusted
    sources into it). Writes are atomic (temp + fsync + rename), so a kill leaves either the
    previous checkpoint or the new one. The campaign deletes a run's checkpoint once its row is in
    the store.
    """

    MAGIC = MAGIC

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory) / "checkpoints"

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.ckpt"

    def file(self, key: str) -> CheckpointFile:
        """The :class:`CheckpointFile` of run ``key`` (its save creates ``checkpoints/``)."""
        return CheckpointFile(self.path(key), key, make_parent=True)

    def save(self, key: str, blob: bytes) -> Path:
        return self.file(key).save(blob)

    def load(self, key: str) -> bytes | None:
        """The saved state of run ``key``, or None when there is none (CheckpointError when the
        file does not belong to the run or is unreadable)."""
        return self.file(key).load()

    def discard(self, key: str) -> None:
        self.file(key).discard()

    def keys(self) -> set[str]:
        if not self.directory.is_dir():
            return set()
        return {p.stem for p in self.directory.glob("*.ckpt")}


class RunCheckpointFile:
    """A :class:`kmc.runner.RunCheckpoint` on one :class:`CheckpointFile`, saved every
    ``interval_s`` seconds.

    A file that does not belong to the run (wrong header) is handed to the runner as an empty
    blob, so the run starts afresh and its notes say so; a checkpoint that cannot be written
    (e.g. a Dask worker on a machine without ``DIR``, a full disk) switches checkpointing off for
    this run instead of failing it, and ``write_error`` says why."""

    def __init__(self, file: CheckpointFile, interval_s: float) -> None:
        self.file, self.interval_s = file, float(interval_s)
        self.write_error: str | None = None

    def load(self) -> bytes | None:
        try:
            return self.file.load()
        except CheckpointError:
            return b""
        except OSError:
            return None

    def save(self, blob: bytes) -> None:
        try:
            self.file.save(blob)
        except OSError as exc:
            self.write_error = str(exc)
            self.interval_s = math.inf


def _blob_version(blob: bytes) -> str | None:
    """The kmc version in the header of a run-state blob, if it has a readable one."""
    import json

    from kmc.runner import CHECKPOINT_MAGIC

    try:
        nl = blob.index(b"\n", len(CHECKPOINT_MAGIC))
        return str(json.loads(blob[len(CHECKPOINT_MAGIC):nl].decode("ascii"))["kmc_version"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def open_run_checkpoint(out_dir: str | Path, config, interval_s: float | None, *,
                        fresh: bool = False) -> RunCheckpointFile | None:
    """The checkpoint handle of ``kmc run CONFIG --out DIR``: ``DIR/run.ckpt``.

    An existing file is resumed only if it is a complete checkpoint of this very config written
    by this kmc version; anything else is an error that names ``--fresh`` (which discards it),
    so a checkpoint of another run is never overwritten by accident.

    Parameters
    ----------
    out_dir : path
        The ``--out`` directory (it exists).
    config : kmc.config.Config
        The run's validated config.
    interval_s : float or None
        Seconds between two saves; None switches checkpoints off (returns None, and an existing
        file is left alone).
    fresh : bool
        Discard an existing checkpoint and start from the beginning.

    Returns
    -------
    RunCheckpointFile or None

    Raises
    ------
    CheckpointError
        When ``DIR/run.ckpt`` is truncated or corrupt, belongs to another config, or was written
        by another kmc version.
    """
    if interval_s is None:
        return None
    from kmc.campaign import run_key
    from kmc.runner import decode_checkpoint

    file = CheckpointFile(Path(out_dir) / RUN_CHECKPOINT_NAME, run_key(config.to_dict()))
    if fresh:
        file.discard()
    where = str(file.path)
    try:
        blob = file.load()
    except CheckpointError as exc:
        if getattr(exc, "reason", "") == "other-run":
            raise CheckpointError(f"{where} is the checkpoint of a run with another config; rerun "
                                  f"with --fresh to discard it, or choose another --out "
                                  f"directory.") from None
        raise CheckpointError(f"{where} is truncated or corrupt; rerun with --fresh to discard it "
                              f"and start from the beginning.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the checkpoint {where} ({exc.strerror}); fix its "
                          f"permissions or rerun with --fresh.") from None
    if blob is not None:
        _, why = decode_checkpoint(blob, config)
        if why == "unreadable":
            raise CheckpointError(f"{where} is truncated or corrupt; rerun with --fresh to discard "
                                  f"it and start from the beginning.")
        if why is not None:
            from kmc import __version__

            version = _blob_version(blob)
            if version is not None and version != __version__:
                raise CheckpointError(f"{where} was written by kmc {version}, not {__version__}; "
                                      f"rerun with --fresh to start from the beginning.")
            raise CheckpointError(f"{where} is the checkpoint of a run with another config; rerun "
                                  f"with --fresh to discard it, or choose another --out "
                                  f"directory.")
    return RunCheckpointFile(file, interval_s)
