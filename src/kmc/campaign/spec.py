"""A campaign as data: the spec (base config, grid and zip axes, analysis), validated once and
expanded into points with derived seeds (:class:`CampaignSpec`); the analysis bases and how grid
values are written in labels."""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from itertools import product
from pathlib import Path
from typing import Any, Sequence

from kmc.config import Config
from kmc.config.keys import canonical_json, parse_dotted, run_key
from kmc.exceptions import ConfigError

TOP_KEYS = ("base", "campaign", "grid", "zip", "analysis")
CAMPAIGN_KEYS = ("name", "seed")
ANALYSIS_KEYS = ("arrhenius", "basis")
TEMPERATURE_KEY = "run.temperatures_K"
SEED_KEY = "run.seed"

#: analysis basis -> (value key, standard-error key, fit y*T, ArrheniusFit basis name, unit)
BASES = {
    "sigma": ("sigma_S_cm", "sigma_err_S_cm", True, "sigma", "S_cm"),
    "D_tracer": ("D_tracer_cm2_s", "D_tracer_err_cm2_s", False, "D_tracer", "cm2_s"),
    "D_jump": ("D_jump_cm2_s", "D_jump_err_cm2_s", False, "D_jump", "cm2_s"),
}


def is_dopants(value: Any) -> bool:
    """Whether a grid value is a ``[dopants]`` table."""
    return isinstance(value, dict) and all(
        isinstance(v, dict) and "site" in v and "per_formula_unit" in v for v in value.values())


def plain_fmt(value: Any) -> str:
    """A value for labels: strings bare, numbers short, a ``[dopants]`` table as
    ``Ga 0.25 on Li1`` (``none`` when empty)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:g}"
    if is_dopants(value):
        return ", ".join(f"{el} {plain_fmt(v['per_formula_unit'])} on {v['site']}"
                         for el, v in value.items()) or "none"
    return fmt_value(value)


def fmt_value(value: Any) -> str:
    """A value as TOML-like text for messages (strings quoted)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", " = ") if isinstance(value, dict) else None)
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


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


class CampaignSpec:
    """The validated spec of a campaign (see :class:`kmc.campaign.core.Campaign`, which adds
    running and analysis); raises :class:`~kmc.exceptions.ConfigError` with one sentence."""

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
    def from_file(cls, path: str | Path, *, out: str | Path | None = None) -> "CampaignSpec":
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
                  ) -> "CampaignSpec":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"the campaign is not valid TOML ({exc}); fix the syntax at that "
                              f"line.") from None
        return cls(data, root=root, out=out)

    @classmethod
    def from_dict(cls, data: dict, *, root: str | Path = ".", out: str | Path | None = None
                  ) -> "CampaignSpec":
        return cls(copy.deepcopy(data), root=root, out=out)

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
