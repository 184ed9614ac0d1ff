"""Framework data: ``src/kmc/system/structures/*.toml`` -> pymatgen Structure, mobile-ion sites and default model.

Each data file holds the space group, lattice parameters and Wyckoff orbits (framework and mobile,
with occupancies; empty interstitial orbits have occupancy 0), the network cutoffs and a default
energy model, every number with its citation.  The full structure is built with
``Structure.from_spacegroup``; the mobile sites are kept explicitly (with their orbit labels as
site classes), so empty interstitial sites survive even though pymatgen drops their species.
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

from kmc.exceptions import ConfigError, StructureError


@dataclass(frozen=True)
class Framework:
    """A framework read from its data file."""

    name: str
    description: str
    formula_unit: str
    formula_units_per_cell: int
    mobile: str
    structure: Structure                 # full unit cell (partial occupancies as in the file)
    mobile_frac: np.ndarray              # (n, 3) every mobile-ion site of the cell
    mobile_labels: list[str]             # orbit label (= site class) of each
    mobile_occupancy: np.ndarray         # (n,)
    hop_cutoff_A: float
    exclusion_distance_A: float
    interaction_cutoff_A: float
    attempt_frequency_THz: float
    site_energies_eV: dict = field(default_factory=dict)
    barriers_eV: dict = field(default_factory=dict)
    interactions_eV: dict = field(default_factory=dict)
    experiment: dict = field(default_factory=dict)
    dopant_sites: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict, repr=False)
    start_structure: str | None = None   # structure file every replica starts from (its arrangement)
    #: knock-off events every run of the model includes ([network.interstitialcy]: interstitial,
    #: lattice, max_angle_deg; see SiteNetwork.with_interstitialcy), None without
    interstitialcy: dict | None = None

    @property
    def ions_per_cell(self) -> float:
        """Mobile ions in the conventional cell (sum of the mobile-site occupancies)."""
        return float(self.mobile_occupancy.sum())

    def barrier_for(self, hop_class: str) -> float | None:
        """E_KRA of a network hop class name ``A-B@d.dd`` from the file's ``"A-B[@d.dd]"`` keys
        (labels in either order); None if the file has no entry for it."""
        m = re.fullmatch(r"(.+)-(.+)@([0-9.]+)", hop_class)
        if not m:
            return self.barriers_eV.get(hop_class)
        a, b, d = m.groups()
        for key in (f"{a}-{b}@{d}", f"{b}-{a}@{d}", f"{a}-{b}", f"{b}-{a}"):
            if key in self.barriers_eV:
                return float(self.barriers_eV[key])
        return None


def _interstitialcy(name: str, table: dict | None) -> dict | None:
    """A data file's ``[network.interstitialcy]`` as a plain dict (None if absent), checked."""
    if table is None:
        return None
    unknown = sorted(set(table) - {"interstitial", "lattice", "max_angle_deg"})
    if unknown or not table.get("interstitial") or not table.get("lattice"):
        raise StructureError(f"the framework {name!r} has a [network.interstitialcy] table that is not "
                             f"interstitial = [...], lattice = [...], max_angle_deg = number; fix the file.")
    return {"interstitial": [str(c) for c in table["interstitial"]], "lattice": [str(c) for c in table["lattice"]],
            "max_angle_deg": float(table.get("max_angle_deg", 30.0))}


@lru_cache(maxsize=None)
def _data_files() -> dict[str, str]:
    """Builtin name -> file name of every framework data file."""
    out = {}
    for entry in resources.files("kmc.system.structures").iterdir():
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text(encoding="utf-8"))
            out[data["name"]] = entry.name
    return out


def framework_file(name: str):
    """The data file of the builtin framework ``name`` (an ``importlib.resources`` file: read
    it with ``read_bytes()``; ``.name`` is the file name)."""
    files = _data_files()
    if name not in files:
        raise ConfigError(f"no framework called {name!r}; choose one of {', '.join(sorted(files))}.")
    return resources.files("kmc.system.structures") / files[name]


def computed_data(name: str) -> dict | None:
    """Everything behind a builtin model computed by ``kmc parametrize`` (its ``data.json``:
    configurations, energies, fit, NEB bands), shipped next to its data file (for a builtin
    ``[based_on] model``, that model's); None for the other builtins."""
    base = _builtin_data(name).get("based_on", {}).get("model")
    if base:
        return computed_data(base)
    f = framework_file(name)
    data = resources.files("kmc.system.structures") / (f.name.removesuffix(".toml") + ".json")
    return json.loads(data.read_text(encoding="utf-8")) if data.is_file() else None


def framework_names() -> list[str]:
    """Names accepted by ``[lattice] builtin`` besides the teaching lattices."""
    return sorted(_data_files())


def _species(site: dict) -> dict[str, float]:
    sp = site["species"]
    if isinstance(sp, dict):
        return {str(k): float(v) for k, v in sp.items()}
    return {str(sp): float(site.get("occupancy", 1.0))}


@lru_cache(maxsize=None)
def load_framework(name: str) -> Framework:
    """Load a builtin framework by name (e.g. ``"llzo-cubic"``)."""
    files = _data_files()
    if name not in files:
        raise ConfigError(f"no framework called {name!r}; choose one of {', '.join(sorted(files))}.")
    return framework_from_dict(_builtin_data(name))


