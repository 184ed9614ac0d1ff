"""Known arrangements of the mobile ions: a structure file of the same framework -> which sites its
ions occupy.

Used for ``[occupancy] start_structure`` (a run that starts from an ordered phase, e.g. tetragonal
Li7La3Zr2O12 on the cubic garnet lattice) and by ``kmc parametrize --include``. The framework of the
given structure is matched to the lattice's framework with pymatgen's ``StructureMatcher`` (any
origin and axis setting; the lattice is scaled, so a relaxed or distorted cell matches), and every
mobile ion goes to its nearest site in fractional coordinates.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

from kmc.exceptions import StructureError

__all__ = ["read_structure", "match_framework", "site_occupancy"]


def read_structure(path: str | Path):
    """A pymatgen Structure from a CIF or POSCAR, or one sentence (StructureError) saying why not."""
    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = Structure.from_file(str(p))
    except Exception as exc:  # noqa: BLE001 - pymatgen raises many kinds for a bad file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StructureError(f"cannot read a crystal structure from {p.name} ({reason[:120]}); give a "
                             "valid CIF or POSCAR.") from None
    if len(s) == 0:
        raise StructureError(f"{p.name} holds no atoms; give a structure with its atom sites.")
    return s


def match_framework(reference, structure, mobile: str, label: str):
    """``structure`` brought into the setting of ``reference`` by matching their frameworks.

    Parameters
    ----------
    reference, structure
        pymatgen Structures of the same framework (``reference`` may hold mobile sites too; they
        are ignored, as are partly occupied sites).
    mobile
        The mobile species (left out of the match, carried along).
    label
        Name of ``structure`` for the error messages.

    Returns
    -------
    pymatgen.core.Structure
        A copy of ``structure``, made the same cell as ``reference`` and shifted onto it.

    Raises
    ------
    StructureError
        If the frameworks differ or do not match.
    """
    # lazy: StructureMatcher costs ~0.1 s; only matching a CIF to a framework needs it
    from pymatgen.analysis.structure_matcher import StructureMatcher

    s = structure.copy()
    s.remove_oxidation_states()
    if not s.is_ordered:
        raise StructureError(f"{label} has partly occupied sites; give an ordered structure.")
    frame = s.copy()
    frame.remove_species([mobile])
    keep = [site for site in reference if site.is_ordered and site.specie.symbol != mobile]
    host = Structure.from_sites(keep)
    host.remove_oxidation_states()
    if frame.composition.reduced_formula != host.composition.reduced_formula or len(frame) != len(host):
        raise StructureError(f"{label} holds the framework {frame.composition.formula} and the lattice "
                             f"{host.composition.formula}; give a structure of the same cell (same "
                             "framework atoms, any setting).")
    matcher = StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10, primitive_cell=False, scale=True,
                               attempt_supercell=False)
    found = matcher.get_transformation(host, frame)
    if found is None:
        raise StructureError(f"the framework of {label} does not match the lattice's (pymatgen "
                             "StructureMatcher); give a structure of the same framework.")
    matrix, shift, _ = found
    s.make_supercell(matrix)
    s.translate_sites(list(range(len(s))), shift, frac_coords=True, to_unit_cell=True)
    return s


def site_occupancy(sites_frac: np.ndarray, lattice: np.ndarray, reference, source, mobile: str,
                   tolerance_A: float = 0.5, label: str | None = None) -> np.ndarray:
    """Which of the sites ``sites_frac`` (fractional in ``lattice``) the mobile ions of ``source``
    occupy.

    Parameters
    ----------
    sites_frac, lattice
        The mobile-ion sites of one cell of the lattice (rows of ``lattice`` are the cell vectors).
    reference
        pymatgen Structure of that cell with its framework atoms.
    source
        A structure file path, or a pymatgen Structure, of the same framework.
    mobile
        Mobile species.
    tolerance_A
        Largest distance of an ion from its nearest site.
    label
        Name of a Structure ``source`` for the error messages.

    Returns
    -------
    numpy.ndarray of bool
        One entry per site. An ion equidistant (within 1 mÅ) from several sites takes the one
        with the lowest index.

    Raises
    ------
    StructureError
        If the file cannot be read, the framework does not match, an ion is farther than
        ``tolerance_A`` from every site, or two ions share a site.
    """
    if isinstance(source, (str, Path)):
        label, structure = Path(source).name, read_structure(source)
    else:
        label, structure = label or "the given structure", source
    s = match_framework(reference, structure, mobile, label)
    frac = np.array([x.frac_coords for x in s if x.specie.symbol == mobile])
    if not len(frac):
        raise StructureError(f"{label} holds no {mobile}; give a structure with its mobile ions.")
    d = Lattice(np.asarray(lattice, float)).get_all_distances(frac, np.asarray(sites_frac, float))
    # an ion midway between two sites (t-LLZO's octahedral Li at a cage centre, 0.434 Å from both
    # split 96h sites) is a tie: decided by floating-point noise it changed with the distance code;
    # rounded to 1 mÅ, the tie goes to the lower site index, whatever computes the distances
    near, dist = np.round(d, 3).argmin(axis=1), d.min(axis=1)
    if dist.max() > tolerance_A or len(set(near.tolist())) < len(near):
        raise StructureError(f"the {mobile} of {label} do not sit on distinct sites of this lattice "
                             f"(farthest {dist.max():.2f} Å from its nearest site, tolerance "
                             f"{tolerance_A:g} Å); give a structure of the same site network.")
    occ = np.zeros(len(sites_frac), bool)
    occ[near] = True
    return occ
