"""Simulation configuration: TOML <-> frozen dataclasses.

Unknown keys are errors (with the closest valid key suggested), every number is checked for type,
finiteness and range at the boundary, and :meth:`Config.to_dict` gives back plain data that is saved
with every result.
"""
from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
from pymatgen.core.periodic_table import Element

from kmc.exceptions import ConfigError
from kmc.system.frameworks import is_framework_data
from kmc.system.lattices import LATTICES


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(sorted(valid))}."


def _number(where: str, value: Any, *, integer: bool = False, positive: bool = False,
            nonneg: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind, example = ("an integer", "4") if integer else ("a number", "0.25")
        raise ConfigError(f"{where} must be {kind}, got {value!r}; write a plain number such as "
                          f"{example} (no quotes).")
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise ConfigError(f"{where} must be a whole number, got {value!r}; round it to an "
                          f"integer.")
    if not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}; replace nan/inf by "
                          f"an ordinary value.")
    if positive and not value > 0:
        raise ConfigError(f"{where} must be greater than zero, got {value!r}; give a positive "
                          f"value.")
    if nonneg and value < 0:
        raise ConfigError(f"{where} must not be negative, got {value!r}; give zero or a positive "
                          f"value.")
    return int(value) if integer else float(value)


def _check_keys(where: str, table: Any, allowed: list[str]) -> dict:
    if not isinstance(table, dict):
        raise ConfigError(f"[{where}] must be a table of keys, got {table!r}; write it as a "
                          f"[{where}] section with key = value lines.")
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key {key!r} in [{where}]; {_suggest(key, allowed)}")
    return table


#: ``[lattice]`` defaults of a CIF source (documented in docs/frameworks_section.md)
CIF_HOP_CUTOFF_A = 3.0
CIF_EXCLUSION_DISTANCE_A = 0.0
CIF_SYMPREC = 0.01
TEACHING_SUPERCELL = (8, 8, 8)
#: a framework or CIF without ``supercell`` gets the smallest supercell whose three widths (distances
#: between opposite faces) are all at least this long: one conventional cell is too small for
#: garnets (c-LLZO 1x1x1 diffuses 2.5x slower than 2x2x2 or 3x3x3; see docs/frameworks_section.md)
AUTO_SUPERCELL_MIN_WIDTH_A = 20.0
TEACHING_ONLY = ("lattice_constant_A", "site_labels")


def _framework_names() -> list[str]:
    # lazy: kmc.system.frameworks, ~5 ms that `kmc --help` would pay; only framework configs need it
    from kmc.system.frameworks import framework_names

    return framework_names()


def _input_file(t: dict, key: str, what: str, example: str, base_dir, section: str = "lattice") -> Path:
    """The existing file named by ``[section] key`` (relative paths from the config's directory)."""
    if not isinstance(t[key], str) or not t[key]:
        raise ConfigError(f"[{section}] {key} must be the path of a {what}, e.g. "
                          f"{key} = \"{example}\".")
    path = Path(t[key]).expanduser()
    if not path.is_absolute():
        path = Path(base_dir if base_dir is not None else ".") / path
    path = path.absolute()
    if not path.is_file():
        raise ConfigError(f"no {what} at {str(path)!r}; check [{section}] {key} (a relative path is "
                          f"read from the config file's directory).")
    return path


