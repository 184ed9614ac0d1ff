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
from pymatgen.io.cif import CifFile, CifParser

from kmc.config import (
    CIF_EXCLUSION_DISTANCE_A,
    CIF_HOP_CUTOFF_A,
    CIF_SYMPREC,
    Config,
    InterstitialcyConfig,
    LatticeConfig,
    auto_supercell,
)
from kmc.exceptions import ConfigError, StructureError, StructureWarning
from kmc.system.frameworks import Framework, load_framework, load_framework_file, unfitted_terms
from kmc.system.lattices import teaching_lattice
from kmc.system.network import (
    CLOSE_SITE_A,
    SiteNetwork,
    close_site_pairs,
    neighbour_pairs,
)

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
    #: immobile species on mobile-ion sites: element -> {site class: fraction of its sites}
    blockers: dict = field(default_factory=dict)
    #: the framework data file, when it was given by path ([lattice] framework_file)
    path: str | None = None

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
    pairs = neighbour_pairs(net_frac, lattice, 2 * beyond + 3.0)
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


def formula_units(structure: Structure) -> int:
    """Formula units per cell (Z) from the reduced composition of the ordered part of the cell:
    the greatest common divisor of the amounts of the elements whose every site is fully
    occupied by them alone (Li3N: Li3 N1, Z = 1; a c-LLZO cell with partly occupied Li sites:
    La24 Zr16 O96, Z = 8); 1 if no element is ordered.  (pymatgen's reduced formula is no use
    here: it writes a lone N as N2, which made Li3N half a formula unit per cell.)"""
    amounts = structure.composition.get_el_amt_dict()
    ordered = {el: True for el in amounts}
    for site in structure:
        amt = site.species.get_el_amt_dict()
        for el, x in amt.items():
            if len(amt) > 1 or abs(x - 1.0) > 1e-6:
                ordered[el] = False
    use = [int(round(a)) for el, a in amounts.items() if ordered[el] and a > 0.5]
    return int(np.gcd.reduce(use)) if use else 1


def _host_formula(structure: Structure, mobile: str) -> tuple[dict, float]:
    """Non-mobile composition per formula unit and the number of formula units per cell."""
    comp = structure.composition.get_el_amt_dict()
    host = {el: a for el, a in comp.items() if el != mobile and a > 1e-9}
    z = float(formula_units(structure))
    return {el: a / z for el, a in host.items()}, z


def _cif_float(text: str) -> float:
    """A CIF number, with its standard uncertainty in brackets dropped: ``0.125(3)``."""
    return float(str(text).split("(")[0])


