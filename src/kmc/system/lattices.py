"""Teaching lattices built as pymatgen structures, so they go through the same network path as
real frameworks.  Every site is a mobile-ion site (species Li); hops join nearest neighbours.

Lattice constants: for sc, bcc, fcc and diamond the edge of the conventional cubic cell; for chain,
square and triangular the nearest-neighbour distance; for honeycomb the hexagonal lattice parameter
(nearest-neighbour distance a/sqrt(3)).  Low-dimensional lattices get a padding axis of 10 a so no
hop or interaction crosses it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Lattice, Structure

from kmc.exceptions import ConfigError

_PAD = 10.0


@dataclass(frozen=True)
class TeachingLattice:
    """A teaching lattice: its unit cell and the facts the exact results need."""

    name: str
    structure: Structure
    nn_distance_A: float
    coordination: int
    dimensionality: int


def _make(name: str, a: float) -> tuple[Lattice, list[list[float]], float, int, int]:
    s3 = np.sqrt(3.0)
    if name == "chain":
        return Lattice.orthorhombic(a, _PAD * a, _PAD * a), [[0, 0, 0]], a, 2, 1
    if name == "square":
        return Lattice.tetragonal(a, _PAD * a), [[0, 0, 0]], a, 4, 2
    if name == "triangular":
        return Lattice.hexagonal(a, _PAD * a), [[0, 0, 0]], a, 6, 2
    if name == "honeycomb":
        return Lattice.hexagonal(a, _PAD * a), [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0]], a / s3, 3, 2
    if name == "sc":
        return Lattice.cubic(a), [[0, 0, 0]], a, 6, 3
    if name == "bcc":
        return Lattice.cubic(a), [[0, 0, 0], [0.5, 0.5, 0.5]], a * s3 / 2, 8, 3
    if name == "fcc":
        return (Lattice.cubic(a), [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]],
                a / np.sqrt(2.0), 12, 3)
    if name == "diamond":
        fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
        coords = np.vstack([fcc, fcc + 0.25]).tolist()
        return Lattice.cubic(a), coords, a * s3 / 4, 4, 3
    raise ConfigError(f"unknown teaching lattice {name!r}; choose one of {', '.join(LATTICES)}.")


LATTICES = ("chain", "square", "triangular", "honeycomb", "sc", "bcc", "fcc", "diamond")


def teaching_lattice(name: str, lattice_constant_A: float = 1.0) -> TeachingLattice:
    """Build a teaching lattice.

    Parameters
    ----------
    name : str
        One of ``chain, square, triangular, honeycomb, sc, bcc, fcc, diamond``.
    lattice_constant_A : float
        Lattice constant in Å (see the module docstring for its meaning per lattice).
    """
    if not (np.isfinite(lattice_constant_A) and lattice_constant_A > 0):
        raise ConfigError(f"lattice_constant_A must be a positive number, got {lattice_constant_A!r}.")
    lattice, coords, nn, z, d = _make(name, float(lattice_constant_A))
    structure = Structure(lattice, ["Li"] * len(coords), coords)
    return TeachingLattice(name, structure, float(nn), z, d)
