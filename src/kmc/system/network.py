"""Site networks: the mobile-ion sites of a periodic supercell, the hops between them, hard-core
exclusions and interaction neighbour shells.

Everything is found once in the unit cell (pymatgen neighbour lists, spglib symmetry classes) as
*templates* with integer image offsets, then tiled over the supercell with numpy.  Supercell site
index = ``cell * n_unit + u`` with cells stored along a Morton curve (see ``_cells``); events are
ordered by source site, which is what the engine's CSR layout needs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from kmc.exceptions import StructureError

_ROUND_A = 2  # hop/shell lengths are grouped at 0.01 Å
#: entries per block when tiling pairs over the supercell (bounds the temporaries)
_CHUNK = 1 << 16
#: the engine indexes sites and events with 32-bit integers
MAX_INDEX = 2**31 - 1
#: peak bytes of building a system and its first replica, per site and per pair (hop event,
#: exclusion or interaction pair): least-squares fit over sc, bcc and fcc supercells of 3e3-3e4
#: sites (2.4, 3.0 and 4.5 kB per site), measured with tracemalloc by scripts/measure_memory.py
#: before the construction was made lean (2026-12-06 it gives 232 B/site + 33 B/event); the
#: higher values are kept as a margin (a run's replicas and their frame buffers are checked
#: separately: kmc.runs.runner.check_replica_memory)
MEMORY_PER_SITE_B = 226
MEMORY_PER_EVENT_B = 353


def available_memory_bytes() -> int | None:
    """Memory the system can still give this process (psutil if installed, else
    /proc/meminfo's MemAvailable), or None when unknown."""
    try:
        # lazy: psutil is optional (not a dependency) and costs ~20 ms
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_short_of(need: int) -> int | None:
    """The memory available when it is less than ``need`` bytes, else None (also when unknown)."""
    have = available_memory_bytes()
    return have if have is not None and need > have else None


def estimated_peak_bytes(n_sites: int, n_pairs: int) -> int:
    """Estimated peak memory of building a network of ``n_sites`` sites and ``n_pairs`` hop
    events, exclusion and interaction pairs, with its first replica (see
    :data:`MEMORY_PER_SITE_B`)."""
    return int(MEMORY_PER_SITE_B * n_sites + MEMORY_PER_EVENT_B * n_pairs)


def check_memory(supercell, n_sites: int, n_pairs: int) -> None:
    """Refuse a supercell whose estimated peak memory exceeds the memory available.

    Raises
    ------
    StructureError
        Stating the estimate and the memory available.
    """
    need = estimated_peak_bytes(n_sites, n_pairs)
    have = memory_short_of(need)
    if have is not None:
        raise StructureError(f"the supercell {list(supercell)} ({n_sites:.3g} sites, "
                             f"{n_pairs:.3g} hop events and pairs) needs about {need / 1e9:.3g} GB "
                             f"to build, but only {have / 1e9:.3g} GB are available; use fewer "
                             f"repetitions or a smaller hop or interaction cutoff.")
#: most neighbours within a hop, exclusion or interaction cutoff per site (a cutoff that would
#: give more is a typo, e.g. 30 instead of 3.0 Å, and would exhaust the memory)
MAX_NEIGHBOURS = 10_000


def _check_cutoffs(lattice: np.ndarray, n_unit: int, supercell, cutoffs: dict[str, float]
                   ) -> None:
    """Reject, before any neighbour search, a supercell with more sites than the engine can index
    and cutoffs that reach a site's own periodic image or would join every site to a huge
    number of others."""
    sc = tuple(int(x) for x in supercell)
    if len(sc) != 3 or min(sc) < 1:
        raise StructureError(f"supercell must be three positive integers, got {sc}.")
    n_sites = n_unit * sc[0] * sc[1] * sc[2]
    if n_sites > MAX_INDEX:
        raise StructureError(f"the supercell {sc} holds {n_sites:.3g} sites, more than the "
                             f"engine can index ({MAX_INDEX:.3g}); use fewer repetitions.")
    length = np.linalg.norm(lattice, axis=1) * np.array(sc, float)
    axis = int(np.argmin(length))
    density = n_unit / abs(float(np.linalg.det(lattice)))
    for name, c in cutoffs.items():
        if not c > 0:
            continue
        if length[axis] <= c + 1e-6:
            raise StructureError(f"the {name} of {c:g} Å reaches a site's own periodic image (the "
                                 f"supercell {sc} is only {length[axis]:.3g} Å long along axis "
                                 f"{axis}); use more repetitions along that axis or lower "
                                 f"{name}.")
        expected = density * 4.0 / 3.0 * np.pi * c ** 3
        if expected > MAX_NEIGHBOURS:
            raise StructureError(f"the {name} of {c:g} Å would give every site about "
                                 f"{expected:.2g} neighbours; lower {name} (neighbouring sites "
                                 f"are a few Å apart).")


@dataclass(frozen=True)
class PairList:
    """Unit-cell pairs ``u -> v`` with the image of v's cell relative to u's, and their length."""

    src: np.ndarray
    dst: np.ndarray
    image: np.ndarray
    length: np.ndarray

    @staticmethod
    def empty() -> "PairList":
        z = np.zeros(0, dtype=np.int64)
        return PairList(z, z, np.zeros((0, 3), dtype=np.int64), np.zeros(0))

    def __len__(self) -> int:
        return len(self.src)


@dataclass(frozen=True)
class KnockoffList:
    """Interstitialcy templates: the ion on ``src`` pushes the ion on ``mid`` on to ``dst``.

    Images are those of mid's and dst's cells relative to src's cell; ``klass`` indexes
    ``names``."""

    src: np.ndarray
    mid: np.ndarray
    mid_image: np.ndarray
    dst: np.ndarray
    dst_image: np.ndarray
    klass: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.src)


