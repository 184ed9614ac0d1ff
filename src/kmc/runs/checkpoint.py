"""Checkpoint files of runs in progress, shared by ``kmc run --out DIR`` and campaigns.

One checkpoint file holds the state of one run (:func:`kmc.runs.runner.encode_checkpoint`: every engine
with its RNG state, the observers, the finished temperatures), framed as::

    b"KMCCKPT1" + run key (64 hex digits) + b"\\n" + blob

The run key is the sha256 of the canonical JSON of the full, normalised config
(:func:`kmc.config.keys.run_key`), so a file can never be applied to another run. Files are written
atomically (temporary file in the same directory, fsync, rename:
:func:`kmc.campaign.store.atomic_write_bytes`), so a kill at any moment leaves either the previous
checkpoint or the new one, never a mixture; a temporary file left by a killed writer is removed by
:func:`kmc.campaign.store.clean_stale_temps`.

Where they live:

* ``kmc run CONFIG --out DIR``: ``DIR/run.ckpt`` (:data:`RUN_CHECKPOINT_NAME`), deleted once the
  result files are written;
* ``kmc campaign FILE --out DIR``: ``DIR/checkpoints/<run key>.ckpt`` (:class:`CheckpointDir`),
  deleted once the run's row is in the store.

The blob is plain data (:func:`encode_plain`): an .npz archive holding a JSON skeleton of the
state and its numpy arrays (engine state arrays, RNG state dicts), read back with
``allow_pickle=False``; only classes registered with :func:`register_plain` are rebuilt. Loading
a checkpoint therefore cannot run code, whatever the file contains. The run key and the sha256 in
the header guard against applying a file to the wrong run and against torn or flipped bytes; they
are not a security boundary (anyone who can write the file can recompute them), and need not be:
the decoder is. Checkpoints of kmc versions that wrote pickles are refused, never unpickled.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import signal
import threading
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from kmc import __version__
from kmc.config.keys import canonical_json, run_key
from kmc.exceptions import CheckpointError, ConfigError
from kmc.files import atomic_write_bytes

__all__ = ["MAGIC", "RUN_CHECKPOINT_NAME", "DEFAULT_CHECKPOINT_EVERY_S", "CheckpointFile",
           "CheckpointDir", "RunCheckpointFile", "check_checkpoint_every", "open_run_checkpoint",
           "PLAIN_FORMAT", "PlainDataError", "register_plain", "encode_plain", "decode_plain",
           "LEGACY_PICKLE_SENTENCE", "is_legacy_checkpoint", "stop_requested", "stop_point",
           "stop_on_signals", "install_stop_handlers"]

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
        Run key (ASCII, e.g. the 64 hex digits of :func:`kmc.config.keys.run_key`).
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

    A checkpoint is plain data (:func:`kmc.runs.runner.encode_checkpoint`: the run's whole state,
    every engine's arrays with its RNG state), framed by a header naming the run key
    (:class:`CheckpointFile`), so a file can never be applied to another run; loading one never
    runs pickle or any code it brings. Writes are atomic (temp + fsync + rename), so a kill
    leaves either the previous checkpoint or the new one. The campaign deletes a run's
    checkpoint once its row is in the store.
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

    def check_no_legacy(self, keys: set[str]) -> None:
        """Refuse old pickle checkpoints among ``keys`` (they are never loaded).

        Raises
        ------
        CheckpointError
            Naming the first such file and how to go on.
        """
        for key in sorted(keys & self.keys()):
            if is_legacy_checkpoint(self.path(key)):
                raise CheckpointError(f"{str(self.path(key))!r} {LEGACY_PICKLE_SENTENCE}; delete "
                                      f"it (that run then starts from the beginning) and rerun.")


class RunCheckpointFile:
    """A :class:`kmc.runs.runner.RunCheckpoint` on one :class:`CheckpointFile`, saved every
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


#: first bytes of a run checkpoint blob, then one line of JSON header, then the plain-data state
CHECKPOINT_MAGIC = b"KMC-RUN-CHECKPOINT\n"
#: format of the :class:`RunState` payload: 2 = plain data (:func:`kmc.runs.checkpoint.encode_plain`);
#: 1 was a pickle, which is refused (never loaded), see :data:`LEGACY_CHECKPOINT_FORMAT`
CHECKPOINT_FORMAT = 2
#: format number of the pickled checkpoints of earlier kmc versions
LEGACY_CHECKPOINT_FORMAT = 1
def frame_checkpoint(config: dict, payload: bytes) -> bytes:
    """A run checkpoint blob: :data:`CHECKPOINT_MAGIC`, one line of canonical JSON header
    (format, kmc version, the full config, size and sha256 of the payload), then the payload."""
    header = {"format": CHECKPOINT_FORMAT, "kmc_version": __version__, "config": config,
              "payload_bytes": len(payload), "payload_sha256": hashlib.sha256(payload).hexdigest()}
    return CHECKPOINT_MAGIC + canonical_json(header).encode("ascii") + b"\n" + payload