@dataclass(frozen=True)
class LatticeConfig:
    """Which sites: a teaching lattice or a builtin framework (``builtin``), or a CIF file
    (``cif``), and the supercell.

    Optional values left at None take the source's default: a framework's data file, or for a
    CIF ``CIF_HOP_CUTOFF_A`` / ``CIF_EXCLUSION_DISTANCE_A`` / ``CIF_SYMPREC``.  ``supercell``
    defaults to 8x8x8 for a teaching lattice; for a framework or CIF None means the smallest
    supercell at least ``AUTO_SUPERCELL_MIN_WIDTH_A`` wide along every axis (see
    :func:`auto_supercell`).
    """

    builtin: str | None = "sc"
    supercell: tuple[int, int, int] | None = TEACHING_SUPERCELL
    lattice_constant_A: float | None = None
    mobile: str | None = None
    site_labels: tuple[str, ...] | None = None
    hop_cutoff_A: float | None = None
    exclusion_distance_A: float | None = None
    interaction_cutoff_A: float | None = None
    cif: str | None = None
    symprec: float | None = None
    framework_file: str | None = None   # a framework data file by path (e.g. from kmc parametrize)

    @property
    def kind(self) -> str:
        """``"teaching"``, ``"framework"`` or ``"cif"``."""
        if self.cif is not None:
            return "cif"
        if self.framework_file is not None:
            return "framework"
        return "teaching" if self.builtin in LATTICES else "framework"

    @property
    def source_name(self) -> str:
        if self.framework_file is not None:
            return self.framework_file
        return self.cif if self.cif is not None else str(self.builtin)

    @classmethod
    def parse(cls, t: dict, base_dir: str | Path | None = None, *,
              structure_name: str | None = None) -> "LatticeConfig":
        """Validate ``[lattice]``; ``structure_name`` names a structure given in memory (see
        :meth:`kmc.api.System.from_structure`), which takes the place of ``cif``."""
        t = _check_keys("lattice", t, [f.name for f in fields(cls)])
        kw: dict[str, Any] = {}
        if sum(k in t for k in ("builtin", "cif", "framework_file")) > 1:
            raise ConfigError("[lattice] names more than one of builtin, cif and framework_file; keep "
                              "exactly one of them.")
        if structure_name is not None:
            if "builtin" in t or "cif" in t or "framework_file" in t:
                raise ConfigError("a structure given in memory takes the place of [lattice] "
                                  "builtin, cif and framework_file; remove them.")
            kw["cif"], kw["builtin"] = str(structure_name), None
        elif "framework_file" in t:
            kw["framework_file"] = str(_input_file(t, "framework_file", "framework file",
                                                   "model/model.toml", base_dir))
            kw["builtin"] = None
        elif "cif" in t:
            kw["cif"], kw["builtin"] = str(_input_file(t, "cif", "CIF file", "garnet.cif",
                                                       base_dir)), None
        elif "builtin" in t:
            names = list(LATTICES) + _framework_names()
            if t["builtin"] not in names:
                raise ConfigError(f"[lattice] builtin = {t['builtin']!r} is not known; "
                                  f"{_suggest(str(t['builtin']), names)}")
            kw["builtin"] = t["builtin"]
        kind = cls(**{k: v for k, v in kw.items()}).kind
        if kind != "teaching":
            for key in TEACHING_ONLY:
                if key in t:
                    raise ConfigError(f"[lattice] {key} applies to teaching lattices only; remove "
                                      f"it for {kw.get('builtin') or 'a CIF'}.")
        if "symprec" in t and kind != "cif":
            raise ConfigError("[lattice] symprec applies to a CIF source only; remove it.")
        if "supercell" in t:
            sc = t["supercell"]
            if not isinstance(sc, list) or len(sc) != 3:
                raise ConfigError("[lattice] supercell must be a list of three integers, e.g. "
                                  "[8, 8, 8].")
            kw["supercell"] = tuple(_number("[lattice] supercell", x, integer=True, positive=True)
                                    for x in sc)
        else:
            kw["supercell"] = TEACHING_SUPERCELL if kind == "teaching" else None
        for key in ("lattice_constant_A", "hop_cutoff_A", "interaction_cutoff_A", "symprec"):
            if key in t:
                kw[key] = _number(f"[lattice] {key}", t[key], positive=True)
        if "exclusion_distance_A" in t:
            kw["exclusion_distance_A"] = _number("[lattice] exclusion_distance_A",
                                                 t["exclusion_distance_A"], nonneg=True)
        if "mobile" in t:
            if not isinstance(t["mobile"], str) or not t["mobile"]:
                raise ConfigError("[lattice] mobile must be an element symbol such as \"Li\".")
            kw["mobile"] = t["mobile"]
            if kind == "framework":
                # lazy: kmc.system.frameworks, ~5 ms that `kmc --help` would pay; only framework configs need it
                from kmc.system.frameworks import load_framework, load_framework_file

                fw = load_framework(kw["builtin"]) if kw.get("framework_file") is None else \
                    load_framework_file(kw["framework_file"])
                if t["mobile"] != fw.mobile:
                    raise ConfigError(f"[lattice] mobile = {t['mobile']!r} does not match "
                                      f"{fw.name}, whose mobile ion is {fw.mobile}; remove mobile "
                                      f"or set it to {fw.mobile!r}.")
        if "site_labels" in t:
            labels = t["site_labels"]
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise ConfigError("[lattice] site_labels must be a list of strings, one per site "
                                  "of the unit cell.")
            kw["site_labels"] = tuple(labels)
        if kind == "teaching":  # explicit values, so that a saved config says what was run
            kw.setdefault("lattice_constant_A", 1.0)
            kw.setdefault("mobile", "Li")
            kw.setdefault("exclusion_distance_A", 0.0)
        elif kind == "cif":
            kw.setdefault("mobile", "Li")
        return cls(**kw)


def auto_supercell(lattice, min_width_A: float = AUTO_SUPERCELL_MIN_WIDTH_A
                   ) -> tuple[int, int, int]:
    """Smallest repetitions of a cell (rows = lattice vectors, Å) such that every width of the
    supercell (distance between opposite faces) is at least ``min_width_A``."""
    L = np.asarray(lattice, float)
    vol = abs(float(np.linalg.det(L)))
    widths = [vol / float(np.linalg.norm(np.cross(L[j], L[k])))
              for j, k in ((1, 2), (2, 0), (0, 1))]
    n = [max(1, int(math.ceil(min_width_A / w - 1e-9))) for w in widths]
    return n[0], n[1], n[2]


@dataclass(frozen=True)
class OccupancyConfig:
    """How many mobile ions: exactly one of ``vacancies``, ``ions`` or ``filling``; for a
    framework or a CIF none of them (the default) means the structure's own ion count (after
    dopant charge compensation). ``start_structure`` (a framework or CIF lattice, no dopants)
    starts every replica from the arrangement of a structure file of the same framework, one cell
    of it repeated over the supercell (e.g. tetragonal Li7La3Zr2O12 on the cubic garnet lattice);
    the ion count is then that structure's."""

    vacancies: int | None = None
    ions: int | None = None
    filling: float | None = None
    start_structure: str | None = None

    @property
    def is_default(self) -> bool:
        return self.vacancies is None and self.ions is None and self.filling is None

    @classmethod
    def parse(cls, t: dict, base_dir: str | Path | None = None) -> "OccupancyConfig":
        t = _check_keys("occupancy", t, [f.name for f in fields(cls)])
        given = [k for k in ("vacancies", "ions", "filling") if k in t]
        if "start_structure" in t:
            if given:
                raise ConfigError(f"[occupancy] start_structure sets the ion count itself; remove "
                                  f"{', '.join(given)}.")
            return cls(start_structure=str(_input_file(t, "start_structure", "structure file",
                                                       "t-llzo.cif", base_dir, section="occupancy")))
        if not given:
            return cls()
        if len(given) != 1:
            raise ConfigError("[occupancy] needs exactly one of vacancies = N, ions = N or "
                              f"filling = 0..1 (got {', '.join(given) or 'none'}).")
        key = given[0]
        if key == "filling":
            c = _number("[occupancy] filling", t[key])
            if not 0.0 <= c <= 1.0:
                raise ConfigError(f"[occupancy] filling must lie between 0 and 1, got {c}; give "
                                  f"the fraction of sites occupied, e.g. filling = 0.5.")
            return cls(filling=c)
        n = int(_number(f"[occupancy] {key}", t[key], integer=True, nonneg=True))
        return cls(vacancies=n) if key == "vacancies" else cls(ions=n)

    def n_ions(self, n_sites: int, default: int | None = None) -> int:
        """Number of mobile ions on a lattice of ``n_sites`` free sites (``default`` when no
        value is set)."""
        if self.is_default:
            if default is None:
                raise ConfigError("[occupancy] needs exactly one of vacancies = N, ions = N or "
                                  "filling = 0..1 (got none).")
            n = default
        elif self.vacancies is not None:
            n = n_sites - self.vacancies
        elif self.ions is not None:
            n = self.ions
        else:
            assert self.filling is not None  # exactly one of the three is set (see parse)
            n = int(round(self.filling * n_sites))
        if not 0 < n <= n_sites:
            raise ConfigError(f"the occupancy gives {n} ions on {n_sites} sites; choose between 1 "
                              f"and {n_sites} ions (or 0..{n_sites - 1} vacancies).")
        return n


