"""The system of a config: site network, rate model, ion count and dopant plan
(:func:`build_system`), with the seeding of dopant placements (:func:`disorder_seed`).

Dopants are placed afresh in every replica from a stream derived from the replica's seed, so
replicas sample different dopant arrangements and the same seed always gives the same one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kmc.config import Config
from kmc.engine.model import RateModel, shell_energies
from kmc.exceptions import ConfigError, StructureWarning
from kmc.runs.sources import TEACHING_ATTEMPT_THZ, TEACHING_BARRIER_EV, source_for, warn_unfitted
from kmc.system.arrangement import site_occupancy
from kmc.system.dopants import Dopant, apply_dopants
from kmc.system.network import SiteNetwork

if TYPE_CHECKING:  # annotations only
    from pymatgen.core import Structure

    from kmc.runs.sources import Source


#: spawn-key entry of the stream that places dopants (outside the 0, 1 of Simulation's children)
DISORDER_KEY = 0x444F50  # "DOP"


def disorder_seed(seed: np.random.SeedSequence | int) -> np.random.SeedSequence:
    """The replica's independent stream for dopant placements, derived without spawning (so the
    replica's own placement and engine streams are unchanged)."""
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, DISORDER_KEY))


@dataclass
class DopantSites:
    """Where the atoms of one dopant go in each replica: ``counts`` per host label, drawn from
    ``candidates`` (supercell mobile-site indices if ``on_mobile_sites``, else indices into
    :attr:`System.host_positions`), and the optional energy shift of nearby mobile sites: a flat
    ``energy_shift_eV`` within ``shift_radius_A``, or the model's computed ``shells``
    (``[[r_max_A, J_eV], ...]``, see :func:`dopant_field`); and the
    model's computed ``exclusion_radius_A``, within which no mobile ion stays next to it (those
    sites are blocked)."""

    element: str
    on_mobile_sites: bool
    counts: dict[str, int]
    candidates: dict[str, np.ndarray]
    energy_shift_eV: float | None = None
    shift_radius_A: float | None = None
    shells: list | None = None
    exclusion_radius_A: float | None = None