def checkpoint_header(blob: bytes) -> dict | None:
    """The JSON header of a run-state blob, or None when it has no complete one."""
    if not isinstance(blob, (bytes, bytearray)) or not blob.startswith(CHECKPOINT_MAGIC):
        return None
    nl = blob.find(b"\n", len(CHECKPOINT_MAGIC))
    try:
        header = json.loads(blob[len(CHECKPOINT_MAGIC):nl].decode("ascii")) if nl > 0 else None
    except (ValueError, UnicodeDecodeError):
        return None
    needed = ("format", "kmc_version", "config", "payload_bytes", "payload_sha256")
    if not isinstance(header, dict) or any(k not in header for k in needed):
        return None
    return header


def checkpoint_status(blob: bytes, config: Any) -> tuple[bytes | None, str | None]:
    """``(payload, None)`` when ``blob`` is a complete plain-data checkpoint of this kmc version
    and config (checksum verified, nothing decoded), else ``(None, why)`` with ``why`` one of
    ``"legacy"`` (a pickle of an earlier kmc: never loaded), ``"mismatch"`` (another format,
    version or config) or ``"unreadable"`` (truncated or corrupt)."""
    header = checkpoint_header(blob)
    if header is None:
        return None, "unreadable"
    if header["format"] == LEGACY_CHECKPOINT_FORMAT:
        return None, "legacy"
    if (header["format"] != CHECKPOINT_FORMAT or header["kmc_version"] != __version__
            or canonical_json(header["config"]) != canonical_json(config.to_dict())):
        return None, "mismatch"
    payload = bytes(blob[blob.index(b"\n", len(CHECKPOINT_MAGIC)) + 1:])
    if (len(payload) != header["payload_bytes"]
            or hashlib.sha256(payload).hexdigest() != header["payload_sha256"]):
        return None, "unreadable"
    return payload, None


#: why a checkpoint of an earlier kmc is refused (completed by the file and the way out)
LEGACY_PICKLE_SENTENCE = ("is a checkpoint in the old pickle format, which kmc no longer loads "
                          "because loading a pickle can run code")


def _blob_version(blob: bytes) -> str | None:
    """The kmc version in the header of a run-state blob, if it has a readable one."""
    header = checkpoint_header(blob)
    return None if header is None else str(header["kmc_version"])