@dataclass(frozen=True)
class InterstitialcyConfig:
    """``[model.interstitialcy]``: knock-off events from ``interstitial`` site classes through
    ``lattice`` site classes (see :meth:`kmc.system.network.SiteNetwork.with_interstitialcy`)."""

    interstitial: tuple[str, ...]
    lattice: tuple[str, ...]
    max_angle_deg: float = 30.0

    @classmethod
    def parse(cls, t: dict) -> "InterstitialcyConfig":
        t = _check_keys("model.interstitialcy", t, [f.name for f in fields(cls)])
        kw: dict[str, Any] = {}
        for key in ("interstitial", "lattice"):
            v = t.get(key)
            if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
                raise ConfigError(f"[model.interstitialcy] {key} must be a non-empty list of site "
                                  f"class names, e.g. {key} = [\"{'I' if key == 'interstitial' else 'L'}\"].")
            kw[key] = tuple(v)
        if "max_angle_deg" in t:
            a = _number("[model.interstitialcy] max_angle_deg", t["max_angle_deg"])
            if not 0.0 <= a < 180.0:
                raise ConfigError(f"[model.interstitialcy] max_angle_deg must lie in [0, 180), got "
                                  f"{a}.")
            kw["max_angle_deg"] = a
        return cls(**kw)


@dataclass(frozen=True)
class ModelConfig:
    """Energy model: attempt frequency, barriers, site energies, interactions, field.

    Values left unset (None, empty tables) take the source's defaults: 10 THz and 0.25 eV for a
    teaching lattice, the data file for a framework (tables given here override the named
    entries only), nothing for a CIF (``barrier_eV`` is then required)."""

    attempt_frequency_THz: float | None = None
    barrier_eV: float | dict | None = None
    site_energies_eV: dict = field(default_factory=dict)
    interactions_eV: dict = field(default_factory=dict)
    field_V_per_A: tuple[float, float, float] = (0.0, 0.0, 0.0)
    #: a field beyond linear response is studied on purpose (high-field drift): warn, not refuse
    nonlinear_field: bool = False
    charge_e: float = 1.0
    interstitialcy: InterstitialcyConfig | None = None

    @classmethod
    def parse(cls, t: dict) -> "ModelConfig":
        t = _check_keys("model", t, [f.name for f in fields(cls)])
        kw: dict[str, Any] = {}
        if "attempt_frequency_THz" in t:
            kw["attempt_frequency_THz"] = _number("[model] attempt_frequency_THz",
                                                  t["attempt_frequency_THz"], positive=True)
        if "charge_e" in t:
            kw["charge_e"] = _number("[model] charge_e", t["charge_e"])
        if "barrier_eV" in t:
            b = t["barrier_eV"]
            if isinstance(b, dict):
                kw["barrier_eV"] = {str(k): _number(f"[model.barrier_eV] {k}", v)
                                    for k, v in b.items()}
            else:
                kw["barrier_eV"] = _number("[model] barrier_eV", b)
        if "site_energies_eV" in t:
            se = _check_keys("model.site_energies_eV", t["site_energies_eV"],
                             list(t["site_energies_eV"]) if isinstance(t["site_energies_eV"], dict)
                             else [])
            kw["site_energies_eV"] = {str(k): _number(f"[model.site_energies_eV] {k}", v)
                                      for k, v in se.items()}
        if "interactions_eV" in t:
            it = _check_keys("model.interactions_eV", t["interactions_eV"],
                             ["mobile_mobile", "mobile_blocker"])
            parsed = {}
            for key, shells in it.items():
                if not isinstance(shells, list) or not all(
                        isinstance(s, list) and len(s) == 2 for s in shells):
                    raise ConfigError(f"[model.interactions_eV] {key} must be a list of "
                                      f"[r_max_A, J_eV] pairs, e.g. [[1.01, 0.05]].")
                parsed[key] = [[_number(f"[model.interactions_eV] {key} r_max_A", r, positive=True),
                                _number(f"[model.interactions_eV] {key} J_eV", j)] for r, j in shells]
            kw["interactions_eV"] = parsed
        if "field_V_per_A" in t:
            f = t["field_V_per_A"]
            if not isinstance(f, list) or len(f) != 3:
                raise ConfigError("[model] field_V_per_A must be a list of three numbers "
                                  "[Ex, Ey, Ez] in V/Å.")
            kw["field_V_per_A"] = tuple(_number("[model] field_V_per_A", x) for x in f)
        if "nonlinear_field" in t:
            if not isinstance(t["nonlinear_field"], bool):
                raise ConfigError("[model] nonlinear_field must be true or false.")
            kw["nonlinear_field"] = t["nonlinear_field"]
        if "interstitialcy" in t:
            kw["interstitialcy"] = InterstitialcyConfig.parse(t["interstitialcy"])
        return cls(**kw)