@dataclass
class System:
    """What a config builds before any run: the network, the model, the ion count, and the
    dopants placed afresh in every replica (from the replica's seed, see :meth:`disorder`)."""

    network: SiteNetwork
    model: RateModel
    n_ions: int
    dopants: list[DopantSites] = field(default_factory=list)
    host_positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    formula: str | None = None
    mobile_per_formula_unit: float | None = None
    source: "object | None" = None          # kmc.runs.sources.Source
    initial_occupancy: np.ndarray | None = None  # [occupancy] start_structure: ions per site (bool)
    _percolation_clean: dict | None = field(default=None, repr=False)

    @property
    def blocked_counts(self) -> dict[str, int]:
        """Blockers (dopants on mobile-ion sites) per site class in every replica."""
        out: dict[str, int] = {}
        for d in self.dopants:
            if d.on_mobile_sites:
                for lab, k in d.counts.items():
                    out[lab] = out.get(lab, 0) + k
        return out

    def disorder(self, seed: np.random.SeedSequence | int) -> tuple[np.ndarray, np.ndarray | None]:
        """Blocked sites (held by a dopant or excluded next to one) and per-site energy offsets
        (None without shifts) of one replica, drawn from :func:`disorder_seed` of its seed: the
        same seed gives the same placement."""
        _, blocked, offset = self._draw(seed, True)
        return blocked, offset

    def held_sites(self, seed: np.random.SeedSequence | int) -> np.ndarray:
        """The mobile sites the dopants of one replica hold (of :meth:`disorder`'s blocked sites,
        those with an atom on them: what a picture of the replica draws)."""
        return self._draw(seed, False)[0]

    def _draw(self, seed, energies: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        net = self.network
        held = np.zeros(net.n_sites, dtype=bool)
        if not self.dopants:
            return held, held, None
        rng = np.random.default_rng(disorder_seed(seed))
        taken = np.zeros(len(self.host_positions), dtype=bool)
        offset = None
        excluded = []
        for d in self.dopants:
            chosen = []
            for lab, k in d.counts.items():
                cand = d.candidates[lab]
                cand = cand[~(held if d.on_mobile_sites else taken)[cand]]
                pick = rng.choice(cand, size=k, replace=False)
                (held if d.on_mobile_sites else taken)[pick] = True
                chosen.append(pick)
            if not energies:
                continue
            idx = np.concatenate(chosen)
            pos = net.positions[idx] if d.on_mobile_sites else self.host_positions[idx]
            if d.exclusion_radius_A:
                excluded.append((pos, d.exclusion_radius_A))
            if d.energy_shift_eV:
                near = _within(net, pos, d.shift_radius_A)
                offset = np.zeros(net.n_sites) if offset is None else offset
                offset += d.energy_shift_eV * near
            elif d.shells:
                offset = np.zeros(net.n_sites) if offset is None else offset
                offset += dopant_field(net, pos, d.shells)
        blocked = held.copy()
        for pos, radius in excluded:   # after every placement, which they do not change
            blocked |= _within(net, pos, radius) > 0
        return held, blocked, offset

    def percolation(self, blocked: np.ndarray) -> dict:
        """Fraction of the free mobile sites that belong to a spanning cluster (periodic
        dimensionality >= 1) and the largest cluster dimensionality, with these blockers."""
        if not blocked.any() and self._percolation_clean is not None:
            return dict(self._percolation_clean)
        labels, dims = self.network.components(blocked)
        free = ~blocked
        dim_site = dims[labels]
        out = {"spanning_fraction": float(np.mean(dim_site[free] >= 1)) if free.any() else 0.0,
               "dimensionality": int(dim_site[free].max()) if free.any() else 0,
               "blocked_sites": int(blocked.sum())}
        if not blocked.any():
            self._percolation_clean = dict(out)
        return out


def _distances(net: SiteNetwork, p: np.ndarray) -> np.ndarray:
    """Distance (Å, minimum image in the supercell) from the point ``p`` to every site."""
    f = (net.positions - p) @ np.linalg.inv(net.lattice)
    f -= np.round(f)
    return np.linalg.norm(f @ net.lattice, axis=1)


def _within(net: SiteNetwork, points: np.ndarray, radius: float) -> np.ndarray:
    """Number of ``points`` within ``radius`` (minimum image in the supercell) of every site."""
    count = np.zeros(net.n_sites)
    for p in points:
        d = _distances(net, p)
        count += (d <= radius + 1e-9) & (d > 1e-6)
    return count


def dopant_field(net: SiteNetwork, points: np.ndarray, shells: list) -> np.ndarray:
    """Energy every mobile site takes from dopants at ``points`` (Cartesian, Å) through their
    computed terms ``[[r_max_A, J_eV], ...]`` (J for distances in (previous r_max, r_max], like the
    mobile-mobile shells; distances by minimum image in the supercell, rounded to 0.01 Å as the
    fitted orbits are; a dopant's own site is left out)."""
    out = np.zeros(net.n_sites)
    table = [tuple(x) for x in shells]
    for p in points:
        d = np.round(_distances(net, p), 2)
        out += np.where(d > 1e-6, shell_energies(d, table), 0.0)
    return out


def _per_class(where: str, values: dict, names: list[str], default: float,
               fallback=None) -> np.ndarray:
    """One value per class: the table entry, else ``fallback(name)`` (the source's default),
    else the table's ``default`` key, else ``default``."""
    unknown = [k for k in values if k not in names and k != "default"]
    if unknown:
        raise ConfigError(f"{where} names {unknown[0]!r}, which is not a class of this network; "
                          f"use one of {', '.join(names)}.")
    out = []
    for n in names:
        v = values.get(n)
        if v is None and fallback is not None:
            v = fallback(n)
        if v is None:
            v = values.get("default", default)
        out.append(default if v is None else v)
    return np.array(out, dtype=float)


def barrier_values(config: Config, src) -> np.ndarray:
    """E_KRA per event class (NaN where neither [model] nor the source gives one): a number
    overrides all; a table the named classes; the rest come from the source's defaults (0.25 eV
    on a teaching lattice, the framework's data file, nothing for a CIF)."""
    b = config.model.barrier_eV
    names = src.network.event_class_names
    if isinstance(b, (int, float)):
        return np.full(len(names), float(b))
    if src.kind == "teaching":
        return _per_class("[model.barrier_eV]", b or {}, names, TEACHING_BARRIER_EV)
    return _per_class("[model.barrier_eV]", b or {}, names, np.nan, src.default_barrier)


def _barriers(config: Config, src) -> np.ndarray:
    names = src.network.event_class_names
    vals = barrier_values(config, src)
    missing = [n for n, v in zip(names, vals) if not np.isfinite(v)]
    if missing:
        if src.kind == "cif":
            raise ConfigError(f"a CIF brings no barriers and {missing[0]!r} has none; set [model] "
                              f"barrier_eV = 0.3 (all classes) or give every class in "
                              f"[model.barrier_eV] (`kmc info` lists them).")
        raise ConfigError(f"no barrier for the event class {missing[0]!r} (the {src.name} data "
                          f"file has none); add \"{missing[0]}\" = E_KRA in eV to "
                          f"[model.barrier_eV].")
    return vals


def build_model(config: Config, src) -> RateModel:
    """The rate model of ``config`` on ``src.network``: [model] values over the source's
    defaults."""
    mc, net, fw = config.model, src.network, src.framework
    nu = mc.attempt_frequency_THz
    if nu is None:
        nu = fw.attempt_frequency_THz if fw is not None else TEACHING_ATTEMPT_THZ
    site_e = dict(fw.site_energies_eV) if fw is not None else {}
    unknown = [k for k in mc.site_energies_eV if k not in net.class_names and k != "default"]
    if unknown:
        raise ConfigError(f"[model.site_energies_eV] names {unknown[0]!r}, which is not a class of "
                          f"this network; use one of {', '.join(net.class_names)}.")
    site_e = {k: v for k, v in site_e.items() if k in net.class_names}
    site_e.update(mc.site_energies_eV)
    inter = dict(fw.interactions_eV) if fw is not None else {}
    inter.update(mc.interactions_eV)
    return RateModel(
        net, attempt_frequency_Hz=nu * 1e12, barrier_eV=_barriers(config, src),
        site_energy_eV=_per_class("[model.site_energies_eV]", site_e, net.class_names, 0.0),
        mobile_mobile=[tuple(x) for x in inter.get("mobile_mobile", [])],
        mobile_blocker=[tuple(x) for x in inter.get("mobile_blocker", [])],
        field_V_per_A=mc.field_V_per_A, charge_e=mc.charge_e,
    )


def _dopant_list(config: Config) -> list:
    return [Dopant(el, d["site"], d["per_formula_unit"], d.get("charge"))
            for el, d in (config.dopants or {}).items()]


def _framework_dopants(config: Config, src):
    """Doped-cell bookkeeping and the per-replica placement plan of ``[dopants]``."""
    fw, net = src.framework, src.network
    specs = config.dopants or {}
    cell = apply_dopants(fw, _dopant_list(config), net.n_cells)
    names = np.array(net.class_names)[net.site_class]
    host_labels = sorted({lab for p in cell.placements if not p.on_mobile_sites
                          for lab in p.counts})
    host_pos, host_lab = _host_sites(src, host_labels)
    plan = []
    for p in cell.placements:
        spec = specs[p.element]
        if p.on_mobile_sites:
            cand = {lab: np.flatnonzero(names == lab) for lab in p.counts}
        else:
            cand = {lab: np.flatnonzero(host_lab == lab) for lab in p.counts}
        shift, radius = spec.get("energy_shift_eV"), spec.get("shift_radius_A")
        found = _computed_dopant_term(fw, p.element, spec["site"], set(p.counts))
        term = found if shift is None else None   # an explicit shift replaces the model's energy terms
        shells = None
        if term is not None and term.get("shells"):
            shells = term["shells"]   # the model's computed dopant-mobile terms
            warn_unfitted(fw, p.element, stacklevel=4)
            _check_radius(net, max(r for r, _ in shells), p.element, " (the model's [dopant_terms] shells)")
        elif term is not None and "energy_shift_eV" in term:
            shift, radius = float(term["energy_shift_eV"]), float(term["shift_radius_A"])
        elif shift is None:
            _warn_no_dopant_terms(fw, p.element, spec["site"], set(p.counts), p.on_mobile_sites)
        if shift is not None:
            _check_radius(net, radius, p.element, " (the model's [dopant_terms])" if term else "")
        excl = found.get("exclusion_radius_A") if found else None   # a computed fact: always applies
        if excl:
            _check_radius(net, float(excl), p.element, " (the model's [dopant_terms] exclusion_radius_A)")
        plan.append(DopantSites(p.element, p.on_mobile_sites, dict(p.counts), cand, shift, radius, shells,
                                float(excl) if excl else None))
    return cell, plan, host_pos


def _computed_dopant_term(fw, element: str, site: str, labels: set[str]) -> dict | None:
    """The framework's ``[dopant_terms]`` entry (written by ``kmc parametrize --dopant EL:HOST``)
    for ``element`` on the host ``site`` (its name there, or host labels ``labels`` all among that
    host's), or None. A config's ``[dopants]`` entry without its own ``energy_shift_eV`` takes it:
    ``shells`` (its computed interaction with the mobile ions per distance, written by ``kmc
    parametrize``) or a flat ``energy_shift_eV`` / ``shift_radius_A`` (a hand-written table)."""
    term = (fw.data.get("dopant_terms") or {}).get(element) if fw is not None else None
    if not term:
        return None
    host = term.get("site")
    if site != host and not labels <= set(fw.dopant_sites.get(host, [host])):
        return None
    return term


def _warn_no_dopant_terms(fw, element: str, site: str, labels: set[str], on_mobile_sites: bool) -> None:
    """A model with computed terms for other dopants on the same host, but not for ``element``:
    say that this one only counts (and blocks, on mobile sites), its interaction with the ions
    not being known."""
    table = (fw.data.get("dopant_terms") or {}) if fw is not None else {}
    known = sorted(el for el in table if el != element and _computed_dopant_term(fw, el, site, labels))
    if known:
        blocks = f" and blocks the {site} sites it takes" if on_mobile_sites else ""
        warnings.warn(f"{fw.name} has computed {fw.mobile} terms for {', '.join(known)} on {site} ([dopant_terms]) "
                      f"but none for {element}, so {element} only changes the {fw.mobile} count{blocks}; compute "
                      f"them with `kmc parametrize --dopant {element}:{site}` or give [dopants] {element} an "
                      f"energy_shift_eV and shift_radius_A.", StructureWarning, stacklevel=4)


def _host_sites(src, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cartesian positions and labels of the framework sites ``labels`` over the supercell."""
    net, st = src.network, src.structure
    if not labels:
        return np.zeros((0, 3)), np.zeros(0, dtype=str)
    lab = np.array([site.properties.get("label") for site in st])
    keep = np.isin(lab, labels)
    frac = np.mod(st.frac_coords[keep], 1.0)
    cells = net._cells
    pos = ((cells[:, None, :] + frac[None, :, :]).reshape(-1, 3)) @ net.unit_lattice
    return pos, np.tile(lab[keep], len(cells))


def _check_radius(net: SiteNetwork, radius: float, element: str, origin: str = "") -> None:
    L = net.lattice
    vol = abs(np.linalg.det(L))
    widths = [vol / np.linalg.norm(np.cross(L[i], L[j])) for i, j in ((1, 2), (2, 0), (0, 1))]
    if radius >= 0.5 * min(widths):
        raise ConfigError(f"[dopants] {element} shift_radius_A = {radius:g} Å{origin} reaches half "
                          f"the supercell width ({0.5 * min(widths):.2f} Å); use a larger supercell or "
                          f"a smaller radius.")


def build_system(config: Config, with_model: bool = True,
                 structure: "Structure | None" = None) -> System:
    """Build the site network, the rate model, the ion count and the dopant plan of a config
    (``with_model=False`` skips the model, e.g. for ``kmc info`` on a CIF without barriers;
    ``System.model`` is then None; ``structure``, a pymatgen Structure, stands in for the CIF
    file of ``[lattice] cif``)."""
    src = source_for(config, structure)
    net = src.network
    model = build_model(config, src) if with_model else None
    occ = config.occupancy
    if occ.start_structure is not None:
        return _started_system(config, src, model, occ.start_structure)
    builtin_start = src.framework.start_structure if src.kind == "framework" else None
    if builtin_start is not None:
        if not occ.is_default or config.dopants:
            given = "dopants" if config.dopants else "an ion count in [occupancy]"
            base = src.framework.data.get("based_on", {}).get("model", "another framework")
            raise ConfigError(f"{src.framework.name} starts every replica from its ordered arrangement, which "
                              f"fixes the ions and leaves no room for {given}; use {base} (the same model "
                              f"with a random start) for other compositions.")
        return _started_system(config, src, model, builtin_start)
    if src.kind == "framework":
        cell, plan, host_pos = _framework_dopants(config, src)
        n_free = net.n_sites - sum(cell.blocked_labels.values())
        n_ions = occ.n_ions(n_free, default=cell.n_ions)
        if not occ.is_default:  # the formula reports the ion count actually simulated

            cell = apply_dopants(src.framework, _dopant_list(config), net.n_cells,
                                 n_mobile=n_ions)
        return System(net, model, n_ions, plan, host_pos, cell.formula,
                      cell.mobile_per_formula_unit, src)
    default = int(round(src.ions_per_cell * net.n_cells)) if src.kind == "cif" else None
    if default == 0:
        raise ConfigError(f"the {net.species} sites of {Path(src.name).name} have zero total "
                          f"occupancy; give the ion count in [occupancy] (ions, vacancies or "
                          f"filling).")
    plan = site_blocker_plan(src)  # e.g. the Al of a mixed Li/Al site of a CIF
    n_free = net.n_sites - sum(k for d in plan for k in d.counts.values())
    n_ions = occ.n_ions(n_free, default=default)
    return System(net, model, n_ions, plan, np.zeros((0, 3)), src.formula(n_ions),
                  src.mobile_per_formula_unit(n_ions), src)


def _started_system(config: Config, src: "Source", model: RateModel | None, start_file: str) -> System:
    """The system of ``[occupancy] start_structure`` (or a builtin's own start arrangement):
    the arrangement of ``start_file`` on one cell, repeated over the supercell; its ion count."""
    net = src.network
    if net.structure is None:  # teaching lattices are refused by the config already
        raise ConfigError("[occupancy] start_structure needs a lattice with framework atoms to match.")
    if config.dopants or site_blocker_plan(src):
        raise ConfigError("[occupancy] start_structure cannot be combined with dopants or blockers (their "
                          "placement is random in every replica); remove one of them.")
    unit = site_occupancy(net.unit_frac, net.unit_lattice, net.structure, start_file, net.species)
    start = np.tile(unit, net.n_cells)
    n_ions = int(start.sum())
    if len(net.exclusions):
        off, nbr, _ = net.csr(net.exclusions)
        clash = [i for i in np.flatnonzero(start) if start[nbr[off[i]:off[i + 1]]].any()]
        if clash:
            raise ConfigError(f"[occupancy] start_structure puts ions on {len(clash)} sites closer than the "
                              f"exclusion distance ({src.exclusion_distance_A:g} Å) to another ion; give an "
                              "arrangement this model allows (or lower the exclusion distance).")
    if src.kind == "framework":
        cell = apply_dopants(src.framework, [], net.n_cells, n_mobile=n_ions)
        formula, per_fu = cell.formula, cell.mobile_per_formula_unit
    else:
        formula, per_fu = src.formula(n_ions), src.mobile_per_formula_unit(n_ions)
    return System(net, model, n_ions, [], np.zeros((0, 3)), formula, per_fu, src, initial_occupancy=start)


def site_blocker_plan(src: "Source") -> list[DopantSites]:
    """The immobile species sharing mobile-ion sites (``Source.blockers``) as blockers placed
    afresh in every replica: the nearest whole number of the class's supercell sites."""
    names = np.array(src.network.class_names)[src.network.site_class]
    plan = []
    for el, per_class in src.blockers.items():
        cand = {lab: np.flatnonzero(names == lab) for lab in per_class}
        counts = {lab: int(round(x * len(cand[lab]))) for lab, x in per_class.items()}
        if any(counts.values()):
            plan.append(DopantSites(el, True, {k: v for k, v in counts.items() if v}, cand))
    return plan



def network_info(system: System) -> dict:
    """The ``network`` object of a result: the network summary, the source and the cutoffs used,
    the supercell and the ion count."""
    net, src = system.network, system.source
    info = net.summary()
    info.update(n_sites=net.n_sites, n_ions=system.n_ions, supercell=list(net.supercell),
                volume_A3=net.volume_A3, mobile=net.species)
    if src is not None:
        info.update(source=src.kind, name=src.name, hop_cutoff_A=src.hop_cutoff_A,
                    exclusion_distance_A=src.exclusion_distance_A,
                    interaction_cutoff_A=src.interaction_cutoff_A)
    if net.knockoffs is not None:
        info["knockoff_classes"] = list(net.knockoffs.names)
    blocked = system.blocked_counts
    if blocked:
        info["blocked_per_class"] = blocked
    return info