@dataclass(frozen=True)
class Templates:
    """All event templates of the unit cell (hops and knock-offs), sorted by source site; this
    is the order of the events of every cell in the engine."""

    src: np.ndarray
    dst: np.ndarray
    dst_image: np.ndarray
    mid: np.ndarray            # -1 for a plain hop
    mid_image: np.ndarray
    vec1: np.ndarray           # src -> mid (plain hop: src -> dst), Å
    vec2: np.ndarray           # mid -> dst (plain hop: 0), Å
    klass: np.ndarray          # index into SiteNetwork.event_class_names
    reverse: np.ndarray        # template of the reverse event

    def __len__(self) -> int:
        return len(self.src)

    @property
    def as_pairs(self) -> PairList:
        """Source-destination pairs (what occupancy changes), as a PairList."""
        d = self.vec1 + self.vec2
        return PairList(self.src, self.dst, self.dst_image, np.linalg.norm(d, axis=1))


def neighbour_pairs(frac: np.ndarray, lattice: np.ndarray, r_max: float) -> PairList:
    """All ordered pairs of unit-cell sites (including periodic images) with 0 < d <= r_max."""
    if r_max <= 0 or len(frac) == 0:
        return PairList.empty()
    s = Structure(lattice, ["H"] * len(frac), frac)
    ci, pi, images, dist = s.get_neighbor_list(r_max + 1e-6)
    keep = dist > 1e-6
    ci, pi, images, dist = ci[keep], pi[keep], np.rint(images[keep]).astype(np.int64), dist[keep]
    order = np.lexsort((images[:, 2], images[:, 1], images[:, 0], pi, ci))
    return PairList(ci[order].astype(np.int64), pi[order].astype(np.int64), images[order], dist[order])


def periodic_components(n: int, src: np.ndarray, dst: np.ndarray, image: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of a periodic graph and the periodic dimensionality of each.

    The dimensionality of a component is the rank of the lattice spanned by its cycle translations
    (0: finite cluster, 1: chains, 2: layers, 3: a 3D network). The edge list is expected to hold
    both directions of every edge (``a -> b`` with ``image``, ``b -> a`` with ``-image``), as the
    pair lists of a network do.

    Returns
    -------
    labels : ndarray of int, shape (n,)
    dims : ndarray of int, shape (n_components,)
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    src, dst, image = np.asarray(src), np.asarray(dst), np.asarray(image)
    if len(src) > 1 and np.any(src[1:] < src[:-1]):  # the walk below needs edges by source
        order = np.argsort(src, kind="stable")
        src, dst, image = src[order], dst[order], image[order]
        del order
    off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=off[1:])
    graph = csr_matrix((np.ones(len(src)), dst, off), shape=(n, n))
    n_comp, labels = connected_components(graph, directed=False)
    del graph
    # unwrapped image of every node along a BFS forest (one root per component, level by level,
    # numpy over a whole level); every edge off the forest closes a cycle
    pos = np.zeros((n, 3), dtype=np.int64)
    seen = np.zeros(n, dtype=bool)
    frontier = np.unique(labels, return_index=True)[1]
    while len(frontier):
        seen[frontier] = True
        while len(frontier):
            start, count = off[frontier], off[frontier + 1] - off[frontier]
            edge = np.repeat(start - np.cumsum(count) + count, count) + np.arange(count.sum())
            edge = edge[~seen[dst[edge]]]
            nodes, first = np.unique(dst[edge], return_index=True)   # one tree edge per node
            edge = edge[first]
            pos[nodes] = pos[src[edge]] + image[edge]
            seen[nodes] = True
            frontier = nodes
        # nodes only reachable against an edge's direction (not for symmetric lists)
        rest = np.flatnonzero(~seen)
        frontier = rest[np.unique(labels[rest], return_index=True)[1]]
    dims = np.zeros(n_comp, dtype=np.int64)
    vecs, comp = [], []
    for a in range(0, len(src), _CHUNK):   # cycles of a chunk of edges; only non-zero ones kept
        sl = slice(a, a + _CHUNK)
        cyc = pos[src[sl]] + image[sl] - pos[dst[sl]]
        nz = np.any(cyc != 0, axis=1)
        vecs.append(cyc[nz])
        comp.append(labels[src[sl][nz]])
    if vecs:
        vecs_all, comp_all = np.concatenate(vecs), np.concatenate(comp)
        order = np.argsort(comp_all, kind="stable")
        vecs_all, comp_all = vecs_all[order], comp_all[order]
        cuts = np.flatnonzero(np.diff(comp_all)) + 1
        for c, v in zip(comp_all[np.r_[0, cuts]] if len(comp_all) else [],
                        np.split(vecs_all, cuts)):
            dims[c] = np.linalg.matrix_rank(v.astype(float))
    return labels, dims


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _labelled_classes(structure: Structure, mobile_idx: np.ndarray, mobile: str,
                      symmetry: list[str]) -> list[str] | None:
    """The sites' own labels (e.g. a CIF's ``_atom_site_label``) as class names, or None when
    they cannot serve: a site without a label, only the bare element symbol, or a label that
    splits a symmetry orbit (a P1 file labelling every atom)."""
    labels = [getattr(structure[i], "label", None) for i in mobile_idx]
    if any(not isinstance(x, str) or not x for x in labels) or all(x == mobile for x in labels):
        return None
    per_orbit: dict[str, set] = {}
    for orbit, lab in zip(symmetry, labels):
        per_orbit.setdefault(orbit, set()).add(lab)
    return labels if all(len(v) == 1 for v in per_orbit.values()) else None