#: keys of one ``[dopants]`` entry: required, then optional
DOPANT_KEYS = ("site", "per_formula_unit", "charge", "energy_shift_eV", "shift_radius_A")


def parse_dopants(t: Any) -> dict[str, dict]:
    """``[dopants]``: element -> {site, per_formula_unit, charge?, energy_shift_eV?,
    shift_radius_A?}, validated; only the keys given are kept (so the table round-trips)."""
    if not isinstance(t, dict):
        raise ConfigError("[dopants] must be a table such as Ga = { site = \"Li\", "
                          "per_formula_unit = 0.25 }.")

    out: dict[str, dict] = {}
    for el, spec in t.items():
        if not Element.is_valid_symbol(el):
            raise ConfigError(f"[dopants] {el!r} is not a chemical element; use a symbol such as "
                              f"\"Ga\" as the key.")
        where = f"[dopants] {el}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where} must be an inline table, e.g. {el} = {{ site = \"Li\", "
                              f"per_formula_unit = 0.25 }}.")
        _check_keys(f"dopants.{el}", spec, list(DOPANT_KEYS))
        for key in ("site", "per_formula_unit"):
            if key not in spec:
                raise ConfigError(f"{where} needs {key} (e.g. {el} = {{ site = \"Zr\", "
                                  f"per_formula_unit = 0.5 }}).")
        if not isinstance(spec["site"], str) or not spec["site"]:
            raise ConfigError(f"{where} site must name a host element or site label, e.g. "
                              f"site = \"Zr\".")
        d: dict[str, Any] = {"site": spec["site"],
                             "per_formula_unit": _number(f"{where} per_formula_unit",
                                                         spec["per_formula_unit"], nonneg=True)}
        if "charge" in spec:
            q = _number(f"{where} charge", spec["charge"], integer=True)
            if q == 0:
                raise ConfigError(f"{where} charge must be a non-zero integer (the dopant's "
                                  f"oxidation state).")
            d["charge"] = q
        if ("energy_shift_eV" in spec) != ("shift_radius_A" in spec):
            raise ConfigError(f"{where} needs energy_shift_eV and shift_radius_A together (the "
                              f"shift applies to mobile sites within the radius of a dopant).")
        if "energy_shift_eV" in spec:
            d["energy_shift_eV"] = _number(f"{where} energy_shift_eV", spec["energy_shift_eV"])
            d["shift_radius_A"] = _number(f"{where} shift_radius_A", spec["shift_radius_A"],
                                          positive=True)
        out[str(el)] = d
    return out


ARRHENIUS_BASES = ("auto", "D_tracer", "D_jump", "sigma_T")
#: fewest frame intervals per replica the MSD estimator accepts
MIN_MSD_FRAMES = 16
#: default frame-buffer size (intervals) per replica, ``[run] msd_frames``: memory is
#: (msd_frames + 1) x ions x 24 bytes per replica
DEFAULT_MSD_FRAMES = 256
CONVERGE_QUANTITIES = ("D_tracer", "D_jump")
#: ``max_hops_per_ion`` when ``target_rel_err`` is set without it: this many times ``hops_per_ion``.
DEFAULT_MAX_HOPS_FACTOR = 16


#: engine hops one run may ask for: the engine counts hops in signed 64-bit integers (2**63 - 1),
#: with a factor of 2 to spare for the block rounding
MAX_ENGINE_HOPS = 2**62


def check_hop_budget(run: "RunConfig", n_ions: int) -> int:
    """The largest number of engine hops ``run`` may do with ``n_ions`` ions (every temperature,
    replica, equilibration and convergence round).

    Raises
    ------
    ConfigError
        When that exceeds :data:`MAX_ENGINE_HOPS`, which the engine's 64-bit counters cannot hold.
    """
    n = max(int(n_ions), 1)
    per_replica = math.ceil(run.equilibration_hops_per_ion * n) \
        + 2 * max(1, math.ceil(run.max_hops_limit * n))  # doubling rounds may overshoot 2x
    total = len(run.temperatures_K) * run.replicas * per_replica
    if total > MAX_ENGINE_HOPS:
        raise ConfigError(f"[run] asks for up to {float(total):.3g} engine hops ({n} ions, "
                          f"hops_per_ion = {run.hops_per_ion:g}), more than the engine's 64-bit "
                          f"hop counters hold ({float(MAX_ENGINE_HOPS):.3g}); lower hops_per_ion "
                          f"(or max_hops_per_ion, equilibration_hops_per_ion).")
    return int(total)


# ---------------------------------------------------------------------- plausibility at the boundary
#: temperatures above this are refused: every solid electrolyte has melted (K)
MAX_TEMPERATURE_K = 3000.0
#: E_KRA above this gets a warning: such hops are frozen at any temperature a solid survives (eV)
HIGH_BARRIER_EV = 3.0
#: attempt frequencies (Hz): outside the wide range an error, outside the usual one a warning
#: (phonon frequencies of solids are 1e12-1e14 Hz, so 1e11-1e15 Hz covers every lattice hop)
ATTEMPT_HZ_USUAL = (1e11, 1e15)
ATTEMPT_HZ_POSSIBLE = (1e10, 1e16)
#: max |q E . dr| / kT of a field run: linear response (the docs' condition) needs << 1; above
#: FIELD_WORK_WARN a warning, above FIELD_WORK_ERROR an error (hop rates along and against the
#: field then differ by more than e^10 ~ 2e4, nowhere near a linear conductivity)
FIELD_WORK_WARN = 0.1
FIELD_WORK_ERROR = 10.0


