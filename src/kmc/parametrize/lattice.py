"""The lattice a Hamiltonian is fitted on: mobile sites, classes, pair and dopant orbits, configurations.

A :class:`LatticeProblem` holds the parent structure (a builtin framework, a CIF or a POSCAR) split
into the ordered host atoms and the mobile-ion sites, repeated into the supercell the energies are
computed in. Sites, site classes and hop classes come from :class:`kmc.system.network.SiteNetwork` (the
same code ``kmc run`` builds its network with); pair orbits are the (class, class, distance) orbits
of mobile-mobile site pairs within the interaction cutoff, and dopant orbits the (dopant, host
site, mobile class, distance) orbits of dopant-mobile pairs. A :class:`Configuration` is one
arrangement of mobile ions (and dopants) on those sites, turned into ASE ``Atoms`` for a calculator.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.geometry import find_mic
from ase.neighborlist import neighbor_list
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from kmc.config import CIF_EXCLUSION_DISTANCE_A, CIF_HOP_CUTOFF_A
from kmc.engine.placement import JammedError, place_hard_core
from kmc.exceptions import StructureError
from kmc.system.arrangement import read_structure, site_occupancy
from kmc.system.dopants import charge_of
from kmc.system.frameworks import framework_names, load_framework
from kmc.system.network import SiteNetwork

__all__ = ["DopantSpec", "Configuration", "LatticeProblem", "load_problem", "parse_dopant"]

ROUND_A = 2  #: orbits group distances at 0.01 Å, as the site network groups hops and shells


@dataclass(frozen=True)
class DopantSpec:
    """``element`` substituting ``host`` (an element of the structure, or a mobile-site class),
    up to ``max_per_cell`` atoms per supercell; ``charge`` defaults to the usual oxidation state."""

    element: str
    host: str
    max_per_cell: int = 2
    charge: int | None = None


def parse_dopant(text: str) -> DopantSpec:
    """``EL:HOST[:MAX[:CHARGE]]`` (e.g. ``Ga:Li:2`` or ``Ta:Zr``) -> :class:`DopantSpec`."""
    parts = text.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise StructureError(f"--dopant {text!r} is not EL:HOST[:MAX[:CHARGE]]; write e.g. Ga:Li:2 "
                             "(up to 2 Ga on Li sites per supercell).")
    try:
        mx = int(parts[2]) if len(parts) > 2 else 2
        q = int(parts[3]) if len(parts) > 3 else None
    except ValueError:
        raise StructureError(f"--dopant {text!r}: MAX and CHARGE must be integers, e.g. Ga:Li:2:3.") from None
    if mx < 1:
        raise StructureError(f"--dopant {text!r}: MAX must be at least 1.")
    return DopantSpec(parts[0], parts[1], mx, q)


@dataclass
class Configuration:
    """One arrangement: occupied mobile sites, dopants, and how it was chosen."""

    occupied: list[int]                                  #: supercell mobile-site indices
    dopants: list[tuple[str, str, int]] = field(default_factory=list)  #: (element, "host"|"mobile", index)
    kind: str = "random"                                 #: random | low-energy | class-weighted | exclusion-test:<orbit> | dopant-test:<orbit>

    def to_dict(self) -> dict[str, Any]:
        return {"occupied": [int(i) for i in self.occupied],
                "dopants": [[e, w, int(i)] for e, w, i in self.dopants], "kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Configuration":
        """The inverse of :meth:`to_dict` (a sampling plan's or data.json's entry)."""
        return cls([int(i) for i in d["occupied"]], [(e, w, int(i)) for e, w, i in d["dopants"]],
                   d["kind"])


def _read_structure(source: str):
    """A builtin framework name or a structure file -> (name, Framework or None, pymatgen Structure)."""
    if source in framework_names():
        fw = load_framework(source)
        return source, fw, fw.structure

    p = Path(source)
    if not p.is_file():
        raise StructureError(f"{source!r} is neither a builtin framework ({', '.join(framework_names())}) "
                             "nor a structure file; give a framework name, a CIF or a POSCAR.")
    return str(p), None, read_structure(p)


def _min_width(lattice: np.ndarray) -> float:
    vol = abs(float(np.linalg.det(lattice)))
    return min(vol / float(np.linalg.norm(np.cross(lattice[j], lattice[k])))
               for j, k in ((1, 2), (2, 0), (0, 1)))


@dataclass
class LatticeProblem:
    """Parent structure, supercell, sites, orbits and dopant candidates (see the module docstring)."""

    source: str
    mobile: str
    network: Any                       #: kmc.system.network.SiteNetwork of the supercell
    host_species: list[str]            #: ordered host atoms of the supercell
    host_positions: np.ndarray
    host_labels: list[str]
    unit_host_species: list[str]       #: the same for one unit cell (for the model file)
    unit_host_frac: np.ndarray
    unit_host_labels: list[str]
    formula_unit: str
    z_per_cell: float                  #: formula units per unit cell
    n_nominal: int                     #: mobile ions of the undoped supercell
    exclusion_cutoff_A: float
    dopants: list[DopantSpec] = field(default_factory=list)
    space_group: str = "P1"
    framework_name: str | None = None
    hop_cutoff_A: float = 0.0

    # ---------------------------------------------------------------- derived geometry
    def __post_init__(self) -> None:
        net = self.network
        self.pos = np.asarray(net.positions)
        self.cell = np.asarray(net.lattice)
        self.site_class = np.asarray(net.site_class)
        self.class_names = list(net.class_names)
        r = float(max(net.interactions.length.max() if len(net.interactions) else 0.0,
                      net.hops.length.max() if len(net.hops) else 0.0))
        self.cutoff = r
        dummy = Atoms("H" * len(self.pos), positions=self.pos, cell=self.cell, pbc=True)
        i, j, d = neighbor_list("ijd", dummy, r + 1e-6)
        keep = i < j
        i, j, d = i[keep], j[keep], d[keep]
        ci, cj = self.site_class[i], self.site_class[j]
        a, b = np.minimum(ci, cj), np.maximum(ci, cj)
        keys = [(int(x), int(y), round(float(z), ROUND_A)) for x, y, z in zip(a, b, d)]
        self.orbits = sorted(set(keys), key=lambda k: (k[2], k[0], k[1]))
        index = {k: n for n, k in enumerate(self.orbits)}
        self.pair_i, self.pair_j = i.astype(np.int64), j.astype(np.int64)
        self.pair_d = d
        self.pair_orbit = np.array([index[k] for k in keys], dtype=np.int64)
        hop_names = set(net.hop_class_names)
        self.orbit_is_hop = np.array([self.orbit_name(n) in hop_names for n in range(len(self.orbits))])
        self.short_orbits = [n for n, k in enumerate(self.orbits) if k[2] < self.exclusion_cutoff_A]
        self._dopant_geometry()

    def orbit_name(self, n: int) -> str:
        """``A-B@d.dd``: the name the site network gives a hop class of the same pair."""
        a, b, d = self.orbits[n]
        return f"{self.class_names[a]}-{self.class_names[b]}@{d:.2f}"

    def _dopant_geometry(self) -> None:
        """Candidate host sites of every dopant and the dopant-mobile orbits around them."""
        self.dopant_candidates: dict[str, tuple[str, np.ndarray]] = {}
        self.dopant_orbits: list[tuple[str, str, int, float]] = []
        self.dopant_pairs: dict[tuple[str, str], list[tuple[int, int]]] = {}
        if not self.dopants:
            return
        for spec in self.dopants:
            if spec.host in self.class_names or spec.host == self.mobile:
                which = "mobile"
                cand = np.flatnonzero([spec.host in (self.mobile, self.class_names[c])
                                       for c in self.site_class])
                host_pos = self.pos[cand]
                host_lab = [self.class_names[c] for c in self.site_class[cand]]
            else:
                which = "host"
                cand = np.flatnonzero([spec.host in (s, lab) for s, lab in
                                       zip(self.host_species, self.host_labels)])
                host_pos = self.host_positions[cand]
                host_lab = [self.host_labels[k] for k in cand]
            if len(cand) == 0:
                have = sorted(set(self.host_species) | set(self.class_names))
                raise StructureError(f"--dopant {spec.element}:{spec.host}: the structure has no "
                                     f"{spec.host} site; use one of {', '.join(have)}.")
            self.dopant_candidates[spec.element] = (which, cand)
            both = Atoms("H" * (len(host_pos) + len(self.pos)),
                         positions=np.vstack([host_pos, self.pos]), cell=self.cell, pbc=True)
            i, j, d = neighbor_list("ijd", both, self.cutoff + 1e-6)
            keep = (i < len(host_pos)) & (j >= len(host_pos))
            for a, b, dd in zip(i[keep], j[keep] - len(host_pos), d[keep]):
                if which == "mobile" and cand[a] == b:
                    continue
                key = (spec.element, host_lab[a], int(self.site_class[b]), round(float(dd), ROUND_A))
                if key not in self.dopant_orbits:
                    self.dopant_orbits.append(key)
                self.dopant_pairs.setdefault((spec.element, str(cand[a])), []).append(
                    (int(b), self.dopant_orbits.index(key)))

    def dopant_orbit_name(self, n: int) -> str:
        el, host, c, d = self.dopant_orbits[n]
        return f"{el}({host})-{self.class_names[c]}@{d:.2f}"

    # ---------------------------------------------------------------- configurations
    def n_mobile(self, config: Configuration) -> int:
        """Mobile ions the dopants of ``config`` leave (charge compensation)."""
        q_ion = charge_of(self.mobile)
        n = float(self.n_nominal)
        for el, which, idx in config.dopants:
            spec = next(s for s in self.dopants if s.element == el)
            host_el = self.mobile if which == "mobile" else self.host_species[idx]
            n += (charge_of(host_el) - charge_of(el, spec.charge)) / q_ion
            if which == "mobile":
                n -= 1
        if abs(n - round(n)) > 1e-9:
            raise StructureError("the dopants leave a fractional number of mobile ions; choose "
                                 "dopant counts that compensate whole ions.")
        return int(round(n))

    def atoms(self, config: Configuration):
        """ASE Atoms of ``config``: host atoms (dopants substituted), dopants on mobile sites, then
        one mobile ion per occupied site in the order of ``config.occupied``."""
        species = list(self.host_species)
        pos = [p for p in self.host_positions]
        for el, which, idx in config.dopants:
            if which == "host":
                species[idx] = el
            else:
                species.append(el)
                pos.append(self.pos[idx])
        species += [self.mobile] * len(config.occupied)
        pos += [self.pos[i] for i in config.occupied]
        return Atoms(species, positions=np.array(pos), cell=self.cell, pbc=True)

    def blocked(self, config: Configuration) -> np.ndarray:
        out = np.zeros(len(self.pos), dtype=bool)
        for _, which, idx in config.dopants:
            if which == "mobile":
                out[idx] = True
        return out

    def random_configuration(self, rng: np.random.Generator, n_dopants: dict[str, int] | None = None,
                             extra_vacancies: int = 0, forced: tuple[int, ...] | None = None,
                             kind: str = "random", attempts: int = 20, avoid: list[int] | None = None,
                             class_weights: np.ndarray | None = None,
                             placed_dopants: list[tuple[str, str, int]] | None = None) -> Configuration:
        """Random arrangement at the charge-compensated ion count.

        Pairs of the ``avoid`` orbits (default: every orbit shorter than the exclusion test cutoff)
        are never both occupied, except with the ``forced`` sites (e.g. a pair under test), which
        are occupied on purpose; ``placed_dopants`` (element, host kind, site) are placed first,
        ``n_dopants`` more of each species at random.
        ``class_weights`` (one positive number per site class) biases which classes fill first,
        so that a batch of configurations spans the class occupancies, not only the typical one.
        """
        short = np.isin(self.pair_orbit, self.short_orbits if avoid is None else list(avoid))
        weights = None if class_weights is None else np.asarray(class_weights, float)[self.site_class]
        lists: list[list[int]] = [[] for _ in range(len(self.pos))]
        for a, b in zip(self.pair_i[short], self.pair_j[short]):
            lists[a].append(int(b))
            lists[b].append(int(a))
        nbr = [np.array(x, dtype=np.int64) for x in lists]
        for _ in range(attempts):
            dop: list[tuple[str, str, int]] = list(placed_dopants or [])
            for el, k in sorted((n_dopants or {}).items()):
                which, cand = self.dopant_candidates[el]
                taken = {i for e, w, i in dop if w == which}
                free = [c for c in cand if c not in taken and not (forced and which == "mobile" and c in forced)]
                if k > len(free):
                    raise StructureError(f"{k} {el} do not fit on their {len(free)} host sites; lower MAX.")
                dop += [(el, which, int(c)) for c in rng.choice(free, size=k, replace=False)]
            cfg = Configuration([], dop, kind)
            n = self.n_mobile(cfg) - extra_vacancies
            if n < 1:
                raise StructureError("the dopants and vacancies leave no mobile ion; lower MAX.")
            fixed = self.blocked(cfg)
            if forced is not None:
                fixed[list(forced)] = True   # the pair under test is pre-placed
            try:
                extra = place_hard_core(len(self.pos), nbr, fixed, n - len(forced or ()), rng, weights)
            except JammedError:
                continue
            occ = list(np.flatnonzero(extra)) + (list(forced) if forced else [])
            cfg.occupied = sorted(int(s) for s in occ)
            return cfg
        raise StructureError(f"could not place {n} {self.mobile} on the {len(self.pos)} sites without a "
                             f"pair closer than the exclusion test cutoff ({self.exclusion_cutoff_A:g} Å) "
                             f"in {attempts} tries; lower --exclusion-cutoff or use a larger --supercell.")

    # ---------------------------------------------------------------- features
    def features(self, config: Configuration) -> dict[str, np.ndarray]:
        """Counts the Hamiltonian is linear in: ions per site class, pairs per orbit, dopant pairs
        per dopant orbit, and the composition (ions, dopants per species)."""
        occ = np.zeros(len(self.pos), dtype=bool)
        occ[config.occupied] = True
        n_class = np.bincount(self.site_class[occ], minlength=len(self.class_names)).astype(float)
        both = occ[self.pair_i] & occ[self.pair_j]
        n_pair = np.bincount(self.pair_orbit[both], minlength=len(self.orbits)).astype(float)
        n_dop = np.zeros(len(self.dopant_orbits))
        for el, which, idx in config.dopants:
            for site, k in self.dopant_pairs.get((el, str(idx)), []):
                if occ[site]:
                    n_dop[k] += 1
        comp = [float(occ.sum())] + [float(sum(1 for e, _, _ in config.dopants if e == s.element))
                                     for s in self.dopants]
        return {"class": n_class, "pair": n_pair, "dopant": n_dop, "composition": np.array(comp)}

    def configuration_from_structure(self, source: str, tolerance_A: float) -> Configuration:
        """The arrangement of the mobile ions in a known structure of this framework (e.g. an
        ordered phase from experiment), as a configuration of this lattice.

        The structure must hold the same framework atoms as the parametrization supercell, in any
        setting (:func:`kmc.system.arrangement.site_occupancy`: framework matched with pymatgen's
        StructureMatcher, lattice scaled, ions mapped to their nearest sites in fractional
        coordinates).

        Raises
        ------
        StructureError
            If the framework does not match, or an ion is farther than ``tolerance_A`` from every
            site or shares its nearest site with another ion.
        """
        name, _, structure = _read_structure(source)
        host = Structure(Lattice(self.cell), self.host_species, self.host_positions, coords_are_cartesian=True)
        occ = site_occupancy(self.pos @ np.linalg.inv(self.cell), self.cell, host, structure, self.mobile,
                             tolerance_A, label=Path(name).name)
        return Configuration([int(i) for i in np.flatnonzero(occ)], [], f"included:{Path(name).name}")

    # ---------------------------------------------------------------- mapping back
    def map_relaxed(self, config: Configuration, relaxed_positions: np.ndarray,
                    tolerance_A: float) -> dict[str, Any]:
        """Which mobile ions stayed on their sites after relaxation.

        An ion has left its site when its nearest site is another one or it moved more than
        ``tolerance_A``; two ions whose nearest site is the same have collapsed. Returns the ions
        that left and, for every occupied short pair (closer than the exclusion test cutoff), its
        orbit, the relaxed ion-ion distance and whether either ion left.

        The relaxed structure is also mapped onto the lattice as it ended: ``mapped_sites`` holds
        the nearest site of every ion (in the order of ``config.occupied``) and ``mapped`` says
        whether that is a lattice configuration (every ion within ``tolerance_A`` of its own,
        distinct site), i.e. whether the relaxed energy can be fitted as the energy of the
        arrangement the ions relaxed into (the usual cluster-expansion practice).
        """
        n_host = len(self.host_positions) + sum(1 for _, w, _ in config.dopants if w == "mobile")
        final = np.asarray(relaxed_positions)[n_host:]
        sites = np.array(config.occupied)
        disp, dist = find_mic(final - self.pos[sites], self.cell, pbc=True)
        d_all = np.linalg.norm(find_mic((final[:, None, :] - self.pos[None, :, :]).reshape(-1, 3),
                                        self.cell, pbc=True)[0], axis=1).reshape(len(final), -1)
        nearest = np.argmin(d_all, axis=1)
        left = (nearest != sites) | (dist > tolerance_A)
        _, counts = np.unique(nearest, return_counts=True)
        collapsed = bool((counts > 1).any())
        where = {int(s): k for k, s in enumerate(sites)}
        short_pairs = []
        for a, b, o, d in zip(self.pair_i, self.pair_j, self.pair_orbit, self.pair_d):
            if o in self.short_orbits and a in where and b in where:
                ka, kb = where[int(a)], where[int(b)]
                dd = float(np.linalg.norm(find_mic(final[kb] - final[ka], self.cell, pbc=True)[0]))
                short_pairs.append({"orbit": self.orbit_name(int(o)), "sites": [int(a), int(b)],
                                    "site_distance_A": round(float(d), 4), "relaxed_distance_A": round(dd, 4),
                                    "relaxed_away": bool(left[ka] or left[kb]),
                                    "displacements_A": [round(float(dist[ka]), 4), round(float(dist[kb]), 4)]})
        to_nearest = d_all[np.arange(len(final)), nearest]
        return {"left_sites": [int(s) for s in sites[left]], "max_displacement_A": float(dist.max(initial=0.0)),
                "collapsed": collapsed, "short_pairs": short_pairs,
                "mapped_sites": [int(x) for x in nearest],
                "mapped": bool(not collapsed and not (to_nearest > tolerance_A).any()),
                "max_mapped_distance_A": float(to_nearest.max(initial=0.0))}


def load_problem(source: str, mobile: str = "Li", supercell: tuple[int, int, int] | None = None,
                 hop_cutoff_A: float | None = None, interaction_cutoff_A: float | None = None,
                 exclusion_cutoff_A: float | None = None, dopants: list[DopantSpec] = (),
                 symprec: float = 0.01) -> LatticeProblem:
    """Build the :class:`LatticeProblem` of a builtin framework name, CIF or POSCAR.

    Parameters
    ----------
    source
        Builtin framework name (``kmc info`` lists them) or a CIF / POSCAR path.
    mobile
        Mobile species.
    supercell
        Repetitions of the unit cell (default: the smallest whose widths are at least twice the
        longest cutoff, so that every pair within the cutoff is one minimum-image pair).
    hop_cutoff_A, interaction_cutoff_A, exclusion_cutoff_A
        Hops join sites closer than the hop cutoff; pair terms are fitted for orbits within the
        interaction cutoff (default: the hop cutoff); pairs closer than the exclusion cutoff are
        avoided in the sampling and tested explicitly for whether they relax away.
    dopants
        Dopant species and hosts to sample.
    """
    name, fw, structure = _read_structure(source)
    elements = {el.symbol for el in structure.composition.elements}
    if fw is not None and fw.mobile != mobile:
        raise StructureError(f"the framework {name} has mobile {fw.mobile}, not {mobile}; use --mobile {fw.mobile}.")
    if mobile not in elements:
        raise StructureError(f"{Path(name).name} contains no {mobile} (it has {', '.join(sorted(elements))}); "
                             "give the mobile species with --mobile.")
    host_idx = [i for i, s in enumerate(structure)
                if not any(el.symbol == mobile for el in s.species.elements)]
    for i, s in enumerate(structure):
        mixed = any(el.symbol == mobile for el in s.species.elements) and len(s.species.elements) > 1
        if mixed or (i in host_idx and not s.is_ordered):
            raise StructureError(f"{Path(name).name} has partial occupancies on its {s.species.formula} sites "
                                 "and no ordering of them; give an ordered structure (e.g. a supercell "
                                 "with explicit atoms) in which only the mobile-ion sites are partial.")
    if not host_idx:
        raise StructureError(f"{Path(name).name} holds only {mobile}; a lattice model needs host atoms.")
    hop = float(hop_cutoff_A or (fw.hop_cutoff_A if fw else CIF_HOP_CUTOFF_A))
    inter = float(interaction_cutoff_A or hop)
    excl = float(exclusion_cutoff_A if exclusion_cutoff_A is not None else
                 (fw.exclusion_distance_A if fw else CIF_EXCLUSION_DISTANCE_A))
    L = np.array(structure.lattice.matrix)
    reach = max(hop, inter)
    if supercell is None:
        supercell = tuple(max(1, math.ceil(2 * reach / w + 1e-9)) for w in
                          [abs(np.linalg.det(L)) / np.linalg.norm(np.cross(L[j], L[k]))
                           for j, k in ((1, 2), (2, 0), (0, 1))])
    supercell = tuple(int(x) for x in supercell)
    if _min_width(L * np.array(supercell)[:, None]) <= 2 * reach:
        raise StructureError(f"the supercell {supercell} is narrower than twice the longest cutoff "
                             f"({reach:g} Å), so a pair would meet its own periodic image; use a larger "
                             "--supercell or shorter cutoffs.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fw is not None:
            net = SiteNetwork.from_sites(L, fw.mobile_frac, fw.mobile_labels, fw.mobile_occupancy, mobile,
                                         supercell, hop, 0.0, inter, structure)
            labels_of = {i: structure[i].properties.get("label", structure[i].species_string) for i in host_idx}
            z = float(fw.formula_units_per_cell)
            formula_unit = fw.formula_unit
        else:
            net = SiteNetwork.from_structure(structure, mobile, supercell, hop_cutoff_A=hop,
                                             exclusion_distance_A=0.0, interaction_cutoff_A=inter,
                                             symprec=symprec)
            sga = SpacegroupAnalyzer(structure, symprec=symprec)
            try:
                eq = sga.get_symmetry_dataset().equivalent_atoms
            except Exception:  # noqa: BLE001 - spglib fails on some disordered cells
                eq = np.arange(len(structure))
            names: dict[tuple[str, int], str] = {}
            labels_of = {}
            for i in host_idx:
                el = structure[i].species_string
                key = (el, int(eq[i]))
                if key not in names:
                    names[key] = f"{el}{1 + sum(1 for k in names if k[0] == el)}"
                labels_of[i] = names[key]

            amounts = structure.composition.get_el_amt_dict()
            m = amounts.get(mobile, 0.0)
            if abs(m - round(m)) <= 1e-3 * net.n_unit:   # occupancies printed to a few digits (below)
                amounts[mobile] = float(round(m))
            red, zz = Composition(amounts).get_reduced_composition_and_factor()
            z, formula_unit = float(zz), red.formula.replace(" ", "")
    occ_sum = float(net.unit_occupancy.sum()) * net.n_cells
    # occupancies printed to a few digits (CIF: 0.42206, 0.333) may miss a whole sum by their rounding
    if abs(occ_sum - round(occ_sum)) > 1e-3 * net.n_sites:
        raise StructureError(f"the {mobile} occupancies give {occ_sum:g} ions in the supercell {supercell}, not "
                             "a whole number; choose a --supercell that holds whole ions.")
    cells = np.array(list(product(*[range(n) for n in supercell])), float)
    hf = np.mod(structure.frac_coords[host_idx], 1.0)
    host_pos = ((cells[:, None, :] + hf[None, :, :]).reshape(-1, 3)) @ L
    sp = [structure[i].species_string for i in host_idx]
    lab = [labels_of[i] for i in host_idx]
    try:
        sg = SpacegroupAnalyzer(structure, symprec=symprec).get_space_group_symbol()
    except Exception:  # noqa: BLE001
        sg = "unknown"
    return LatticeProblem(
        source=name, mobile=mobile, network=net, host_species=sp * len(cells), host_positions=host_pos,
        host_labels=lab * len(cells), unit_host_species=sp, unit_host_frac=hf, unit_host_labels=lab,
        formula_unit=formula_unit, z_per_cell=z, n_nominal=int(round(occ_sum)), exclusion_cutoff_A=excl,
        dopants=list(dopants), space_group=sg, framework_name=fw.name if fw else None, hop_cutoff_A=hop)