def _symmetry_classes(structure: Structure, mobile_idx: np.ndarray, symprec: float) -> list[str]:
    """Names of the symmetry-equivalence class (Wyckoff orbit) of each mobile site.

    Orbits are numbered in the order of their smallest fractional coordinate (rounded, wrapped
    into [0, 1)), so the names do not depend on the order of the atoms in the input."""
    try:
        sym = SpacegroupAnalyzer(structure, symprec=symprec).get_symmetrized_structure()
        orbit_of = {}
        for k, (idx, wy) in enumerate(zip(sym.equivalent_indices, sym.wyckoff_symbols)):
            for i in idx:
                orbit_of[i] = (k, wy)
        keys = [orbit_of[i] for i in mobile_idx]
    except Exception:  # spglib cannot treat some disordered cells: fall back to one class per species
        keys = [(0, "")] * len(mobile_idx)
    frac = np.round(np.mod(structure.frac_coords[mobile_idx], 1.0), 4) % 1.0
    first = {}
    for k, f in zip(keys, map(tuple, frac)):
        first[k] = min(first.get(k, f), f)
    names = {k: f"{n + 1}{'_' + k[1] if k[1] else ''}"
             for n, k in enumerate(sorted(first, key=lambda k: first[k]))}
    return [names[k] for k in keys]


#: mobile sites closer than this (Å) are almost surely alternative positions of one ion (split or
#: disordered sites) and need a hard-core exclusion; see :func:`close_site_pairs`
CLOSE_SITE_A = 1.0