def _plausibility(model: "ModelConfig", run: "RunConfig") -> list[str]:
    """Errors for impossible physics, warnings (returned) for what a physicist might mean."""
    warnings = []
    hot = [T for T in run.temperatures_K if T > MAX_TEMPERATURE_K]
    if hot:
        raise ConfigError(f"[run] temperatures_K contains {hot[0]:g} K, above "
                          f"{MAX_TEMPERATURE_K:g} K where every solid electrolyte has melted; give "
                          f"temperatures in kelvin between 0 and {MAX_TEMPERATURE_K:g}.")
    b = model.barrier_eV
    barriers = b.items() if isinstance(b, dict) else ([("", b)] if b is not None else [])
    for name, v in barriers:
        where = f"[model.barrier_eV] {name}" if name else "[model] barrier_eV"
        if v < 0:
            raise ConfigError(f"{where} = {v:g} eV is negative, but a migration barrier (E_KRA) "
                              f"is at least 0; give the barrier height in eV, e.g. 0.3.")
        if v > HIGH_BARRIER_EV:
            warnings.append(f"{where} = {v:g} eV is above {HIGH_BARRIER_EV:g} eV: such hops are "
                            f"practically frozen; check the unit (eV, not kJ/mol).")
    nu = model.attempt_frequency_THz
    if nu is not None:
        hz = nu * 1e12
        lo, hi = ATTEMPT_HZ_POSSIBLE
        if not lo <= hz <= hi:
            raise ConfigError(f"[model] attempt_frequency_THz = {nu:g} THz ({hz:.3g} Hz) is "
                              f"outside {lo:.0e}-{hi:.0e} Hz, beyond any lattice vibration; give "
                              f"it in THz, typically 1-100 (e.g. 10).")
        lo, hi = ATTEMPT_HZ_USUAL
        if not lo <= hz <= hi:
            warnings.append(f"[model] attempt_frequency_THz = {nu:g} THz is outside the usual "
                            f"{lo / 1e12:g}-{hi / 1e12:g} THz of lattice vibrations; check the "
                            f"unit (THz).")
    return warnings


def validity_notes(config: "Config", field_work_over_kT: list[float] | None = None) -> list[str]:
    """Notes for a result: the config's plausibility warnings, the physics defaults it relied
    on (:attr:`Config.defaults_used`) and, for a field run, the linear-response check.

    Parameters
    ----------
    config : Config
    field_work_over_kT : list of float, optional
        max |q E . dr| / kT at every temperature (see ``kmc.runs.replicas.field_work_over_kT``).

    Raises
    ------
    ConfigError
        When the field is far beyond linear response (above :data:`FIELD_WORK_ERROR`) and
        ``[model] nonlinear_field`` is not set.
    """
    notes = [f"warning: {w}" for w in getattr(config, "warnings", ())]
    notes += [f"default used: {d}" for d in getattr(config, "defaults_used", ())]
    work = max(field_work_over_kT or [0.0])
    model = getattr(config, "model", None)
    if work > FIELD_WORK_ERROR and not getattr(model, "nonlinear_field", False):
        raise ConfigError(f"[model] field_V_per_A gives max |qE.dr|/kT = {work:.3g}, far beyond "
                          f"linear response (which needs it well below 1); lower the field by "
                          f"a factor of at least {work / FIELD_WORK_WARN:.2g}, or set [model] "
                          f"nonlinear_field = true to study high-field drift on purpose.")
    if work > FIELD_WORK_WARN:
        notes.append(f"warning: the field gives max |qE.dr|/kT = {work:.3g}; linear response "
                     f"needs it well below 1 (e.g. < {FIELD_WORK_WARN:g}), so sigma_field is "
                     f"biased; lower field_V_per_A.")
    return notes


