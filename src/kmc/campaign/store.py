"""Results store of a campaign: one SQLite file (standard library), one row per finished run.

Layout of a campaign directory ``DIR``::

    DIR/store.sqlite          the store (WAL journal; -wal/-shm side files while it is open)
    DIR/.kmc-campaign.lock    advisory lock: one campaign process writes to DIR at a time
    DIR/summary.csv           exports, rewritten atomically (see kmc.campaign.core)
    DIR/figures/*.png

Schema (``PRAGMA user_version = 2``)::

    runs(key TEXT PRIMARY KEY,      -- sha256 of the canonical JSON of the full config (seed incl.)
         config_json TEXT NOT NULL, -- that canonical JSON: exactly what was simulated
         seed INTEGER NOT NULL,     -- run.seed of the config (also inside config_json)
         version TEXT NOT NULL,     -- kmc version that computed the row (not part of the key)
         status TEXT NOT NULL,      -- 'ok', or 'error' for a run that raised a KMCError
         result_json TEXT,          -- RunResult.to_dict() without "config" and "version"
         error TEXT,                -- the KMCError sentence when status = 'error'
         elapsed_s REAL,            -- wall time of the run in its worker  (timing)
         created TEXT NOT NULL,     -- UTC ISO-8601 time the row was written (timing)
         checksum TEXT)             -- sha256 over key, config, seed, version, status, result and
                                    -- error (:func:`row_checksum`)
    meta(name TEXT PRIMARY KEY, value TEXT NOT NULL)   -- 'campaign': the campaign spec (JSON)
    VIEW run_temperatures           -- one row per (run, temperature) via json_each, for SQL users

Guarantees:

* Every row is written by the parent process only (workers return data), in ONE transaction,
  with ``INSERT OR IGNORE`` on the key, so a row is either fully there or absent and never
  duplicated, whatever moment the process is killed at (WAL + ``synchronous = FULL``).
* Equality of two stores ignores the timing columns ``elapsed_s`` and ``created`` and the timing
  keys ``wall_s`` and ``hops_per_s`` inside ``result_json`` (:data:`TIMING_KEYS`); everything else
  must be identical, bit for bit (:meth:`Store.fingerprint`).

* Integrity on read (:meth:`Store.verify`): every row's key is derived again from its stored
  config (``sha256(config_json)``) and its checksum recomputed; a row that fails either (a
  flipped byte, an edited config) is reported in :attr:`Store.bad_rows`, never served by
  :meth:`Store.rows` or counted by :meth:`Store.done_keys`, so the campaign recomputes that point.
  The checksum detects accidents (disk, editing), it is not a signature.
* A store of schema 1 (no checksums) is migrated in place when a campaign opens it for writing:
  rows whose key matches their config get their checksum; the others are reported as bad.

Nothing here unpickles anything: the store holds JSON text only.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator

from kmc.exceptions import ConfigError
from kmc.files import (
    atomic_write_bytes,
    atomic_write_text,
    atomic_write_with,
    clean_stale_temps,
    jsonable,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: no cross-process lock
    fcntl = None

__all__ = ["STORE_NAME", "SCHEMA_VERSION", "TIMING_KEYS", "TIMING_COLUMNS", "Store", "row_checksum",
           "campaign_lock", "atomic_write_bytes", "atomic_write_text", "atomic_write_with",
           "clean_stale_temps", "strip_timing"]

STORE_NAME = "store.sqlite"
LOCK_NAME = ".kmc-campaign.lock"
SCHEMA_VERSION = 2
#: ``PRAGMA application_id`` of a kmc store ("kmcS").
APPLICATION_ID = 0x6B6D6353
#: keys inside each per-temperature result that measure the machine, not the physics
TIMING_KEYS = ("wall_s", "hops_per_s")
#: columns of ``runs`` that measure the machine or the moment, not the physics
TIMING_COLUMNS = ("elapsed_s", "created")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    key         TEXT PRIMARY KEY,
    config_json TEXT NOT NULL,
    seed        INTEGER NOT NULL,
    version     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    result_json TEXT,
    error       TEXT,
    elapsed_s   REAL,
    created     TEXT NOT NULL,
    checksum    TEXT
);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE VIEW IF NOT EXISTS run_temperatures AS
    SELECT r.key AS key, r.seed AS seed, r.version AS version,
           CAST(t.key AS INTEGER) AS t_index,
           json_extract(t.value, '$.temperature_K') AS temperature_K,
           t.value AS result_json
    FROM runs AS r, json_each(r.result_json, '$.results') AS t
    WHERE r.status = 'ok';
PRAGMA user_version = {SCHEMA_VERSION};
PRAGMA application_id = {APPLICATION_ID};
"""


# ---------------------------------------------------------------------------------- JSON helpers
def plain(x: Any) -> Any:
    """Plain JSON data for the store: :func:`kmc.files.jsonable`, strict."""
    return jsonable(x, strict=True)


