"""Aliovalent dopants: charge compensation of the mobile-ion count and random placements.

A dopant ``M`` of charge ``q_M`` on a host site of charge ``q_H`` changes the mobile-ion count by
``(q_H - q_M) / q_ion`` per dopant, and a dopant on a mobile-ion site also takes that site (it
becomes an immobile blocker).  This reproduces the usual garnet formulas:
Li(7-3x)Ga(x)La3Zr2O12 (Ga3+ on Li+: -1 site, -2 charge), Li(7-x)La3Zr(2-x)Ta(x)O12 (Ta5+ on Zr4+),
Li(7-2x)La3Zr(2-x)Te(x)O12 (Te6+ on Zr4+), +1 Li per Ca2+ on La3+, and -1 Li per Cl- on S2- in LGPS.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Composition, Element

from kmc.exceptions import ConfigError
from kmc.system.frameworks import Framework

# Charges of the ions the frameworks and the usual dopants take (standard oxidation states);
# anything else needs an explicit `charge` in the config.
CHARGES = {
    "Li": 1, "Na": 1, "K": 1, "Rb": 1, "Ag": 1, "Mg": 2, "Ca": 2, "Sr": 2, "Ba": 2, "Zn": 2,
    "Al": 3, "Ga": 3, "In": 3, "Y": 3, "La": 3, "Sc": 3, "Zr": 4, "Hf": 4, "Ti": 4, "Ge": 4,
    "Si": 4, "Sn": 4, "Ta": 5, "Nb": 5, "P": 5, "Sb": 5, "W": 6, "Mo": 6, "Te": 6,
    "O": -2, "S": -2, "Se": -2, "F": -1, "Cl": -1, "Br": -1, "I": -1, "N": -3,
}


@dataclass(frozen=True)
class Dopant:
    """``per_formula_unit`` atoms of ``element`` on the host sites ``site`` (an element of the
    framework, e.g. "Li", or one orbit label, e.g. "Li1")."""

    element: str
    site: str
    per_formula_unit: float
    charge: int | None = None


def charge_of(element: str, given: int | None = None) -> int:
    if given is not None:
        return int(given)
    if element in CHARGES:
        return CHARGES[element]
    try:
        states = Element(element).common_oxidation_states
    except ValueError:
        raise ConfigError(f"{element!r} is not a chemical element; write a symbol such as "
                          f"\"Ga\".") from None
    if len(states) == 1:
        return int(states[0])
    raise ConfigError(f"the charge of {element} is ambiguous ({states}); give it explicitly, "
                      f"e.g. {element} = {{ site = ..., per_formula_unit = ..., charge = "
                      f"{states[-1]} }}.")


@dataclass(frozen=True)
class Placement:
    """The atoms of one dopant in the supercell: ``counts`` per host orbit label, and whether
    those are mobile-ion sites (the dopant then blocks them)."""

    element: str
    counts: dict[str, int]
    on_mobile_sites: bool


@dataclass(frozen=True)
class DopedCell:
    """What a set of dopants does to one supercell."""

    n_ions: int                       # mobile ions after compensation
    blocked_labels: dict[str, int]    # dopants on mobile-site orbits: label -> count (blockers)
    framework_dopants: dict[str, int]  # dopants on framework sites: element -> count
    formula: str                      # per formula unit, e.g. "Li6.25Ga0.25La3Zr2O12"
    mobile_per_formula_unit: float
    placements: tuple[Placement, ...] = ()  # one per dopant with a non-zero count, in order


def _host_labels(fw: Framework, site: str) -> list[str]:
    labels = {s["label"]: s for s in fw.data["sites"]}
    if site in labels:
        return [site]
    if site in fw.dopant_sites:
        return list(fw.dopant_sites[site])
    hosts = sorted(set(fw.dopant_sites) | set(labels))
    raise ConfigError(f"{fw.name} has no site {site!r} for a dopant; use one of {', '.join(hosts)}.")


def _host_element(fw: Framework, label: str) -> str:
    site = next(s for s in fw.data["sites"] if s["label"] == label)
    sp = site["species"]
    if isinstance(sp, dict):
        return max(sp, key=sp.get)
    return sp


def apply_dopants(fw: Framework, dopants: list[Dopant], n_cells: int,
                  n_mobile: int | None = None) -> DopedCell:
    """Mobile-ion count, blockers and formula of ``n_cells`` conventional cells with ``dopants``.

    ``n_mobile`` (optional) replaces the charge-compensated mobile-ion count (an explicit
    ``[occupancy]``); the formula then reports that count.

    Raises
    ------
    ConfigError
        For an unknown host site, a content that does not fit on its sites, or one that would
        need a negative number of mobile ions.
    """
    n_mobile_given = n_mobile
    z = fw.formula_units_per_cell * n_cells
    q_ion = CHARGES.get(fw.mobile, 1)
    comp = Composition(fw.formula_unit).get_el_amt_dict()
    n_mobile = comp[fw.mobile] * z
    blocked: dict[str, int] = {}
    framework: dict[str, int] = {}
    mobile_labels = set(fw.mobile_labels)
    dopant_amount: dict[str, float] = {}
    placements: list[Placement] = []
    for d in dopants:
        if not (np.isfinite(d.per_formula_unit) and d.per_formula_unit >= 0):
            raise ConfigError(f"the content of {d.element} must be a non-negative number, got "
                              f"{d.per_formula_unit!r}.")
        # a supercell holds whole atoms: the content is rounded and the realised formula reported
        count = int(round(d.per_formula_unit * z))
        if count == 0:
            if d.per_formula_unit > 0:
                raise ConfigError(
                    f"{d.per_formula_unit} {d.element} per formula unit is less than half an atom "
                    f"in this supercell ({z} formula units); use a larger supercell.")
            continue
        labels = _host_labels(fw, d.site)
        host = _host_element(fw, labels[0])
        q_host, q_dop = charge_of(host), charge_of(d.element, d.charge)
        n_mobile += count * (q_host - q_dop) / q_ion
        if labels[0] in mobile_labels:
            n_mobile -= count          # the dopant takes the mobile ion's site
            # spread over the listed orbits in proportion to their size
            sizes = np.array([fw.mobile_labels.count(lab) for lab in labels], float) * n_cells
            share = np.floor(count * sizes / sizes.sum()).astype(int)
            share[: count - share.sum()] += 1
            for lab, k in zip(labels, share):
                if k + blocked.get(lab, 0) > sizes[labels.index(lab)]:
                    raise ConfigError(f"{count} {d.element} do not fit on the {lab} sites; lower "
                                      f"its content.")
                blocked[lab] = blocked.get(lab, 0) + int(k)
            placements.append(Placement(d.element, {lab: int(k) for lab, k in zip(labels, share)
                                                    if k}, True))
        else:
            host_count = comp.get(host, 0) * z
            if count > host_count:
                raise ConfigError(f"{d.per_formula_unit} {d.element} per formula unit exceeds the "
                                  f"{comp.get(host, 0):g} {host} available; lower its content.")
            framework[d.element] = framework.get(d.element, 0) + count
            comp[host] = comp.get(host, 0) - count / z
            sizes = np.array([_orbit_size(fw, lab) for lab in labels], float) * n_cells
            share = np.floor(count * sizes / sizes.sum()).astype(int)
            share[: count - share.sum()] += 1
            placements.append(Placement(d.element, {lab: int(k) for lab, k in zip(labels, share)
                                                    if k}, False))
        dopant_amount[(host, d.element)] = dopant_amount.get((host, d.element), 0.0) + count / z
    if n_mobile_given is None and abs(n_mobile - round(n_mobile)) > 1e-6:
        raise ConfigError("the dopant contents leave a fractional number of mobile ions in the "
                          "supercell; enlarge the supercell or adjust the contents.")
    n_mobile = int(round(n_mobile)) if n_mobile_given is None else int(n_mobile_given)
    if n_mobile <= 0:
        raise ConfigError(f"these dopant contents would need {n_mobile} {fw.mobile} in the "
                          f"supercell; lower the dopant contents.")
    comp[fw.mobile] = n_mobile / z
    parts = []  # each dopant right after the element it replaces: Li6.25Ga0.25La3Zr2O12
    for el, amt in comp.items():
        parts.append((el, amt))
        parts += [(dop, a) for (host, dop), a in dopant_amount.items() if host == el]
    formula = "".join(f"{el}{_fmt(amt)}" for el, amt in parts if amt > 1e-12)
    return DopedCell(n_mobile, blocked, framework, formula, n_mobile / z, tuple(placements))


def _orbit_size(fw: Framework, label: str) -> int:
    """Sites of the orbit ``label`` in the conventional cell (framework orbits included)."""
    return sum(1 for site in fw.structure if site.properties.get("label") == label)


def _fmt(x: float) -> str:
    return "" if abs(x - 1) < 1e-12 else f"{x:.4g}"


def place_blockers(site_labels: np.ndarray, blocked_labels: dict[str, int],
                   rng: np.random.Generator) -> np.ndarray:
    """Random blocker sites: ``count`` sites chosen uniformly within each labelled orbit."""
    blocked = np.zeros(len(site_labels), dtype=bool)
    for label, count in blocked_labels.items():
        candidates = np.flatnonzero(site_labels == label)
        blocked[rng.choice(candidates, size=count, replace=False)] = True
    return blocked