def _builtin_data(name: str) -> dict:
    """The parsed data file of a builtin, with its ``[based_on]`` files merged in: a builtin may
    take its whole model from another (``model``) and its measured values from a third
    (``experiment``), naming only what differs, e.g. a start arrangement."""
    here = resources.files("kmc.system.structures")
    data = tomllib.loads((here / _data_files()[name]).read_text(encoding="utf-8"))
    based = data.get("based_on")
    if not based:
        return data
    merged = dict(_builtin_data(based["model"]))
    merged.pop("experiment", None)
    if "experiment" in based:
        merged["experiment"] = _builtin_data(based["experiment"]).get("experiment", {})
    merged.update({k: v for k, v in data.items() if k != "based_on"})
    merged["based_on"] = dict(based)
    start = data.get("occupancy", {}).get("start_structure")
    if start:
        merged["occupancy"] = {"start_structure": str(here / start)}
    return merged


def unfitted_terms(fw: "Framework", element: str | None = None) -> list[str]:
    """Terms of a computed model's fit (``[hamiltonian] undetermined``) that no sampled
    configuration determined and no computed exclusion covers, so the model holds 0 eV for them:
    the lattice terms (``element`` None) or the terms of dopant ``element``."""
    h = fw.data.get("hamiltonian") or {}
    excluded = set(h.get("computed_exclusions", [])) | set(h.get("computed_dopant_exclusions", []))
    out = []
    for term in h.get("undetermined", []):
        kind, _, name = term.partition(":")
        if name in excluded:
            continue
        if element is None and kind != "dopant" or kind == "dopant" and name.startswith(f"{element}("):
            out.append(term)
    return out


def is_framework_data(data: dict) -> bool:
    """Whether parsed TOML is a framework data file (a ``model.toml`` of ``kmc parametrize`` or a
    builtin's file: sites, cell and network at the top level) rather than a run config."""
    return isinstance(data, dict) and {"sites", "cell", "network"} <= set(data) and "lattice" not in data


def load_framework_file(path: str) -> Framework:
    """Load a framework data file by path (``[lattice] framework_file``, e.g. written by
    ``kmc parametrize``)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the framework file {str(p)!r} ({exc.strerror}); check "
                          f"[lattice] framework_file.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the framework file {str(p)!r} is not valid TOML ({exc}); regenerate it "
                          f"with `kmc parametrize`.") from None
    try:
        return framework_from_dict(data)
    except KeyError as exc:
        raise ConfigError(f"the framework file {str(p)!r} lacks the key {exc}; it needs the schema "
                          f"of src/kmc/system/structures/*.toml (regenerate it with `kmc parametrize`).") from None


def framework_from_dict(data: dict) -> Framework:
    """Build a :class:`Framework` from the parsed contents of a data file."""
    cell = data["cell"]
    a = cell["a_A"]
    lattice = Lattice.from_parameters(a, cell.get("b_A", a), cell.get("c_A", a),
                                      cell.get("alpha_deg", 90.0), cell.get("beta_deg", 90.0),
                                      cell.get("gamma_deg", 90.0))
    sites = data["sites"]
    # the space group expands each orbit; the label rides along as a site property
    species = [_species(s) for s in sites]
    # pymatgen cannot carry an empty species through from_spacegroup: use a placeholder element
    # for empty orbits and drop it again (only their positions are needed)
    placeholder = [{"X0+": 1.0} if not any(v > 0 for v in sp.values()) else sp for sp in species]
    full = Structure.from_spacegroup(
        cell["space_group"], lattice, placeholder, [s["frac"] for s in sites],
        site_properties={"label": [s["label"] for s in sites]}, tol=1e-3)
    mobile_labels = {s["label"] for s in sites if s.get("role") == "mobile"}
    occ_of = {s["label"]: _species(s).get(data["mobile_species"], 0.0) for s in sites}
    mob = [i for i, site in enumerate(full) if site.properties["label"] in mobile_labels]
    if not mob:
        raise StructureError(f"the framework {data['name']!r} lists no mobile sites; mark the "
                             f"mobile-ion orbits with role = \"mobile\".")
    frac = np.mod(full.frac_coords[mob], 1.0)
    labels = [full[i].properties["label"] for i in mob]
    occupancy = np.array([occ_of[lab] for lab in labels])
    empty = [i for i, site in enumerate(full) if "X" in {e.symbol for e in site.species.elements}]
    structure = full.copy()
    structure.remove_sites(empty)
    net = data.get("network", {})
    model = data.get("model", {})
    return Framework(
        name=data["name"], description=data.get("description", ""),
        formula_unit=data["formula_unit"],
        formula_units_per_cell=int(data["formula_units_per_cell"]),
        mobile=data["mobile_species"], structure=structure, mobile_frac=frac,
        mobile_labels=labels, mobile_occupancy=occupancy,
        hop_cutoff_A=float(net["hop_cutoff_A"]),
        exclusion_distance_A=float(net.get("exclusion_distance_A", 0.0)),
        interaction_cutoff_A=float(net.get("interaction_cutoff_A", 0.0)),
        attempt_frequency_THz=float(model.get("attempt_frequency_THz", 10.0)),
        site_energies_eV=dict(model.get("site_energies_eV", {})),
        barriers_eV=dict(model.get("barriers_eV", {})),
        interactions_eV=dict(model.get("interactions_eV", {})),
        experiment=dict(data.get("experiment", {})),
        dopant_sites=dict(data.get("dopant_sites", {})), data=data,
        start_structure=data.get("occupancy", {}).get("start_structure"),
        interstitialcy=_interstitialcy(data["name"], net.get("interstitialcy")))
