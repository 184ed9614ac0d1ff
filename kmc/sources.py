"""Where the sites come from: a teaching lattice, a builtin framework or a CIF file.

:func:`build_source` turns ``[lattice]`` (plus the interaction shells and the interstitialcy
table of ``[model]``) into a :class:`Source`: the site network and everything the rate model and
the reports need from the structure (default model parameters, formula units, composition).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymatgen.core import Composition, Structure

from kmc.config import (CIF_EXCLUSION_DISTANCE_A, CIF_HOP_CUTOFF_A, CIF_SYMPREC, Config,
                        InterstitialcyConfig, LatticeConfig, auto_supercell)
from kmc.exceptions import ConfigError, StructureError
from kmc.frameworks import Framework, load_framework
from kmc.lattices import teaching_lattice
from kmc.network import SiteNetwork, _neighbour_pairs

#: attempt frequency and barrier of a teaching lattice when [model] gives none
TEACHING_ATTEMPT_THZ = 10.0
TEACHING_BARRIER_EV = 0.25


@dataclass
class Source:
    """A built site network and the structure facts around it."""

    kind: str                               # "teaching" | "framework" | "cif"
    name: str                               # lattice/framework name or CIF path
    network: SiteNetwork
    hop_cutoff_A: float
    exclusion_distance_A: float
    interaction_cutoff_A: float
    formula_units_per_cell: float           # Z of the (conventional) unit cell
    ions_per_cell: float                    # mobile ions of one undoped unit cell
    framework: Framework | None = None
    structure: Structure | None = None      # full unit cell (framework atoms), when known
    host_formula: dict = field(default_factory=dict)  # non-mobile elements per formula unit

    def formula(self, n_ions: int) -> str:
        """Formula per formula unit with ``n_ions`` mobile ions in the supercell."""
        z = self.formula_units_per_cell * self.network.n_cells
        parts = {self.network.species: n_ions / z, **self.host_formula}
        return "".join(f"{el}{_fmt(a)}" for el, a in parts.items() if a > 1e-12)

    def mobile_per_formula_unit(self, n_ions: int) -> float:
        return n_ions / (self.formula_units_per_cell * self.network.n_cells)

    def default_barrier(self, event_class: str) -> float | None:
        """E_KRA of an event class from the source's defaults (None if it has none)."""
        if self.kind == "teaching":
            return TEACHING_BARRIER_EV
        if self.kind == "framework":
            return self.framework.barrier_for(event_class)
        return None


def _fmt(x: float) -> str:
    return "" if abs(x - 1) < 1e-12 else f"{x:.4g}"


def _check_occupancies(p: Path) -> None:
    """Name the first atom site whose ``_atom_site_occupancy`` is not in [0, 1] (pymatgen would
    drop it or fail with a message pointing elsewhere)."""
    from pymatgen.io.cif import CifFile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = CifFile.from_file(str(p)).data.values()
    except Exception:  # noqa: BLE001 - unreadable files are reported by the structure reader
        return
    for block in blocks:
        occ = block.data.get("_atom_site_occupancy")
        labels = block.data.get("_atom_site_label") or []
        if not isinstance(occ, list):
            continue
        for i, raw in enumerate(occ):
            try:
                v = float(str(raw).split("(")[0])
            except ValueError:
                continue
            if not 0.0 <= v <= 1.0 + 1e-6:
                label = labels[i] if i < len(labels) else f"number {i + 1}"
                raise StructureError(f"{p.name}: atom site {label} has occupancy {v:g}, outside "
                                     f"0-1; correct _atom_site_occupancy of {label} in the CIF "
                                     f"(a fraction of the site, e.g. 0.5).")


def load_cif(path: str | Path) -> Structure:
    """Read a CIF (partial occupancies kept); any failure is a one-sentence StructureError."""
    p = Path(path)
    if not p.is_file():
        raise StructureError(f"no CIF file at {str(p)!r}; check the path.")
    _check_occupancies(p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_file(str(p))
    except Exception as exc:  # pymatgen raises many kinds for a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StructureError(f"could not read a crystal structure from {p.name} ({reason[:120]}); "
                             f"check that it is a valid CIF with cell parameters and atom "
                             f"sites.") from None
    if len(structure) == 0:
        raise StructureError(f"{p.name} holds no atom sites; give a CIF with its atom sites.")
    return structure


def _next_distance(net_frac: np.ndarray, lattice: np.ndarray, beyond: float) -> float | None:
    """Shortest site-site distance longer than ``beyond`` (up to 2 x beyond + 3 Å)."""
    pairs = _neighbour_pairs(net_frac, lattice, 2 * beyond + 3.0)
    longer = pairs.length[pairs.length > beyond + 1e-6]
    return float(longer.min()) if len(longer) else None


def check_connected(net: SiteNetwork, hop_cutoff_A: float, where: str) -> None:
    """A network without any periodic path is an error that says how far the next sites are."""
    if net.dimensionality > 0:
        return
    nxt = _next_distance(net.unit_frac, net.unit_lattice, hop_cutoff_A)
    hint = f" (the next {net.species}-{net.species} distance is {nxt:.2f} Å)" if nxt else ""
    raise StructureError(f"the {net.species} sites within the hop cutoff of {hop_cutoff_A:g} Å form "
                         f"only isolated clusters, no path through the crystal; raise "
                         f"{where}hop_cutoff_A{hint}.")