def cif_mobile_labels(path: str | Path, structure: Structure, mobile: str) -> Structure:
    """``structure`` (read from the CIF ``path``) with the label of the mobile species' own row
    on every mixed site: pymatgen merges the rows of a site shared by Li and Al into one site
    and keeps the label of one of them, possibly Al's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blocks = list(CifParser(str(path)).as_dict().values())
    rows = blocks[0] if blocks else {}
    keys = ("_atom_site_label", "_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z")
    if not all(k in rows for k in keys):
        return structure
    symbols = rows.get("_atom_site_type_symbol", rows["_atom_site_label"])
    try:
        xyz = {lab: tuple(np.round(np.mod([_cif_float(x), _cif_float(y), _cif_float(z)], 1), 4))
               for lab, x, y, z in zip(*(rows[k] for k in keys))}
    except ValueError:
        return structure
    is_mobile = {lab: "".join(c for c in str(sym) if c.isalpha()) == mobile
                 for lab, sym in zip(rows["_atom_site_label"], symbols)}
    out = structure.copy()
    for site in out:
        lab = getattr(site, "label", None)
        if lab in is_mobile and not is_mobile[lab] and mobile in site.species.get_el_amt_dict():
            same = [m for m, ok in is_mobile.items() if ok and xyz[m] == xyz[lab]]
            if len(same) == 1:
                site.label = same[0]
    return out


def site_blockers(network: SiteNetwork, structure: Structure) -> dict[str, dict[str, float]]:
    """Immobile species sharing the mobile-ion sites, as ``{element: {site class: fraction}}``:
    on a Li/Al site (Li 0.8, Al 0.2) Al takes 20 % of the sites of that class.  ``network``
    must have been built from ``structure`` (its unit sites are the structure's sites holding
    the mobile species, in order)."""
    mobile = network.species
    found: dict[str, dict[str, list[float]]] = {}
    u = 0
    for site in structure:
        amt = site.species.get_el_amt_dict()
        if mobile not in amt:
            continue
        label = network.class_names[network.unit_class[u]]
        u += 1
        for el, x in amt.items():
            if el != mobile and x > 1e-9:
                found.setdefault(el, {}).setdefault(label, []).append(x)
    return {el: {label: float(np.mean(x)) for label, x in per.items()}
            for el, per in found.items()}


def warn_partial_framework(structure: Structure, mobile: str, name: str) -> None:
    """Warn (one sentence) when framework sites (no mobile species on them) are partly occupied:
    the site network treats the framework as complete, so their vacancies are not modelled."""
    partial: dict[str, float] = {}
    for site in structure:
        if any(el.symbol == mobile for el in site.species.elements):
            continue
        occ = float(site.species.num_atoms)
        if occ < 1.0 - 1e-6:
            label = site.properties.get("label") or getattr(site, "label", None) or site.species_string
            partial.setdefault(str(label), occ)
    if not partial:
        return
    listed = ", ".join(f"{k} ({v:.3g})" for k, v in list(partial.items())[:4])
    more = f" and {len(partial) - 4} more" if len(partial) > 4 else ""
    warnings.warn(f"{name} has partly occupied framework sites ({listed}{more}); the framework is "
                  f"taken as complete there (only the {mobile} sites are treated as partial), so "
                  f"those vacancies neither block nor release {mobile}; give an ordered supercell "
                  f"with them as explicit vacancies if they matter.", StructureWarning, stacklevel=3)


def warn_unfitted(fw, element: str | None = None, stacklevel: int = 3) -> None:
    """Warn (one sentence) when a computed model's fit left terms a run uses undetermined and no
    computed exclusion covers them: the model holds 0 eV for them, a guess nobody computed."""
    gaps = unfitted_terms(fw, element)
    if gaps:
        what = f"{element} terms" if element else "terms"
        warnings.warn(f"{fw.name}'s fit left the {what} {', '.join(gaps)} undetermined (no sampled "
                      f"configuration fixed them), so they are 0 eV here; rerun `kmc parametrize` with more "
                      f"configurations or --join another run before trusting what depends on them.",
                      StructureWarning, stacklevel=stacklevel)


def warn_close_sites(net: SiteNetwork, exclusion_distance_A: float, where: str) -> None:
    """Warn (one sentence) about mobile sites closer than :data:`CLOSE_SITE_A` that may both be
    occupied: two ions would sit on top of each other and hop across a fraction of an
    ångström, typically a split or disordered site in a CIF."""
    pairs = close_site_pairs(net, exclusion_distance_A)
    if not pairs:
        return
    listed = ", ".join(f"{a}-{b} at {d:.2f} Å ({n} pairs per cell)" for a, b, d, n in pairs[:4])
    more = f" and {len(pairs) - 4} more" if len(pairs) > 4 else ""
    warnings.warn(f"{net.species} sites closer than {CLOSE_SITE_A:g} Å can both be occupied "
                  f"({listed}{more}), so two ions may overlap and hop across them at an "
                  f"unphysical rate; set {where}exclusion_distance_A to at least "
                  f"{pairs[-1][2] + 0.01:.2f} Å if they are alternative positions of one ion.",
                  StructureWarning, stacklevel=3)


def build_source(lc: LatticeConfig, shells_A: list[float] = (),
                 interstitialcy: InterstitialcyConfig | None = None,
                 structure: Structure | None = None) -> Source:
    """Build the site network ``[lattice]`` describes (supercell included).

    ``shells_A`` are the r_max of the configured interaction tables (they set the interaction
    range when no ``interaction_cutoff_A`` is given); ``interstitialcy`` adds knock-off events;
    ``structure`` replaces the file ``lc.cif`` names (a structure given in memory, see
    :meth:`kmc.api.System.from_structure`).

    Site classes of a CIF or structure are its site labels where they name the symmetry orbits
    (else the orbits); an immobile species sharing a mobile-ion site becomes a blocker on that
    fraction of the class's sites (``Source.blockers``); mobile sites closer than
    :data:`~kmc.system.network.CLOSE_SITE_A` with no exclusion between them raise a
    :class:`~kmc.exceptions.StructureWarning`.
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
        fw = load_framework(lc.builtin) if lc.framework_file is None else \
            load_framework_file(lc.framework_file)
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
                     fw.structure, host, path=lc.framework_file)
        warn_unfitted(fw)
    else:
        mobile = lc.mobile or "Li"
        name = Path(lc.cif).name
        if structure is None:
            structure = load_cif(lc.cif)
        if not any(el.symbol == mobile for el in structure.composition.elements):
            have = ", ".join(sorted({el.symbol for el in structure.composition.elements}))
            raise StructureError(f"{name} contains no {mobile} (it has {have}); set "
                                 f"[lattice] mobile to the mobile species of this structure.")
        if Path(lc.cif).is_file():
            structure = cif_mobile_labels(lc.cif, structure, mobile)
        hop = lc.hop_cutoff_A or CIF_HOP_CUTOFF_A
        excl = lc.exclusion_distance_A if lc.exclusion_distance_A is not None \
            else CIF_EXCLUSION_DISTANCE_A
        inter = lc.interaction_cutoff_A or shell_max
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            supercell = lc.supercell or auto_supercell(structure.lattice.matrix)
            net = SiteNetwork.from_structure(structure, mobile, supercell, hop_cutoff_A=hop,
                                             exclusion_distance_A=excl,
                                             interaction_cutoff_A=inter,
                                             symprec=lc.symprec or CIF_SYMPREC,
                                             use_site_labels=True)
        warn_partial_framework(structure, mobile, name)
        host, z = _host_formula(structure, mobile)
        ions = float(net.unit_occupancy.sum())
        src = Source(kind, lc.cif, net, hop, excl, inter, z, ions, None, structure, host,
                     site_blockers(net, structure))
    if kind != "teaching":
        warn_close_sites(src.network, src.exclusion_distance_A, prefix)
    check_connected(src.network, src.hop_cutoff_A, prefix)
    if interstitialcy is None and src.framework is not None and src.framework.interstitialcy:
        # the model's own concerted events (a computed model's [network.interstitialcy])
        interstitialcy = InterstitialcyConfig.parse(dict(src.framework.interstitialcy))
    if interstitialcy is not None:
        src.network = src.network.with_interstitialcy(list(interstitialcy.interstitial),
                                                      list(interstitialcy.lattice),
                                                      interstitialcy.max_angle_deg)
    return src


def _shells(table: dict) -> list[float]:
    return [float(r) for shells in table.values() for r, _ in shells]


def source_for(config: Config, structure: Structure | None = None) -> Source:
    """The :class:`Source` of a whole config (its interaction shells and interstitialcy);
    ``structure`` stands in for the CIF file (see :func:`build_source`)."""
    mc = config.model
    shells = _shells(mc.interactions_eV)
    return build_source(config.lattice, shells, mc.interstitialcy, structure)