@dataclass(frozen=True)
class RunConfig:
    """Temperatures, run length, replicas, seed, convergence control and the Arrhenius basis.

    Each replica is equilibrated for ``equilibration_hops_per_ion``, then its ion displacements
    are recorded at ``msd_frames + 1`` frames equally spaced in simulated time over a
    measurement of about ``hops_per_ion`` hops per ion (its length in seconds is set from the
    replicas' mean total rate after equilibration, the same for every replica). D*, D_J, f and
    sigma come from the slope of the MSD (all overlapping time origins) in the diffusive regime
    (see :func:`kmc.analysis.transport.analyze_frames`); errors are taken over the replicas.
    ``time_origins``: the fit window ends at the lag where at least ``max(4, time_origins)``
    non-overlapping windows fit into the measurement. ``msd_points`` is accepted and ignored (the
    lag grid is fixed by the frames). With ``target_rel_err`` the measurement time is doubled in
    rounds (the same simulations continue; a full frame buffer keeps every other frame) until
    every quantity in ``converge_on`` is in the diffusive regime and its replica standard error
    relative to its mean is at most ``target_rel_err``, or the next round would pass
    ``max_hops_per_ion`` (default ``DEFAULT_MAX_HOPS_FACTOR * hops_per_ion``).
    ``fresh_final_round = true`` (needs ``target_rel_err``): once the rule has stopped, a fresh
    set of ``replicas`` replicas (new seeds) is measured for the decided time and only they are
    reported, so the reported errors do not depend on the stopping decision (which otherwise
    stops preferentially on draws whose error came out small); it costs about twice the hops.
    ``arrhenius_basis = "auto"`` (default) fits the headline Arrhenius law to whichever of
    ``D_tracer`` and ``sigma_T`` has the smaller median relative standard error over the
    temperatures its fit uses (its MSD diffusive).
    """

    temperatures_K: tuple[float, ...] = (600.0,)
    hops_per_ion: float = 200.0
    equilibration_hops_per_ion: float = 20.0
    replicas: int = 8
    seed: int = 0
    msd_points: int = 20
    msd_frames: int = DEFAULT_MSD_FRAMES
    check_rates: bool = False
    time_origins: int = 1
    target_rel_err: float | None = None
    max_hops_per_ion: float | None = None
    converge_on: tuple[str, ...] = ("D_tracer",)
    #: replicas (of all temperatures) advanced concurrently (threads around the nogil engine);
    #: None = every core. An execution setting, not physics: results are bit-identical for any
    #: value, so it is left out of :meth:`Config.to_dict` (run keys, checkpoints and campaign
    #: stores ignore it)
    workers: int | None = None
    arrhenius_basis: str = "auto"
    #: None = off (false is stored as None, so configs without the key keep their run keys)
    fresh_final_round: bool | None = None

    @property
    def block_hops_per_ion(self) -> float:
        """Hops per ion in the longest lag the fit may use with ``time_origins`` origins."""
        return self.hops_per_ion / self.time_origins

    @property
    def max_hops_limit(self) -> float:
        """Largest number of measured hops per ion the convergence loop may reach."""
        if self.target_rel_err is None:
            return self.hops_per_ion
        return self.max_hops_per_ion if self.max_hops_per_ion is not None \
            else DEFAULT_MAX_HOPS_FACTOR * self.hops_per_ion

    @classmethod
    def parse(cls, t: dict) -> "RunConfig":
        t = _check_keys("run", t, [f.name for f in fields(cls)])
        kw: dict[str, Any] = {}
        if "temperatures_K" in t:
            temps = t["temperatures_K"]
            temps = temps if isinstance(temps, list) else [temps]
            if not temps:
                raise ConfigError("[run] temperatures_K is empty; give at least one temperature.")
            kw["temperatures_K"] = tuple(_number("[run] temperatures_K", x, positive=True)
                                         for x in temps)
        if "hops_per_ion" in t:
            kw["hops_per_ion"] = _number("[run] hops_per_ion", t["hops_per_ion"], positive=True)
        if "equilibration_hops_per_ion" in t:
            kw["equilibration_hops_per_ion"] = _number("[run] equilibration_hops_per_ion",
                                                       t["equilibration_hops_per_ion"], nonneg=True)
        if "replicas" in t:
            kw["replicas"] = _number("[run] replicas", t["replicas"], integer=True, positive=True)
        if "seed" in t:
            kw["seed"] = _number("[run] seed", t["seed"], integer=True, nonneg=True)
            if kw["seed"] >= 2**63:  # the campaign store keeps it as a 64-bit SQLite integer
                raise ConfigError(f"[run] seed must be below 2**63, got {kw['seed']}; use a "
                                  f"smaller seed.")
        if "msd_points" in t:
            kw["msd_points"] = _number("[run] msd_points", t["msd_points"], integer=True,
                                       positive=True)
        if "msd_frames" in t:
            m = _number("[run] msd_frames", t["msd_frames"], integer=True, positive=True)
            if m < MIN_MSD_FRAMES or m % 2:
                raise ConfigError(f"[run] msd_frames must be an even number of at least "
                                  f"{MIN_MSD_FRAMES}, got {m}; use e.g. 256.")
            kw["msd_frames"] = m
        if "check_rates" in t:
            if not isinstance(t["check_rates"], bool):
                raise ConfigError("[run] check_rates must be true or false.")
            kw["check_rates"] = t["check_rates"]
        if "time_origins" in t:
            kw["time_origins"] = _number("[run] time_origins", t["time_origins"], integer=True,
                                         positive=True)
        if "target_rel_err" in t:
            r = _number("[run] target_rel_err", t["target_rel_err"])
            if not 0.0 < r < 1.0:
                raise ConfigError(f"[run] target_rel_err must lie strictly between 0 and 1 (a "
                                  f"relative standard error such as 0.05), got {r}.")
            kw["target_rel_err"] = r
        if "max_hops_per_ion" in t:
            kw["max_hops_per_ion"] = _number("[run] max_hops_per_ion", t["max_hops_per_ion"],
                                             positive=True)
        if "converge_on" in t:
            q = t["converge_on"]
            q = [q] if isinstance(q, str) else q
            if not isinstance(q, list) or not q or not all(isinstance(x, str) for x in q):
                raise ConfigError("[run] converge_on must be a list of quantity names, e.g. "
                                  "[\"D_tracer\", \"D_jump\"].")
            for x in q:
                if x not in CONVERGE_QUANTITIES:
                    raise ConfigError(f"[run] converge_on names {x!r}, which is not a converged "
                                      f"quantity; {_suggest(x, list(CONVERGE_QUANTITIES))}")
            kw["converge_on"] = tuple(dict.fromkeys(q))
        if "workers" in t:
            kw["workers"] = _number("[run] workers", t["workers"], integer=True, positive=True)
        if "arrhenius_basis" in t:
            b = t["arrhenius_basis"]
            if b not in ARRHENIUS_BASES:
                raise ConfigError(f"[run] arrhenius_basis = {b!r} is not known; "
                                  f"{_suggest(str(b), list(ARRHENIUS_BASES))}")
            kw["arrhenius_basis"] = b
        if "fresh_final_round" in t:
            if not isinstance(t["fresh_final_round"], bool):
                raise ConfigError("[run] fresh_final_round must be true or false.")
            kw["fresh_final_round"] = True if t["fresh_final_round"] else None
        cfg = cls(**kw)
        if cfg.block_hops_per_ion < 1.0:
            raise ConfigError(f"[run] time_origins = {cfg.time_origins} splits hops_per_ion = "
                              f"{cfg.hops_per_ion:g} into blocks of less than one hop per ion; "
                              f"lower time_origins or raise hops_per_ion.")
        if cfg.target_rel_err is None:
            # (converge_on at its default is what to_dict() writes back: let it round-trip)
            for key in ("max_hops_per_ion", "converge_on", "fresh_final_round"):
                if key in t and getattr(cfg, key) != getattr(cls, key, None):
                    raise ConfigError(f"[run] {key} only acts together with target_rel_err; set "
                                      f"target_rel_err = 0.05 (say) or remove {key}.")
        else:
            if cfg.replicas < 2:
                raise ConfigError("[run] target_rel_err needs a replica standard error, so at "
                                  "least 2 replicas; set replicas = 4 or more.")
            if cfg.max_hops_per_ion is not None and cfg.max_hops_per_ion < cfg.hops_per_ion:
                raise ConfigError(f"[run] max_hops_per_ion = {cfg.max_hops_per_ion:g} is below "
                                  f"hops_per_ion = {cfg.hops_per_ion:g}; make it at least "
                                  f"hops_per_ion.")
        return cfg