def _host_formula(structure: Structure, mobile: str) -> tuple[dict, float]:
    """Non-mobile composition per formula unit and the number of formula units per cell."""
    comp = structure.composition.get_el_amt_dict()
    host = {el: a for el, a in comp.items() if el != mobile and a > 1e-9}
    if not host:
        return {}, 1.0
    try:
        _, z = Composition(host).get_reduced_composition_and_factor()
    except Exception:
        z = 1.0
    z = float(z) if z and z > 0 else 1.0
    return {el: a / z for el, a in host.items()}, z


def build_source(lc: LatticeConfig, shells_A: list[float] = (),
                 interstitialcy: InterstitialcyConfig | None = None) -> Source:
    """Build the site network ``[lattice]`` describes (supercell included).

    ``shells_A`` are the r_max of the configured interaction tables (they set the interaction
    range when no ``interaction_cutoff_A`` is given); ``interstitialcy`` adds knock-off events.
    """
    kind = lc.kind
    shell_max = max(shells_A) if len(shells_A) else 0.0
    prefix = "[lattice] "
    if kind == "teaching":
        tl = teaching_lattice(lc.builtin, lc.lattice_constant_A or 1.0)
        supercell = lc.supercell or (8, 8, 8)
        labels = list(lc.site_labels) if lc.site_labels else ["site"] * len(tl.structure)
        if len(labels) != len(tl.structure):
            raise ConfigError(f"[lattice] site_labels needs {len(tl.structure)} labels for the "
                              f"{lc.builtin} unit cell, got {len(labels)}.")
        hop = lc.hop_cutoff_A or 1.01 * tl.nn_distance_A
        excl = lc.exclusion_distance_A or 0.0
        inter = lc.interaction_cutoff_A or shell_max
        net = SiteNetwork.from_structure(tl.structure, lc.mobile or "Li", supercell,
                                         hop_cutoff_A=hop, exclusion_distance_A=excl,
                                         interaction_cutoff_A=inter, site_labels=labels)
        src = Source(kind, lc.builtin, net, hop, excl, inter, 1.0, float(len(tl.structure)))
    elif kind == "framework":
        fw = load_framework(lc.builtin)
        hop = lc.hop_cutoff_A or fw.hop_cutoff_A
        excl = lc.exclusion_distance_A if lc.exclusion_distance_A is not None \
            else fw.exclusion_distance_A
        inter = lc.interaction_cutoff_A or max(fw.interaction_cutoff_A, shell_max,
                                               *_shells(fw.interactions_eV))
        net = SiteNetwork.from_sites(fw.structure.lattice.matrix, fw.mobile_frac,
                                     fw.mobile_labels, fw.mobile_occupancy, fw.mobile,
                                     lc.supercell or auto_supercell(fw.structure.lattice.matrix),
                                     hop, excl, inter, fw.structure)
        z = float(fw.formula_units_per_cell)
        comp = Composition(fw.formula_unit).get_el_amt_dict()
        host = {el: a for el, a in comp.items() if el != fw.mobile}
        src = Source(kind, fw.name, net, hop, excl, inter, z, fw.ions_per_cell, fw,
                     fw.structure, host)
    else:
        structure = load_cif(lc.cif)
        mobile = lc.mobile or "Li"
        hop = lc.hop_cutoff_A or CIF_HOP_CUTOFF_A
        excl = lc.exclusion_distance_A if lc.exclusion_distance_A is not None \
            else CIF_EXCLUSION_DISTANCE_A
        inter = lc.interaction_cutoff_A or shell_max
        if not any(el.symbol == mobile for el in structure.composition.elements):
            have = ", ".join(sorted({el.symbol for el in structure.composition.elements}))
            raise StructureError(f"{Path(lc.cif).name} contains no {mobile} (it has {have}); set "
                                 f"[lattice] mobile to the mobile species of this structure.")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            supercell = lc.supercell or auto_supercell(structure.lattice.matrix)
            net = SiteNetwork.from_structure(structure, mobile, supercell, hop_cutoff_A=hop,
                                             exclusion_distance_A=excl,
                                             interaction_cutoff_A=inter,
                                             symprec=lc.symprec or CIF_SYMPREC)
        host, z = _host_formula(structure, mobile)
        src = Source(kind, lc.cif, net, hop, excl, inter, z, float(net.unit_occupancy.sum()),
                     None, structure, host)
    check_connected(src.network, src.hop_cutoff_A, prefix)
    if interstitialcy is not None:
        src.network = src.network.with_interstitialcy(list(interstitialcy.interstitial),
                                                      list(interstitialcy.lattice),
                                                      interstitialcy.max_angle_deg)
    return src


def _shells(table: dict) -> list[float]:
    return [float(r) for shells in table.values() for r, _ in shells]


def source_for(config: Config) -> Source:
    """The :class:`Source` of a whole config (its interaction shells and interstitialcy)."""
    mc = config.model
    shells = _shells(mc.interactions_eV)
    return build_source(config.lattice, shells, mc.interstitialcy)
