"""Files and JSON: atomic writes (complete or untouched), stale temporary files of killed
processes, and plain JSON data from numpy values. Imports nothing from kmc; every layer may use it.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

#: prefix of the temporary files of :func:`atomic_write_with` (``PREFIX<pid>-<name>.<random>``)
TMP_PREFIX = ".kmc-tmp-"


def jsonable(x: Any, strict: bool = False) -> Any:
    """Plain JSON data: numpy scalars/arrays to Python, dict keys to str, non-finite floats to
    None, recursively. Other objects pass through, or raise a TypeError with ``strict``."""
    if isinstance(x, dict):
        return {str(k): jsonable(v, strict) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v, strict) for v in x]
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    tolist = getattr(x, "tolist", None)  # numpy scalar or array
    if tolist is not None:
        return jsonable(tolist(), strict)
    if strict:
        raise TypeError(f"cannot store a value of type {type(x).__name__} as JSON")
    return x


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_with(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` so it is either complete or untouched: ``write(tmp)`` fills a temporary file
    in the same directory, which is fsynced and renamed over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{os.getpid()}-{path.name}.")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp_path, 0o666 & ~mask)  # mkstemp makes 0600; exports are ordinary files
        write(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write_with(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_with(path, lambda p: p.write_text(text, encoding="utf-8"))


def clean_stale_temps(directory: str | Path) -> int:
    """Remove temporary files left by killed kmc processes (their pid is no longer alive)."""
    removed = 0
    d = Path(directory)
    if not d.is_dir():
        return 0
    for p in d.glob(f"{TMP_PREFIX}*"):
        try:
            pid = int(p.name[len(TMP_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            p.unlink(missing_ok=True)
            removed += 1
    return removed