@dataclass(frozen=True)
class OutputConfig:
    """``[output]``: what a run writes besides its results (see :mod:`kmc.runs.trajectory`).

    ``trajectory`` is an ASE extended-XYZ file of one replica (replica 0 at
    ``trajectory_temperature_K``, default the first temperature): ``trajectory_frames`` intervals
    (so ``trajectory_frames + 1`` frames) evenly spaced in hops over its measurement, the mobile
    ions in a fixed order, then the immobile blockers and, with ``framework_atoms = true``, the
    framework atoms of the supercell. A relative path is written into ``kmc run --out DIR`` (or
    the working directory without ``--out``).
    """

    trajectory: str | None = None
    trajectory_frames: int = 100
    trajectory_temperature_K: float | None = None
    framework_atoms: bool = False

    @classmethod
    def parse(cls, t: dict, temperatures_K: tuple[float, ...]) -> "OutputConfig":
        t = _check_keys("output", t, [f.name for f in fields(cls)])
        kw: dict[str, Any] = {}
        if "trajectory" in t:
            path = t["trajectory"]
            if not isinstance(path, str) or not path.lower().endswith((".extxyz", ".xyz")):
                raise ConfigError(f"[output] trajectory must be a file name ending in .extxyz "
                                  f"(or .xyz), e.g. trajectory = \"traj.extxyz\"; got {path!r}.")
            parts = PurePosixPath(path.replace("\\", "/")).parts
            if (path.startswith(("/", "~", "\\")) or PureWindowsPath(path).drive
                    or ".." in parts):
                raise ConfigError(f"[output] trajectory = {path!r} leaves the output directory; "
                                  f"give a path relative to --out DIR without '..', e.g. "
                                  f"trajectory = \"traj.extxyz\".")
            kw["trajectory"] = path
        else:
            extra = [k for k in t if k != "trajectory"]
            if extra:
                raise ConfigError(f"[output] {extra[0]} only acts together with trajectory; add "
                                  f"trajectory = \"traj.extxyz\" or remove {extra[0]}.")
        if "trajectory_frames" in t:
            kw["trajectory_frames"] = _number("[output] trajectory_frames",
                                              t["trajectory_frames"], integer=True, positive=True)
        if "trajectory_temperature_K" in t:
            x = _number("[output] trajectory_temperature_K", t["trajectory_temperature_K"],
                        positive=True)
            if x not in temperatures_K:
                raise ConfigError(f"[output] trajectory_temperature_K = {x:g} is not one of [run] "
                                  f"temperatures_K ({', '.join(f'{T:g}' for T in temperatures_K)}"
                                  f"); pick one of them.")
            kw["trajectory_temperature_K"] = x
        if "framework_atoms" in t:
            if not isinstance(t["framework_atoms"], bool):
                raise ConfigError("[output] framework_atoms must be true or false.")
            kw["framework_atoms"] = t["framework_atoms"]
        return cls(**kw)


def bundled_examples() -> list[str]:
    """Names of the example configs that ship with kmc (``kmc run quickstart``)."""
    return sorted(x.name[:-5] for x in resources.files("kmc.examples").iterdir()
                  if x.name.endswith(".toml"))


def resolve_config(name: str | Path) -> Path | dict:
    """A config file: ``name`` itself if it is a file, else the bundled example of that name
    (``"quickstart"``), else for a framework name (``"llzo-cubic"``) the config data
    ``{"lattice": {"builtin": name}}`` (every other value from the framework's data file)."""
    p = Path(name)
    if p.is_file():
        return p
    if len(p.parts) == 1:
        bundled = resources.files("kmc.examples") / (p.name if p.suffix else f"{p.name}.toml")
        if bundled.is_file():
            return Path(str(bundled))
        if str(name) in _framework_names():
            return {"lattice": {"builtin": str(name)}}
    raise ConfigError(f"no config file at {str(name)!r}; give a path to a TOML file, a bundled "
                      f"example ({', '.join(bundled_examples())}) or a framework "
                      f"({', '.join(_framework_names())}).")


def config_file(name: str | Path) -> Path:
    """A config file path: ``name`` itself or the bundled example of that name
    (``kmc run quickstart``); a ConfigError naming the bundled examples otherwise."""
    try:
        found = resolve_config(name)
    except ConfigError:
        found = None
    if isinstance(found, Path):
        return found
    raise ConfigError(f"no config file at {str(name)!r}; give a path to a TOML file or one of the "
                      f"bundled examples: {', '.join(bundled_examples())}.")


SECTIONS = {"lattice": LatticeConfig, "occupancy": OccupancyConfig, "model": ModelConfig,
            "run": RunConfig}
TOP_LEVEL = list(SECTIONS) + ["dopants", "output"]