def close_site_pairs(net: "SiteNetwork", exclusion_distance_A: float,
                     below_A: float = CLOSE_SITE_A) -> list[tuple[str, str, float, int]]:
    """Site-class pairs of ``net`` closer than ``below_A`` that ``exclusion_distance_A`` leaves
    free to be occupied together: ``(class_a, class_b, distance_A, pairs_per_cell)``, shortest
    first."""
    pairs = neighbour_pairs(net.unit_frac, net.unit_lattice, below_A - 1e-9)
    free = pairs.length >= exclusion_distance_A - 1e-6
    count: dict[tuple[str, str, float], int] = {}
    for a, b, d in zip(pairs.src[free], pairs.dst[free], pairs.length[free]):
        ca, cb = sorted((net.class_names[net.unit_class[a]], net.class_names[net.unit_class[b]]))
        key = (ca, cb, round(float(d), _ROUND_A))
        count[key] = count.get(key, 0) + 1
    return [(a, b, d, n // 2) for (a, b, d), n in sorted(count.items(), key=lambda x: x[0][2])]


@dataclass
class SiteNetwork:
    """Mobile-ion sites of a periodic supercell with hops, exclusions and interaction shells.

    Build it with :meth:`from_structure`, :meth:`from_atoms` or :func:`kmc.system.lattices` helpers; the
    arrays are read-only in spirit (the engine takes them as they are).
    """

    species: str
    unit_lattice: np.ndarray               # (3, 3) rows are lattice vectors, Å
    unit_frac: np.ndarray                  # (n_unit, 3) fractional coordinates of mobile sites
    unit_class: np.ndarray                 # (n_unit,) site-class index
    class_names: list[str]
    unit_occupancy: np.ndarray             # (n_unit,) mobile-species occupancy from the structure
    supercell: tuple[int, int, int]
    hops: PairList                         # hop templates
    hop_class: np.ndarray                  # (n_templates,) hop-class index
    hop_class_names: list[str]
    hop_class_lengths: np.ndarray
    exclusions: PairList
    interactions: PairList
    shell_lengths: np.ndarray              # distinct interaction distances (Å)
    interaction_shell: np.ndarray          # (n_int_pairs,) shell index
    structure: Structure | None = None     # unit cell with framework atoms, when known
    knockoffs: "KnockoffList | None" = None  # interstitialcy (knock-off) templates
    dimensionality: int = field(init=False)

    def __post_init__(self) -> None:
        self.supercell = tuple(int(x) for x in self.supercell)
        self._check_supercell()
        _, dims = periodic_components(len(self.unit_frac), self.hops.src, self.hops.dst,
                                      self.hops.image)
        self.dimensionality = int(dims.max()) if len(dims) else 0

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_structure(
        cls,
        structure: Structure,
        mobile: str = "Li",
        supercell: tuple[int, int, int] = (1, 1, 1),
        hop_cutoff_A: float = 3.0,
        exclusion_distance_A: float = 0.0,
        interaction_cutoff_A: float = 0.0,
        site_labels: list[str] | None = None,
        symprec: float = 0.01,
        use_site_labels: bool = False,
    ) -> "SiteNetwork":
        """Build the network of the sites of species ``mobile`` (partly occupied sites included).

        Parameters
        ----------
        structure : pymatgen.core.Structure
            Unit cell, possibly disordered (partial occupancies are kept as ``unit_occupancy``).
        mobile : str
            Element of the mobile ion.
        supercell : 3 ints
            Repetitions of the unit cell.
        hop_cutoff_A : float
            Sites closer than this are joined by a hop.
        exclusion_distance_A : float
            Sites closer than this cannot both be occupied (hard-core exclusion).
        interaction_cutoff_A : float
            Range of the pair-interaction neighbour shells.
        site_labels : list of str, optional
            Site-class name of each mobile site in structure order; by default the symmetry orbits
            found by spglib.
        use_site_labels : bool
            Without ``site_labels``: name the classes by the sites' own labels (a CIF's
            ``_atom_site_label``) when every mobile site has one and each symmetry orbit carries
            a single label; otherwise by the symmetry orbits.
        """
        mobile_idx = np.array([i for i, site in enumerate(structure)
                               if any(el.symbol == mobile for el in site.species.elements)],
                              dtype=np.int64)
        if len(mobile_idx) == 0:
            raise StructureError(f"the structure {structure.composition.reduced_formula} has no "
                                 f"{mobile} sites; set the mobile species to one it contains.")
        frac = np.mod(structure.frac_coords[mobile_idx], 1.0)
        occupancy = np.array([structure[i].species.get_el_amt_dict().get(mobile, 0.0)
                              for i in mobile_idx])
        if site_labels is None:
            names = _symmetry_classes(structure, mobile_idx, symprec)
            names = [f"{mobile}{n}" for n in names]
            if use_site_labels:
                names = _labelled_classes(structure, mobile_idx, mobile, names) or names
        else:
            if len(site_labels) != len(mobile_idx):
                raise StructureError("site_labels must name every mobile site of the structure.")
            names = list(site_labels)
        # classes found here are named and ordered (Li2 before Li10) independently of the order
        # of the atoms, so that hop-class names are too
        order = sorted(set(names), key=_natural_key) if site_labels is None else None
        return cls.from_sites(np.array(structure.lattice.matrix), frac, names, occupancy,
                              mobile, supercell, hop_cutoff_A, exclusion_distance_A,
                              interaction_cutoff_A, structure, order)

    @classmethod
    def from_sites(
        cls,
        lattice: np.ndarray,
        frac: np.ndarray,
        labels: list[str],
        occupancy: np.ndarray | None = None,
        mobile: str = "Li",
        supercell: tuple[int, int, int] = (1, 1, 1),
        hop_cutoff_A: float = 3.0,
        exclusion_distance_A: float = 0.0,
        interaction_cutoff_A: float = 0.0,
        structure: Structure | None = None,
        class_order: list[str] | None = None,
    ) -> "SiteNetwork":
        """Build from an explicit list of mobile-ion sites (empty interstitial sites included).

        Parameters
        ----------
        lattice : (3, 3) array
            Unit-cell vectors (rows), Å.
        frac : (n, 3) array
            Fractional coordinates of the mobile-ion sites.
        labels : list of str
            Site-class name of each site.
        occupancy : (n,) array, optional
            Mean occupancy of each site in the source structure (0 for empty interstitials).
        class_order : list of str, optional
            Order of the site classes (it decides how hop classes are named, ``A-B@d``); default:
            order of first appearance in ``labels``.
        Other parameters as in :meth:`from_structure`.
        """
        frac = np.mod(np.asarray(frac, float), 1.0)
        if frac.ndim != 2 or frac.shape[1] != 3 or len(frac) == 0:
            raise StructureError("give at least one mobile site as fractional coordinates (n, 3).")
        if len(labels) != len(frac):
            raise StructureError("every mobile site needs a site-class label.")
        occupancy = np.zeros(len(frac)) if occupancy is None else np.asarray(occupancy, float)
        lattice = np.asarray(lattice, float)
        class_names = list(dict.fromkeys(labels)) if class_order is None else list(class_order)
        if sorted(class_names) != sorted(set(labels)):
            raise StructureError("class_order must list every site-class label once.")
        unit_class = np.array([class_names.index(n) for n in labels], dtype=np.int64)
        _check_cutoffs(lattice, len(frac), supercell,
                       {"hop_cutoff_A": hop_cutoff_A,
                        "exclusion_distance_A": exclusion_distance_A - 1e-6,
                        "interaction_cutoff_A": interaction_cutoff_A})

        hops = neighbour_pairs(frac, lattice, hop_cutoff_A)
        if len(hops) == 0:
            reach = float(np.linalg.norm(lattice, axis=1).max()) + 1e-3
            shortest = neighbour_pairs(frac, lattice, reach).length
            hint = f" (the shortest {mobile}-{mobile} distance is {shortest.min():.2f} Å)" \
                if len(shortest) else ""
            raise StructureError(f"no two {mobile} sites are within the hop cutoff of "
                                 f"{hop_cutoff_A:g} Å{hint}; raise hop_cutoff_A.")
        key = [(min(unit_class[a], unit_class[b]), max(unit_class[a], unit_class[b]),
                round(float(d), _ROUND_A)) for a, b, d in zip(hops.src, hops.dst, hops.length)]
        hop_keys = sorted(set(key), key=lambda k: (k[2], k[0], k[1]))
        hop_class = np.array([hop_keys.index(k) for k in key], dtype=np.int64)
        hop_class_names = [f"{class_names[a]}-{class_names[b]}@{d:.2f}" for a, b, d in hop_keys]
        hop_class_lengths = np.array([k[2] for k in hop_keys])

        excl = neighbour_pairs(frac, lattice, exclusion_distance_A - 1e-6) \
            if exclusion_distance_A > 0 else PairList.empty()
        inter = neighbour_pairs(frac, lattice, interaction_cutoff_A)
        rounded = np.round(inter.length, _ROUND_A)
        shells = np.unique(rounded)
        shell = np.searchsorted(shells, rounded)
        return cls(mobile, lattice, frac, unit_class, class_names, occupancy, tuple(supercell),
                   hops, hop_class, hop_class_names, hop_class_lengths, excl, inter, shells,
                   shell.astype(np.int64), structure)

    @classmethod
    def from_atoms(cls, atoms, mobile: str = "Li", **kwargs) -> "SiteNetwork":
        """Build from an ASE ``Atoms`` object (see :meth:`from_structure` for the arguments)."""
        # lazy: pymatgen.io.ase loads ase.io and scipy (~0.2 s); only ASE input needs it
        from pymatgen.io.ase import AseAtomsAdaptor

        return cls.from_structure(AseAtomsAdaptor.get_structure(atoms), mobile, **kwargs)

    def _check_supercell(self) -> None:
        if len(self.supercell) != 3 or min(self.supercell) < 1:
            raise StructureError(f"supercell must be three positive integers, got {self.supercell}.")
        n_events = len(self.hops) * self.supercell[0] * self.supercell[1] * self.supercell[2]
        if n_events > MAX_INDEX:
            raise StructureError(f"the supercell {self.supercell} has {n_events:.3g} hop events, "
                                 f"more than the engine can index ({MAX_INDEX:.3g}); use fewer "
                                 f"repetitions or a smaller hop_cutoff_A.")
        n_cells = self.supercell[0] * self.supercell[1] * self.supercell[2]
        n_pairs = (len(self.hops) + len(self.exclusions) + len(self.interactions)) * n_cells
        check_memory(self.supercell, len(self.unit_frac) * n_cells, n_pairs)
        n = np.array(self.supercell)
        for name, pairs in (("hop", self.hops), ("exclusion", self.exclusions),
                            ("interaction", self.interactions)):
            if len(pairs) == 0:
                continue
            self_image = (pairs.src == pairs.dst) & np.all(pairs.image % n == 0, axis=1)
            if self_image.any():
                axis = int(np.argmax(np.any(pairs.image[self_image] % n != pairs.image[self_image],
                                            axis=0)))
                raise StructureError(
                    f"the supercell {self.supercell} is so small that a {name} pair joins a site to "
                    f"its own periodic image; use more repetitions (at least "
                    f"{int(np.abs(pairs.image[self_image]).max()) + 1}) along axis {axis}.")

    # ------------------------------------------------------------------ supercell geometry
    @property
    def n_unit(self) -> int:
        return len(self.unit_frac)

    @property
    def n_cells(self) -> int:
        return int(np.prod(self.supercell))

    @property
    def n_sites(self) -> int:
        return self.n_cells * self.n_unit

    @property
    def lattice(self) -> np.ndarray:
        """Supercell lattice vectors (rows), Å."""
        return self.unit_lattice * np.array(self.supercell)[:, None]

    @property
    def volume_A3(self) -> float:
        return float(abs(np.linalg.det(self.lattice)))

    @cached_property
    def _cells(self) -> np.ndarray:
        """Cell offsets (i, j, k) in storage order: along a Morton (Z-order) curve, so that
        neighbouring cells sit close in memory and in the sum tree (fewer cache misses per hop
        on large supercells)."""
        n1, n2, n3 = self.supercell
        grid = np.stack(np.meshgrid(np.arange(n1), np.arange(n2), np.arange(n3), indexing="ij"),
                        axis=-1).reshape(-1, 3)
        code = np.zeros(len(grid), dtype=np.uint64)
        for bit in range(21):
            for axis in range(3):
                code |= ((grid[:, axis].astype(np.uint64) >> np.uint64(bit)) & np.uint64(1)) \
                    << np.uint64(3 * bit + axis)
        return grid[np.argsort(code, kind="stable")]

    @cached_property
    def _rank(self) -> np.ndarray:
        n1, n2, n3 = self.supercell
        rank = np.empty(self.n_cells, dtype=np.int64)
        c = self._cells
        rank[(c[:, 0] * n2 + c[:, 1]) * n3 + c[:, 2]] = np.arange(self.n_cells)
        return rank

    def _cell_index(self, ijk: np.ndarray) -> np.ndarray:
        """Storage index of cell (i, j, k) (components already wrapped into the supercell)."""
        n1, n2, n3 = self.supercell
        return self._rank[(ijk[..., 0] * n2 + ijk[..., 1]) * n3 + ijk[..., 2]]

    def _dest_cells(self, image: np.ndarray) -> np.ndarray:
        """Storage index (int32) of the cell ``cell + image[t]`` (wrapped) for every cell and
        template, shape ``(n_cells, len(image))``; computed in blocks of cells, so that no
        ``(n_cells, n_templates, 3)`` temporary is ever made."""
        n = np.array(self.supercell)
        image = np.asarray(image).reshape(-1, 3)
        out = np.empty((self.n_cells, len(image)), dtype=np.int32)
        step = max(1, _CHUNK // max(len(image), 1))
        for a in range(0, self.n_cells, step):
            out[a:a + step] = self._cell_index((self._cells[a:a + step, None, :] + image[None, :, :])
                                               % n)
        return out

    def _tile_dst(self, pairs: PairList) -> np.ndarray:
        """Supercell destination sites (int32) of unit-cell pairs, cell-major, src-sorted."""
        dst = self._dest_cells(pairs.image)
        dst *= self.n_unit
        dst += pairs.dst.astype(np.int32)
        return dst.ravel()

    def _tile(self, pairs: PairList) -> tuple[np.ndarray, np.ndarray]:
        """Supercell (src, dst) site indices (int32) of unit-cell pairs, cell-major, src-sorted."""
        src = np.arange(self.n_cells, dtype=np.int32)[:, None] * np.int32(self.n_unit) \
            + pairs.src.astype(np.int32)[None, :]
        return src.ravel(), self._tile_dst(pairs)

    def _tile_images(self, pairs: PairList) -> np.ndarray:
        """Image (in supercells, int16) of the destination of every tiled pair, ``(n, 3)``."""
        n = np.array(self.supercell)
        out = np.empty((self.n_cells, len(pairs), 3), dtype=np.int16)
        step = max(1, _CHUNK // max(len(pairs), 1))
        for a in range(0, self.n_cells, step):
            out[a:a + step] = np.floor_divide(self._cells[a:a + step, None, :]
                                              + pairs.image[None, :, :], n)
        return out.reshape(-1, 3)

    @cached_property
    def positions(self) -> np.ndarray:
        """Cartesian positions (Å) of every supercell site, shape (n_sites, 3)."""
        frac = (self._cells[:, None, :] + self.unit_frac[None, :, :]).reshape(-1, 3)
        return frac @ self.unit_lattice

    @cached_property
    def site_class(self) -> np.ndarray:
        return np.tile(self.unit_class, self.n_cells)

    @cached_property
    def hop_vectors(self) -> np.ndarray:
        """Cartesian vector of each plain-hop template (Å)."""
        h = self.hops
        return (self.unit_frac[h.dst] + h.image - self.unit_frac[h.src]) @ self.unit_lattice

    @property
    def event_class_names(self) -> list[str]:
        """Hop classes, then knock-off classes: the classes barriers are given for."""
        return self.hop_class_names + (self.knockoffs.names if self.knockoffs else [])

    def with_interstitialcy(self, interstitial: list[str], lattice: list[str],
                            max_angle_deg: float = 30.0) -> "SiteNetwork":
        """A copy with interstitialcy (knock-off) events added.

        An ion on an ``interstitial``-class site a pushes the ion on a neighbouring
        ``lattice``-class site b on to an interstitial site c (a != c), in one event, when the
        two hop vectors a->b and b->c deviate by at most ``max_angle_deg`` (a near-collinear
        push).  Triples that would put two ions on excluded sites are left out.
        """
        unknown = [c for c in list(interstitial) + list(lattice) if c not in self.class_names]
        if unknown:
            raise StructureError(f"interstitialcy names the site class {unknown[0]!r}, which this "
                                 f"network lacks; use one of {', '.join(self.class_names)}.")
        inter = np.isin(self.unit_class, [self.class_names.index(c) for c in interstitial])
        latt = np.isin(self.unit_class, [self.class_names.index(c) for c in lattice])
        h, v = self.hops, self.hop_vectors
        cos_min = np.cos(np.radians(max_angle_deg))
        ex = {(a, b, tuple(i)) for a, b, i in zip(self.exclusions.src.tolist(),
                                                  self.exclusions.dst.tolist(),
                                                  self.exclusions.image.tolist())}
        rows, keys = [], []
        for t1 in np.flatnonzero(inter[h.src] & latt[h.dst]):
            for t2 in np.flatnonzero((h.src == h.dst[t1]) & inter[h.dst]):
                img = h.image[t1] + h.image[t2]
                if h.dst[t2] == h.src[t1] and not img.any():
                    continue  # pushed straight back onto the pusher's site
                c = v[t1] @ v[t2] / (np.linalg.norm(v[t1]) * np.linalg.norm(v[t2]))
                if c < cos_min - 1e-9:
                    continue
                # the ion left on b and the one arriving on c must not be excluded neighbours
                if (int(h.src[t2]), int(h.dst[t2]), tuple(h.image[t2].tolist())) in ex:
                    continue
                rows.append((h.src[t1], h.dst[t1], h.image[t1], h.dst[t2], img))
                keys.append((self.class_names[self.unit_class[h.src[t1]]],
                             self.class_names[self.unit_class[h.dst[t1]]],
                             self.class_names[self.unit_class[h.dst[t2]]],
                             round(float(np.linalg.norm(v[t1])), _ROUND_A),
                             round(float(np.linalg.norm(v[t2])), _ROUND_A)))
        if not rows:
            raise StructureError("no interstitial-lattice-interstitial triple within the hop cutoff "
                                 "is close enough to collinear; raise max_angle_deg or the hop "
                                 "cutoff.")
        canon = {k: tuple(sorted([(k[0], k[3]), (k[2], k[4])])) + (k[1],) for k in keys}
        names = sorted({f"knockoff:{c[0][0]}-{c[2]}-{c[1][0]}@{c[0][1]:.2f}+{c[1][1]:.2f}"
                        for c in canon.values()})
        klass = np.array([names.index(f"knockoff:{canon[k][0][0]}-{canon[k][2]}-{canon[k][1][0]}"
                                      f"@{canon[k][0][1]:.2f}+{canon[k][1][1]:.2f}")
                          for k in keys], dtype=np.int64)
        ko = KnockoffList(np.array([r[0] for r in rows], np.int64),
                          np.array([r[1] for r in rows], np.int64),
                          np.array([r[2] for r in rows], np.int64).reshape(-1, 3),
                          np.array([r[3] for r in rows], np.int64),
                          np.array([r[4] for r in rows], np.int64).reshape(-1, 3), klass, names)
        return replace(self, knockoffs=ko)

    @cached_property
    def templates(self) -> Templates:
        """Plain hops and knock-offs merged and sorted by source site (stable: hops first)."""
        h, v = self.hops, self.hop_vectors
        n_h = len(h)
        src, dst, dimg = [h.src], [h.dst], [h.image]
        mid, mimg = [np.full(n_h, -1)], [np.zeros((n_h, 3), np.int64)]
        v1, v2 = [v], [np.zeros_like(v)]
        klass = [self.hop_class]
        ko = self.knockoffs
        if ko is not None and len(ko):
            fm = self.unit_frac[ko.mid] + ko.mid_image - self.unit_frac[ko.src]
            fd = self.unit_frac[ko.dst] + ko.dst_image - self.unit_frac[ko.mid] - ko.mid_image
            src.append(ko.src), dst.append(ko.dst), dimg.append(ko.dst_image)
            mid.append(ko.mid), mimg.append(ko.mid_image)
            v1.append(fm @ self.unit_lattice), v2.append(fd @ self.unit_lattice)
            klass.append(ko.klass + len(self.hop_class_names))
        cat = [np.concatenate(x) for x in (src, dst, dimg, mid, mimg, v1, v2, klass)]
        order = np.argsort(cat[0], kind="stable")
        src, dst, dimg, mid, mimg, v1, v2, klass = (x[order] for x in cat)
        # reverse of (a, m, c) is (c, m, a) with the images seen from c's cell
        index = {(a, b, tuple(i), m, tuple(j)): t for t, (a, b, i, m, j) in enumerate(zip(
            src.tolist(), dst.tolist(), dimg.tolist(), mid.tolist(), mimg.tolist()))}
        rev = []
        for a, b, i, m, j in zip(src.tolist(), dst.tolist(), dimg.tolist(), mid.tolist(),
                                 mimg.tolist()):
            i, j = np.array(i), np.array(j)
            key = (b, a, tuple(-i), m, tuple(j - i) if m >= 0 else (0, 0, 0))
            if key not in index:  # cannot happen for distance cutoffs; guards explicit lists
                raise StructureError("every event needs its reverse event in the network; add the "
                                     "missing reverse pairs.")
            rev.append(index[key])
        return Templates(src, dst, dimg, mid, mimg, v1, v2, klass, np.array(rev, np.int64))

    def unit_offsets(self, pairs: PairList) -> np.ndarray:
        """Offsets of each unit-cell site's pairs within one cell's block (pairs are src-sorted);
        with :meth:`csr`'s cell-major tiling, site (cell, u) owns entries
        ``cell * len(pairs) + off[u] .. off[u + 1]``."""
        off = np.zeros(self.n_unit + 1, dtype=np.int64)
        np.cumsum(np.bincount(pairs.src, minlength=self.n_unit), out=off[1:])
        return off

    def csr(self, pairs: PairList) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Supercell CSR ``(offsets, neighbours, template)`` of a unit-cell pair list (int64
        offsets, int32 neighbours and templates)."""
        counts = np.tile(np.bincount(pairs.src, minlength=self.n_unit), self.n_cells)
        off = np.zeros(self.n_sites + 1, dtype=np.int64)
        np.cumsum(counts, out=off[1:])
        del counts
        tmpl = np.tile(np.arange(len(pairs), dtype=np.int32), self.n_cells)
        return off, self._tile_dst(pairs), tmpl

    def events(self) -> dict[str, np.ndarray]:
        """Event catalogue of the supercell, by source site (CSR): destination, middle site
        (knock-offs; -1 for plain hops), reverse event and template of every event, and the CSR
        of the events by middle site."""
        t = self.templates
        off, dst, tmpl = self.csr(t.as_pairs)
        n_t = len(t)
        cells = np.arange(self.n_cells)
        dcell = self._dest_cells(t.dst_image)
        # an event joins a site to itself only if its template does (src == dst) and it lands in
        # its own cell
        if any(np.any(dcell[:, k] == cells) for k in np.flatnonzero(t.src == t.dst)):
            raise StructureError(f"the supercell {self.supercell} is so small that an event joins a "
                                 f"site to its own periodic image; use more repetitions.")
        dcell *= n_t
        dcell += t.reverse.astype(np.int32)
        out = {"out_off": off, "ev_dst": dst, "ev_rev": dcell.ravel(), "ev_tmpl": tmpl}
        del dcell
        if np.any(t.mid >= 0):
            mcell = self._dest_cells(t.mid_image)
            mid = np.where(t.mid[None, :] >= 0, mcell * self.n_unit + t.mid[None, :], -1).ravel()
            src = np.repeat(np.arange(self.n_sites, dtype=np.int32), np.diff(off))
            has = np.flatnonzero(mid >= 0)
            if np.any(mid[has] == src[has]) or np.any(mid[has] == dst[has]):
                raise StructureError(f"the supercell {self.supercell} is too small for the "
                                     f"knock-off events; use more repetitions.")
            order = has[np.argsort(mid[has], kind="stable")]
            mid_off = np.zeros(self.n_sites + 1, dtype=np.int64)
            np.cumsum(np.bincount(mid[has], minlength=self.n_sites), out=mid_off[1:])
            out.update(ev_mid=mid.astype(np.int32), mid_off=mid_off,
                       mid_ev=order.astype(np.int32), mid_src=src[order].astype(np.int32))
        else:
            out.update(ev_mid=np.zeros(0, np.int32), mid_off=np.zeros(self.n_sites + 1, np.int64),
                       mid_ev=np.zeros(0, np.int32), mid_src=np.zeros(0, np.int32))
        return out

    # ------------------------------------------------------------------ analysis
    def components(self, blocked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Connected clusters of the supercell network (optionally without ``blocked`` sites) and
        the periodic dimensionality of each, with images counted in supercells."""
        src, dst = self._tile(self.hops)
        image = self._tile_images(self.hops)
        if blocked is not None and blocked.any():
            keep = ~blocked[src] & ~blocked[dst]
            src, dst, image = src[keep], dst[keep], image[keep]
        return periodic_components(self.n_sites, src, dst, image)

    def summary(self) -> dict:
        """Sites per class, hops per class with lengths, exclusions and dimensionality (unit cell)."""
        sites = {name: int(np.sum(self.unit_class == k)) for k, name in enumerate(self.class_names)}
        hops = {name: {"length_A": float(self.hop_class_lengths[k]),
                       "per_cell": int(np.sum(self.hop_class == k))}
                for k, name in enumerate(self.hop_class_names)}
        return {"sites_per_class": sites, "hops_per_class": hops,
                "exclusion_pairs_per_cell": len(self.exclusions) // 2,
                "interaction_shells_A": [float(x) for x in self.shell_lengths],
                "dimensionality": self.dimensionality}