def is_legacy_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a framed checkpoint whose run state is an old pickle (read as bytes,
    never unpickled)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 16)  # the header line holds the config: well below this
    except OSError:
        return False
    nl = data.find(b"\n", len(MAGIC))
    if not data.startswith(MAGIC) or nl < 0:
        return False
    header = checkpoint_header(data[nl + 1:])
    return header is not None and header["format"] == LEGACY_CHECKPOINT_FORMAT


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
        When ``DIR/run.ckpt`` is truncated or corrupt, belongs to another config, was written
        by another kmc version, or is an old pickle checkpoint (refused unread).
    """
    if interval_s is None:
        return None
    file = CheckpointFile(Path(out_dir) / RUN_CHECKPOINT_NAME, run_key(config.to_dict()))
    if file.path.exists() and not file.path.is_file():
        raise CheckpointError(f"{str(file.path)!r} is not a checkpoint file (it is a directory "
                              f"or another special file), and kmc deletes only its own files; "
                              f"move it away or choose another --out directory.")
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
        _, why = checkpoint_status(blob, config)
        if why == "unreadable":
            raise CheckpointError(f"{where} is truncated or corrupt; rerun with --fresh to discard "
                                  f"it and start from the beginning.")
        if why == "legacy":
            raise CheckpointError(f"{where} {LEGACY_PICKLE_SENTENCE}; rerun with --fresh to "
                                  f"discard it and start the run from the beginning.")
        if why is not None:
            version = _blob_version(blob)
            if version is not None and version != __version__:
                raise CheckpointError(f"{where} was written by kmc {version}, not {__version__}; "
                                      f"rerun with --fresh to start from the beginning.")
            raise CheckpointError(f"{where} is the checkpoint of a run with another config; rerun "
                                  f"with --fresh to discard it, or choose another --out "
                                  f"directory.")
    return RunCheckpointFile(file, interval_s)


# ====================================================================== plain-data codec
# A checkpoint payload is an .npz archive (numpy's zip of .npy files, read back with
# ``allow_pickle=False``): member ``skeleton`` is the UTF-8 JSON of the object tree, and every
# numpy array or scalar of the tree is its own member, referenced from the skeleton. Decoding
# builds only plain data, numpy arrays, allow-listed BitGenerators and the classes registered
# below, so loading a file can never run code it brings along.

#: format tag inside the skeleton (a different tag is refused)
PLAIN_FORMAT = "kmc-plain-data-1"
#: numpy BitGenerators a checkpoint may restore (by their state's ``bit_generator`` name)
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
_SKELETON = "skeleton"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: equal states give equal bytes


class PlainDataError(ValueError):
    """A payload is not a valid plain-data archive (truncated, corrupt, unknown class...)."""


@dataclass(frozen=True)
class PlainType:
    """How one registered class is encoded (see :func:`register_plain`)."""

    name: str
    cls: type
    to_state: Callable[[Any], dict] | None = None
    from_state: Callable[[dict, Mapping[str, Any]], Any] | None = None
    context_fields: Mapping[str, str] = field(default_factory=dict)


_BY_NAME: dict[str, PlainType] = {}
_BY_CLASS: dict[type, PlainType] = {}


def register_plain(cls: type | None = None, *, name: str | None = None,
                   to_state: Callable[[Any], dict] | None = None,
                   from_state: Callable[[dict, Mapping[str, Any]], Any] | None = None,
                   context_fields: Mapping[str, str] | None = None):
    """Allow instances of ``cls`` in checkpoints (usable as a class decorator too).

    By default an instance is saved as its attributes (``vars(obj)`` or its ``__slots__``),
    each of which must itself be plain data, an array or a registered object, and restored by
    ``cls.__new__`` plus setting those attributes (``__init__`` is not called). Only registered
    names are ever decoded.

    Parameters
    ----------
    cls : type
        The class (omit it to get a decorator).
    name : str, optional
        Name stored in files (default: the class's qualified name); keep it stable.
    to_state, from_state : callable, optional
        Custom encoding: ``to_state(obj) -> dict`` and ``from_state(state, context) -> obj``
        for objects that hold non-data parts (e.g. a compiled engine rebuilt from the context).
    context_fields : mapping, optional
        Attributes not saved but restored from the decode context: ``{attribute: context key}``
        (e.g. the run's config section, which the checkpoint header already pins).
    """
    def add(c: type) -> type:
        kind = PlainType(name or c.__qualname__, c, to_state, from_state,
                         dict(context_fields or {}))
        old = _BY_NAME.get(kind.name)
        if old is not None and old.cls is not c:
            raise ValueError(f"the plain-data name {kind.name!r} is already taken by "
                             f"{old.cls.__qualname__}")
        _BY_NAME[kind.name] = kind
        _BY_CLASS[c] = kind
        return c
    return add if cls is None else add(cls)


def _attributes(obj: Any) -> dict:
    if hasattr(obj, "__dict__"):
        return dict(vars(obj))
    names = [s for c in type(obj).__mro__ for s in getattr(c, "__slots__", ())]
    return {s: getattr(obj, s) for s in names if hasattr(obj, s)}


class _Encoder:
    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.array_ids: dict[int, int] = {}
        self.object_ids: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps encoded objects alive, so ids stay unique

    def array(self, a: np.ndarray) -> int:
        i = self.array_ids.get(id(a))
        if i is None:
            if a.dtype.hasobject:
                raise TypeError("a checkpoint cannot hold numpy arrays of Python objects")
            i = self.array_ids[id(a)] = len(self.arrays)
            self.arrays.append(a)
            self.keep.append(a)
        return i

    def __call__(self, x: Any) -> Any:
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, int) and not isinstance(x, np.integer):
            return int(x)
        if isinstance(x, float) and not isinstance(x, np.floating):
            return float(x) if math.isfinite(x) else {"$f": repr(float(x))}
        if isinstance(x, np.ndarray):
            return {"$a": self.array(x)}
        if isinstance(x, np.generic):
            return {"$s": self.array(np.asarray(x))}
        if isinstance(x, list):
            return [self(v) for v in x]
        if isinstance(x, tuple):
            return {"$t": [self(v) for v in x]}
        if isinstance(x, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in x):
                return {k: self(v) for k, v in x.items()}
            return {"$d": [[self(k), self(v)] for k, v in x.items()]}
        if isinstance(x, np.random.BitGenerator):
            state = x.state
            if state.get("bit_generator") not in BIT_GENERATORS:
                raise TypeError(f"cannot checkpoint the bit generator {type(x).__name__}")
            return {"$bg": self(state)}
        kind = _BY_CLASS.get(type(x))
        if kind is None:
            raise TypeError(f"cannot checkpoint a {type(x).__module__}.{type(x).__qualname__}; "
                            f"register it with kmc.runs.checkpoint.register_plain")
        i = self.object_ids.get(id(x))
        if i is not None:
            return {"$r": i}
        i = self.object_ids[id(x)] = len(self.object_ids)
        self.keep.append(x)
        if kind.to_state is not None:
            state = kind.to_state(x)
        else:
            state = {k: v for k, v in _attributes(x).items() if k not in kind.context_fields}
        return {"$o": kind.name, "id": i, "v": self(state)}


class _Decoder:
    def __init__(self, arrays: Mapping[str, np.ndarray], context: Mapping[str, Any]) -> None:
        self.arrays, self.context = arrays, context
        self.objects: dict[int, Any] = {}

    def array(self, i: Any) -> np.ndarray:
        if not isinstance(i, int) or isinstance(i, bool) or f"a{i}" not in self.arrays:
            raise PlainDataError(f"reference to a missing array {i!r}")
        return self.arrays[f"a{i}"]

    def __call__(self, x: Any) -> Any:
        if x is None or isinstance(x, (bool, str, int, float)):
            return x
        if isinstance(x, list):
            return [self(v) for v in x]
        if not isinstance(x, dict):
            raise PlainDataError(f"unexpected JSON value of type {type(x).__name__}")
        if len(x) == 1:
            (tag, v), = x.items()
            if tag == "$f":
                if v not in ("inf", "-inf", "nan"):
                    raise PlainDataError(f"bad non-finite float {v!r}")
                return float(v)
            if tag == "$a":
                return self.array(v)
            if tag == "$s":
                a = self.array(v)
                if a.ndim != 0:
                    raise PlainDataError("a numpy scalar must be a 0-d array")
                return a[()]
            if tag == "$t":
                return tuple(self(e) for e in self._list(v))
            if tag == "$d":
                return {self._key(self(k)): self(e) for k, e in (self._pair(p)
                                                                 for p in self._list(v))}
            if tag == "$bg":
                return self.bit_generator(self(v))
            if tag == "$r":
                if v not in self.objects:
                    raise PlainDataError(f"reference to an unknown object {v!r}")
                return self.objects[v]
        if "$o" in x:
            return self.obj(x)
        if any(k.startswith("$") for k in x):
            raise PlainDataError(f"unknown tag in {sorted(x)[:3]}")
        return {k: self(v) for k, v in x.items()}

    @staticmethod
    def _list(v: Any) -> list:
        if not isinstance(v, list):
            raise PlainDataError("expected a list")
        return v

    def _pair(self, p: Any) -> tuple:
        if not isinstance(p, list) or len(p) != 2:
            raise PlainDataError("expected a [key, value] pair")
        return p[0], p[1]

    @staticmethod
    def _key(k: Any) -> Any:
        if isinstance(k, (list, dict, np.ndarray)):
            raise PlainDataError("a dict key must be hashable")
        return k

    @staticmethod
    def bit_generator(state: Any) -> np.random.BitGenerator:
        name = state.get("bit_generator") if isinstance(state, dict) else None
        if name not in BIT_GENERATORS:
            raise PlainDataError(f"unknown bit generator {name!r}")
        bg = getattr(np.random, name)()
        try:
            bg.state = state
        except (TypeError, ValueError, KeyError) as exc:
            raise PlainDataError(f"bad {name} state ({exc})") from None
        return bg

    def obj(self, x: dict) -> Any:
        kind = _BY_NAME.get(x.get("$o"))
        i, raw = x.get("id"), x.get("v")
        if kind is None:
            raise PlainDataError(f"unregistered class name {x.get('$o')!r}")
        if not isinstance(i, int) or i in self.objects or not isinstance(raw, dict):
            raise PlainDataError("bad object record")
        if kind.from_state is not None:
            state = self(raw)
            if not isinstance(state, dict):
                raise PlainDataError("an object state must be a dict")
            try:
                out = kind.from_state(state, self.context)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise PlainDataError(f"cannot restore a {kind.name} ({exc})") from None
            self.objects[i] = out
            return out
        out = kind.cls.__new__(kind.cls)
        self.objects[i] = out           # registered first: shared and cyclic references work
        for attr, v in raw.items():
            object.__setattr__(out, attr, self(v))
        for attr, key in kind.context_fields.items():
            if key not in self.context:
                raise PlainDataError(f"decoding a {kind.name} needs {key!r} in the context")
            object.__setattr__(out, attr, self.context[key])
        return out


def encode_plain(obj: Any) -> bytes:
    """``obj`` (a tree of plain data, numpy arrays and scalars, BitGenerators and registered
    objects) as the bytes of an .npz archive; equal trees give equal bytes.

    Shared references to one registered object or array are kept (stored once).

    Raises
    ------
    TypeError
        For a value of an unregistered type.
    """
    enc = _Encoder()
    skeleton = {"format": PLAIN_FORMAT, "data": enc(obj)}
    text = json.dumps(skeleton, sort_keys=False, separators=(",", ":"), allow_nan=False)
    buf = io.BytesIO()
    members = [(_SKELETON, np.frombuffer(text.encode("utf-8"), dtype=np.uint8))]
    members += [(f"a{i}", a) for i, a in enumerate(enc.arrays)]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, a in members:
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(a), allow_pickle=False)
    return buf.getvalue()


def decode_plain(data: bytes, context: Mapping[str, Any] | None = None) -> Any:
    """Inverse of :func:`encode_plain`; ``context`` feeds registered classes' ``from_state``
    and ``context_fields``. Arrays come back writable and C-contiguous.

    Raises
    ------
    PlainDataError
        For anything but a complete archive written by :func:`encode_plain` (never runs
        pickle: arrays are read with ``allow_pickle=False``).
    """
    try:
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as z:
            arrays = {k: np.array(z[k], copy=True, order="C") for k in z.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise PlainDataError(f"not a plain-data archive ({exc})") from None
    raw = arrays.pop(_SKELETON, None)
    try:
        skeleton = json.loads(bytes(raw).decode("utf-8")) if raw is not None else None
    except (ValueError, UnicodeDecodeError):
        skeleton = None
    if not isinstance(skeleton, dict) or skeleton.get("format") != PLAIN_FORMAT:
        raise PlainDataError("the archive has no readable skeleton of this format")
    try:
        return _Decoder(arrays, context or {})(skeleton.get("data"))
    except RecursionError:
        raise PlainDataError("the skeleton is nested too deeply") from None


# ====================================================================== stopping at a safe point
class _StopState:
    """Process-wide: the signal that asked the run in progress to stop, and the live safe-point
    callbacks that will honour it (a run that can stop cleanly is in progress while one lives)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.points: weakref.WeakSet = weakref.WeakSet()


_STOP = _StopState()


def stop_requested() -> int | None:
    """The signal number that asked the run in progress to stop, or None."""
    return _STOP.signum


def stop_point(owner: Any) -> None:
    """Declare ``owner`` (a run's safe-point callback) as checking :func:`stop_requested` at
    every safe point while it lives: a SIGINT/SIGTERM handled by :func:`stop_on_signals` is then
    deferred to the next safe point, where the state is consistent and is saved, instead of
    interrupting at an arbitrary instruction."""
    _STOP.points.add(owner)


def _on_signal(signum: int, frame: Any) -> None:
    if len(_STOP.points) and _STOP.signum is None:
        _STOP.signum = signum           # the run saves a last checkpoint at its next safe point
        return
    _STOP.signum = signum
    raise KeyboardInterrupt             # no run to stop cleanly, or a second signal: stop now


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Handle SIGINT (Ctrl-C) and SIGTERM (what batch schedulers send first) alike: a run in
    progress saves a last checkpoint at its next safe point and raises KeyboardInterrupt;
    anything else is interrupted at once. Restores the previous handlers on exit (only the
    main thread may set handlers; elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    _STOP.signum = None
    for s in old:
        signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def install_stop_handlers() -> None:
    """:func:`stop_on_signals` for the rest of the process (campaign worker processes)."""
    _STOP.signum = None
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _on_signal)