@dataclass(frozen=True)
class Config:
    """A whole simulation: ``[lattice]``, ``[occupancy]``, ``[model]``, ``[run]`` and, for a
    framework, ``[dopants]``.

    A config made by :meth:`from_dict` also carries ``warnings`` (plausibility warnings, e.g. a
    barrier above 3 eV) and ``defaults_used`` (physics keys the file omitted and the value
    used); they are not fields, so they change neither :meth:`to_dict` nor run keys, and
    :func:`validity_notes` puts them into the result's notes."""

    lattice: LatticeConfig = field(default_factory=lambda: LatticeConfig(
        lattice_constant_A=1.0, mobile="Li", exclusion_distance_A=0.0))
    occupancy: OccupancyConfig = field(default_factory=lambda: OccupancyConfig(vacancies=1))
    model: ModelConfig = field(default_factory=lambda: ModelConfig(attempt_frequency_THz=10.0,
                                                                   barrier_eV=0.25))
    run: RunConfig = field(default_factory=RunConfig)
    dopants: dict | None = None
    output: OutputConfig | None = None

    @classmethod
    def from_dict(cls, data: dict, base_dir: str | Path | None = None, *,
                  structure_name: str | None = None) -> "Config":
        """Validate a nested dict (as parsed from TOML); a relative ``[lattice] cif`` path is
        read from ``base_dir`` (default: the working directory); ``structure_name``: see
        :meth:`LatticeConfig.parse`."""
        data = _check_keys("top level", data, TOP_LEVEL)
        lattice = LatticeConfig.parse(data.get("lattice", {}), base_dir,
                                      structure_name=structure_name)
        kind = lattice.kind
        if kind == "teaching" and "occupancy" not in data:
            raise ConfigError("the config has no [occupancy] table; add one with vacancies = N, "
                              "ions = N or filling = 0..1.")
        occupancy = OccupancyConfig.parse(data.get("occupancy", {}), base_dir)
        if kind == "teaching" and occupancy.start_structure is not None:
            raise ConfigError("[occupancy] start_structure needs a framework or CIF lattice (a structure "
                              "whose framework it can be matched to), not a teaching lattice.")
        if kind == "teaching" and occupancy.is_default:
            raise ConfigError("[occupancy] needs exactly one of vacancies = N, ions = N or "
                              "filling = 0..1 (got none).")
        model = ModelConfig.parse(data.get("model", {}))
        if kind == "teaching":  # explicit defaults: the saved config says what was run
            model = replace(model,
                            attempt_frequency_THz=model.attempt_frequency_THz
                            if model.attempt_frequency_THz is not None else 10.0,
                            barrier_eV=model.barrier_eV if model.barrier_eV is not None else 0.25)
        dopants = None
        if "dopants" in data:
            dopants = parse_dopants(data["dopants"])
            if dopants and kind != "framework":
                raise ConfigError(f"[dopants] needs a builtin framework "
                                  f"({', '.join(_framework_names())}), not "
                                  f"{'a CIF' if kind == 'cif' else 'a teaching lattice'}; remove "
                                  f"[dopants] or change [lattice] builtin.")
            dopants = dopants or None
        run = RunConfig.parse(data.get("run", {}))
        output = OutputConfig.parse(data["output"], run.temperatures_K) if "output" in data \
            else None
        config = cls(lattice, occupancy, model, run, dopants, output)
        # not dataclass fields: they change neither to_dict() nor equality (nor run keys)
        object.__setattr__(config, "warnings", tuple(_plausibility(model, run)))
        raw_model, raw_run = data.get("model", {}), data.get("run", {})
        used = []
        if kind == "teaching":
            if "barrier_eV" not in raw_model:
                used.append(f"[model] barrier_eV = {model.barrier_eV:g} eV (teaching default)")
            if "attempt_frequency_THz" not in raw_model:
                used.append(f"[model] attempt_frequency_THz = {model.attempt_frequency_THz:g} "
                            f"THz (teaching default)")
        if isinstance(raw_run, dict) and "temperatures_K" not in raw_run:
            used.append(f"[run] temperatures_K = {list(run.temperatures_K)} K (default)")
        object.__setattr__(config, "defaults_used", tuple(used))
        return config

    @classmethod
    def from_toml(cls, text: str, base_dir: str | Path | None = None) -> "Config":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"the config is not valid TOML ({exc}); fix the syntax at that "
                              f"line.") from None
        return cls.from_dict(data, base_dir)

    @classmethod
    def from_file(cls, path: str | Path) -> "Config":
        """Read a TOML config: a path, or a bundled name as the CLI takes it (an example such
        as ``"quickstart"``, or a framework such as ``"llzo-cubic"`` with its defaults); see
        :func:`resolve_config`."""
        p = resolve_config(path)
        if isinstance(p, dict):
            return cls.from_dict(p)
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"the config {str(p)!r} is not UTF-8 text (byte {exc.start}); save "
                              f"it as a UTF-8 TOML file.") from None
        except OSError as exc:
            raise ConfigError(f"cannot read the config {str(p)!r} ({exc.strerror}); check the "
                              f"file's permissions.") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return cls.from_toml(text)   # raises the one-sentence syntax error
        if is_framework_data(data):
            raise ConfigError(f"{str(p)!r} is a framework (model) file, not a run config; run it from a "
                              f"config whose [lattice] says framework_file = \"{p}\", or look at it with "
                              f"`kmc info {p}`.")
        return cls.from_dict(data, p.parent)

    def to_dict(self) -> dict:
        """Plain nested data (JSON/TOML-able), omitting unset optional values and the execution
        setting ``run.workers`` (which never changes a result)."""
        def clean(x):
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items() if v is not None}
            if isinstance(x, tuple):
                return [clean(v) for v in x]
            return x
        d = clean(asdict(self))
        d.get("run", {}).pop("workers", None)
        return d
