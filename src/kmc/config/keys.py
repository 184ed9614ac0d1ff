"""Identity of a config: canonical JSON, run keys and dotted config keys (``run.seed``).

Used by run checkpoints (a file belongs to exactly one config) and campaigns (grid axes, store
keys, derived seeds).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from kmc.exceptions import ConfigError


def canonical_json(obj: Any) -> str:
    """The canonical JSON text hashed into run keys and seeds: sorted keys, no whitespace,
    ASCII, floats by ``repr`` (round-trip exact), no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def run_key(config: dict) -> str:
    """Run key of a full, normalised config dict (``run.seed`` included)."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def parse_dotted(key: str) -> tuple[str, ...]:
    """Split a dotted config key like TOML does: ``a.b."c.d"`` -> ``("a", "b", "c.d")``."""
    if not isinstance(key, str) or not key.strip():
        raise ConfigError(f"the key {key!r} is not a dotted config key; write it like "
                          f"\"run.temperatures_K\".")
    parts: list[str] = []
    i, n = 0, len(key)
    while True:
        while i < n and key[i] in " \t":
            i += 1
        if i < n and key[i] in "\"'":
            q = key[i]
            j = key.find(q, i + 1)
            if j < 0:
                raise ConfigError(f"the key {key!r} has an unclosed quote; close it, e.g. "
                                  f"'model.barrier_eV.\"a-b@1.00\"'.")
            parts.append(key[i + 1:j])
            i = j + 1
        else:
            j = i
            while j < n and key[j] not in ".\"'":
                j += 1
            seg = key[i:j].strip()
            if not seg:
                raise ConfigError(f"the key {key!r} has an empty part; write it like "
                                  f"\"run.temperatures_K\".")
            if any(ch.isspace() for ch in seg):
                raise ConfigError(f"the key {key!r} has a space inside {seg!r}; quote that part "
                                  f"or remove the space.")
            parts.append(seg)
            i = j
        while i < n and key[i] in " \t":
            i += 1
        if i == n:
            break
        if key[i] != ".":
            raise ConfigError(f"the key {key!r} is not a dotted config key (unexpected "
                              f"{key[i]!r}); quote parts that contain dots or quotes.")
        i += 1
    return tuple(parts)