def dumps(x: Any) -> str:
    """Strict JSON text (no NaN); insertion order kept, so equal data give equal text."""
    return json.dumps(plain(x), allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def row_checksum(key: str, config_json: str, seed: int, version: str, status: str,
                 result_json: str | None, error: str | None) -> str:
    """sha256 over everything a row says about its run except the timing columns."""
    text = json.dumps([key, config_json, int(seed), version, status, result_json, error],
                      ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def strip_timing(result: dict) -> dict:
    """A copy of a stored result (``result_json`` parsed) without the timing keys."""
    out = dict(result)
    out["results"] = [{k: v for k, v in r.items() if k not in TIMING_KEYS}
                      for r in result.get("results", [])]
    return out


# ---------------------------------------------------------------------------------- lock
@contextlib.contextmanager
def campaign_lock(directory: str | Path) -> Iterator[None]:
    """Exclusive advisory lock on ``DIR`` (``flock``; released by the kernel if the process dies).

    Raises
    ------
    ConfigError
        When another process holds it.
    """
    path = Path(directory) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ConfigError(f"another kmc campaign is writing to {str(directory)!r}; "
                                      f"wait for it to finish or choose another --out "
                                      f"directory.") from None
                raise
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


# ---------------------------------------------------------------------------------- store
def _key_of(config_json: Any) -> str | None:
    if not isinstance(config_json, str):
        return None
    return hashlib.sha256(config_json.encode("utf-8")).hexdigest()


def _row_problem(r: sqlite3.Row, has_checksum: bool) -> str | None:
    """Why a stored row cannot be trusted, or None."""
    if _key_of(r["config_json"]) != r["key"]:
        return "its config no longer hashes to its key"
    try:
        json.loads(r["config_json"])
        if r["result_json"] is not None:
            json.loads(r["result_json"])
    except (TypeError, ValueError):
        return "its JSON is unreadable"
    if has_checksum:
        try:
            want = row_checksum(r["key"], r["config_json"], r["seed"], r["version"],
                                r["status"], r["result_json"], r["error"])
        except (TypeError, ValueError):
            return "a column has the wrong type"
        if r["checksum"] != want:
            return "its checksum does not match its contents"
    return None


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


class Store:
    """The SQLite results store of one campaign directory.

    Parameters
    ----------
    directory : path
        The campaign directory; the store is ``directory/store.sqlite``.
    readonly : bool
        Open an existing store without writing to it (a missing store raises ConfigError).
    """

    def __init__(self, directory: str | Path, *, readonly: bool = False) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STORE_NAME
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                raise ConfigError(f"no campaign store at {str(self.path)!r}; run `kmc campaign "
                                  f"FILE --out {self.directory}` first.")
            if self.path.stat().st_size == 0:
                # a 0-byte file (e.g. a store created but killed before its schema) is an empty
                # store: read it as one, without touching the file
                self._con = sqlite3.connect(":memory:")
                self._con.executescript(_SCHEMA)
            else:
                uri = f"file:{self.path.resolve()}?mode=ro"
                self._con = sqlite3.connect(uri, uri=True, timeout=30.0)
        else:
            self._con = sqlite3.connect(self.path, timeout=30.0)
        self._con.row_factory = sqlite3.Row
        #: rows that failed :meth:`verify` (key -> why), hidden from every read
        self.bad_rows: dict[str, str] = {}
        try:
            self._init()
            self.verify()
        except sqlite3.DatabaseError as exc:
            self._con.close()
            raise ConfigError(f"{str(self.path)!r} is not a readable kmc campaign store "
                              f"({exc}); choose another --out directory.") from None

    def _init(self) -> None:
        con = self._con
        app_id = con.execute("PRAGMA application_id").fetchone()[0]
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        fresh = not tables
        if not fresh and (app_id != APPLICATION_ID or "runs" not in tables):
            raise ConfigError(f"{str(self.path)!r} is an SQLite file but not a kmc campaign store; "
                              f"choose another --out directory.")
        if not fresh and version > SCHEMA_VERSION:
            raise ConfigError(f"{str(self.path)!r} was written by a newer kmc (store schema "
                              f"{version}); upgrade kmc or choose another --out directory.")
        if self.readonly:
            return
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA busy_timeout=30000")
        if fresh:
            con.executescript(_SCHEMA)
            con.commit()
        elif version < SCHEMA_VERSION:
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        """Schema 1 -> 2: add the checksum column and fill it for rows whose key still matches
        their config (the others stay without one and are reported as bad)."""
        con = self._con
        with con:
            cols = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
            if "checksum" not in cols:
                con.execute("ALTER TABLE runs ADD COLUMN checksum TEXT")
            for r in con.execute("SELECT * FROM runs").fetchall():
                if _key_of(r["config_json"]) == r["key"]:
                    con.execute("UPDATE runs SET checksum = ? WHERE key = ?",
                                (row_checksum(r["key"], r["config_json"], r["seed"], r["version"],
                                              r["status"], r["result_json"], r["error"]),
                                 r["key"]))
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- context manager
    def close(self) -> None:
        """Close; the writer also folds the WAL back into the file and leaves rollback-journal
        mode, so a finished store is one self-contained file that read-only readers can open
        without creating side files (the next writer switches WAL on again)."""
        if not self.readonly:
            try:
                self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._con.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.OperationalError:  # a reader is attached: keep WAL, still consistent
                pass
        self._con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing
    def put(self, key: str, *, config_json: str, seed: int, version: str, status: str,
            result_json: str | None = None, error: str | None = None,
            elapsed_s: float | None = None, replace: bool = False) -> bool:
        """Insert one finished run in one transaction; returns False if the key was already
        there (``INSERT OR IGNORE``), or replaces the row when ``replace`` (``--no-resume``)."""
        if status not in ("ok", "error"):
            raise ValueError(f"status must be 'ok' or 'error', got {status!r}")
        if _key_of(config_json) != key:
            raise ValueError(f"the key {key} is not the sha256 of its config")
        verb = "INSERT OR REPLACE" if replace or key in self.bad_rows else "INSERT OR IGNORE"
        check = row_checksum(key, config_json, seed, version, status, result_json, error)
        with self._con:  # one transaction: committed entirely or rolled back
            cur = self._con.execute(
                f"{verb} INTO runs (key, config_json, seed, version, status, result_json, error, "
                f"elapsed_s, created, checksum) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, config_json, int(seed), version, status, result_json, error,
                 None if elapsed_s is None else float(elapsed_s), _utc_now(), check))
        self.bad_rows.pop(key, None)
        return cur.rowcount == 1

    def set_meta(self, name: str, value: Any) -> None:
        with self._con:
            self._con.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                              (name, dumps(value)))

    # -- reading
    def get_meta(self, name: str, default: Any = None) -> Any:
        row = self._con.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        try:
            return default if row is None else json.loads(row[0])
        except (TypeError, ValueError):  # a damaged value is no value (rows are checked apart)
            return default

    def verify(self) -> dict[str, str]:
        """Check every row (key re-derived from its config, checksum recomputed); returns and
        keeps in :attr:`bad_rows` ``{key: why}`` for the rows that fail."""
        bad: dict[str, str] = {}
        has_sum = "checksum" in {r[1] for r in self._con.execute("PRAGMA table_info(runs)")}
        for r in self._con.execute("SELECT * FROM runs"):
            why = _row_problem(r, has_sum)
            if why is not None:
                bad[r["key"]] = why
        self.bad_rows = bad
        return dict(bad)

    def done_keys(self) -> set[str]:
        """Keys of every stored run that passes :meth:`verify` (status 'ok' or 'error': both
        are final)."""
        return {r[0] for r in self._con.execute("SELECT key FROM runs")} - set(self.bad_rows)

    def __len__(self) -> int:
        return self._con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def rows(self, keys: Iterable[str] | None = None) -> list[dict]:
        """Stored runs as dicts (``config``/``result`` parsed), ordered by key."""
        if keys is None:
            cur = self._con.execute("SELECT * FROM runs ORDER BY key")
            found = cur.fetchall()
        else:
            keys = list(keys)
            found = []
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                q = f"SELECT * FROM runs WHERE key IN ({','.join('?' * len(chunk))})"
                found.extend(self._con.execute(q, chunk).fetchall())
            found.sort(key=lambda r: r["key"])
        out = []
        for r in found:
            if r["key"] in self.bad_rows:
                continue  # never served: the campaign recomputes it
            d = dict(r)
            d["config"] = json.loads(d["config_json"])
            d["result"] = json.loads(d["result_json"]) if d["result_json"] else None
            out.append(d)
        return out

    def canonical_rows(self) -> list[tuple]:
        """Every row without its timing (see :data:`TIMING_COLUMNS`, :data:`TIMING_KEYS`),
        sorted by key: what must be identical whatever the executor, worker count or kills."""
        out = []
        for r in self.rows():
            res = dumps(strip_timing(r["result"])) if r["result"] is not None else None
            out.append((r["key"], r["config_json"], r["seed"], r["version"], r["status"], res,
                        r["error"]))
        return out

    def fingerprint(self) -> str:
        """sha256 over :meth:`canonical_rows`: equal fingerprints mean identical stores."""
        h = hashlib.sha256()
        for row in self.canonical_rows():
            h.update(dumps(list(row)).encode())
            h.update(b"\n")
        return h.hexdigest()

    def integrity_ok(self) -> bool:
        return self._con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
