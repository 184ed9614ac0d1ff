"""Analytic ASE calculators whose answers are known exactly: for tests, tutorials and checks.

* :class:`DoubleWell`: one atom in a tilted quartic double well (harmonic across it); the NEB
  barrier is the 1D maximum of the well, which :meth:`DoubleWell.exact_barriers` computes without
  any NEB code.
* :class:`LatticeToy`: mobile ions tethered to the sites of a lattice, with a site energy per site
  class and a pair term per (class, class, distance) orbit between the sites the ions sit on, plus
  optional deterministic noise and a short-range repulsion core that pushes close pairs off their
  sites. Its lattice Hamiltonian is, by construction, exactly what ``kmc parametrize`` fits.

Neither is a physical model of any material.
"""
from __future__ import annotations

import hashlib

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

__all__ = ["DoubleWell", "LatticeToy"]


class DoubleWell(Calculator):
    """``V = height (1 - s^2)^2 + tilt s + k (y'^2 + z'^2) / 2`` on atom ``index``, ``s = x'/half``.

    ``x', y', z'`` are the atom's coordinates relative to ``centre``; every other atom feels nothing.

    Parameters
    ----------
    height_eV, tilt_eV
        Barrier height of the symmetric well and the linear tilt across it.
    half_width_A
        Distance of the symmetric minima from the centre.
    k_eV_A2
        Transverse spring constant.
    centre_A
        Cartesian centre of the well.
    index
        The moving atom.
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, height_eV: float = 0.3, tilt_eV: float = 0.05, half_width_A: float = 1.2,
                 k_eV_A2: float = 5.0, centre_A=(5.0, 5.0, 5.0), index: int = 0, **kw) -> None:
        super().__init__(**kw)
        self.h, self.t, self.a, self.k = float(height_eV), float(tilt_eV), float(half_width_A), float(k_eV_A2)
        self.c = np.asarray(centre_A, float)
        self.index = int(index)

    def line(self, x: np.ndarray) -> np.ndarray:
        """Energy along the axis of the well (y' = z' = 0) at ``x' = x``."""
        s = np.asarray(x, float) / self.a
        return self.h * (1 - s ** 2) ** 2 + self.t * s

    def exact_barriers(self) -> dict[str, float]:
        """Forward (from the left minimum), backward barrier, dE and E_KRA from the 1D profile."""
        from scipy.optimize import minimize_scalar

        f = self.line
        left = minimize_scalar(f, bounds=(-2 * self.a, 0), method="bounded", options={"xatol": 1e-10})
        right = minimize_scalar(f, bounds=(0, 2 * self.a), method="bounded", options={"xatol": 1e-10})
        top = minimize_scalar(lambda x: -f(x), bounds=(left.x, right.x), method="bounded",
                              options={"xatol": 1e-10})
        e_i, e_f, e_max = float(f(left.x)), float(f(right.x)), float(f(top.x))
        return {"barrier_forward_eV": e_max - e_i, "barrier_backward_eV": e_max - e_f,
                "dE_eV": e_f - e_i, "E_KRA_eV": e_max - (e_i + e_f) / 2,
                "x_left_A": float(left.x), "x_right_A": float(right.x)}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        r = self.atoms.positions[self.index] - self.c
        s = r[0] / self.a
        e = self.h * (1 - s ** 2) ** 2 + self.t * s + 0.5 * self.k * (r[1] ** 2 + r[2] ** 2)
        f = np.zeros((len(self.atoms), 3))
        f[self.index] = [-(self.h * 2 * (1 - s ** 2) * (-2 * s) + self.t) / self.a,
                         -self.k * r[1], -self.k * r[2]]
        self.results = {"energy": float(e), "forces": f}


class LatticeToy(Calculator):
    """A lattice Hamiltonian as an ASE calculator.

    Each atom of ``species`` is assigned to its nearest site (unit-cell sites ``unit_frac`` of
    ``unit_lattice``, repeated periodically); the energy is the sum of the site energies of the
    assigned sites, the pair terms between assigned sites (looked up by class pair and distance
    rounded to 0.01 Å), a tether ``k |r - R_site|^2 / 2`` per atom, and a repulsion
    ``B (r_core - r)^2`` between atoms of ``species`` closer than ``r_core``. The site and pair
    terms do not depend on the exact positions, so without the core every configuration is
    already relaxed. Other atoms feel nothing.

    Parameters
    ----------
    unit_lattice, unit_frac, unit_class
        Sites of the unit cell (rows of the lattice in Å; fractional coordinates; class names).
    site_energy_eV
        Class name -> site energy.
    pair_eV
        ``(class_a, class_b, distance_A)`` -> pair term (either class order).
    noise_eV
        Standard deviation of a deterministic pseudo-random energy (hash of the occupied sites).
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, unit_lattice, unit_frac, unit_class, site_energy_eV: dict,
                 pair_eV: dict, species: str = "Li", k_eV_A2: float = 1.0,
                 r_core_A: float = 0.0, core_eV_A2: float = 5.0, noise_eV: float = 0.0,
                 **kw) -> None:
        super().__init__(**kw)
        self.L = np.asarray(unit_lattice, float)
        self.frac = np.mod(np.asarray(unit_frac, float), 1.0)
        self.cls = list(unit_class)
        self.e_site = dict(site_energy_eV)
        self.pair = {}
        for (a, b, d), j in pair_eV.items():
            self.pair[(a, b, round(float(d), 2))] = float(j)
            self.pair[(b, a, round(float(d), 2))] = float(j)
        self.species = species
        self.k, self.r_core, self.core, self.noise = float(k_eV_A2), float(r_core_A), float(core_eV_A2), \
            float(noise_eV)

    def _assign(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest unit site of each position and the Cartesian position of that site image."""
        f = pos @ np.linalg.inv(self.L)
        d = f[:, None, :] - self.frac[None, :, :]
        d -= np.rint(d)
        dist = np.linalg.norm(d @ self.L, axis=2)
        u = np.argmin(dist, axis=1)
        site = pos - d[np.arange(len(pos)), u] @ self.L
        return u, site

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        a = self.atoms
        idx = np.array([i for i, s in enumerate(a.get_chemical_symbols()) if s == self.species], int)
        pos = a.positions[idx]
        u, site = self._assign(pos)
        e = sum(self.e_site.get(self.cls[k], 0.0) for k in u)
        f = np.zeros((len(a), 3))
        f[idx] = -self.k * (pos - site)
        e += 0.5 * self.k * float(((pos - site) ** 2).sum())
        from ase.geometry import get_distances

        if len(idx) > 1:
            dv_site, d_site = get_distances(site, cell=a.cell, pbc=a.pbc)
            dv, d = get_distances(pos, cell=a.cell, pbc=a.pbc)
            for i in range(len(idx)):
                for j in range(i + 1, len(idx)):
                    e += self.pair.get((self.cls[u[i]], self.cls[u[j]], round(float(d_site[i, j]), 2)), 0.0)
                    if d[i, j] < self.r_core:
                        e += self.core * (self.r_core - d[i, j]) ** 2
                        g = -2 * self.core * (self.r_core - d[i, j]) * dv[i, j] / d[i, j]  # dE/dr_j
                        f[idx[j]] -= g
                        f[idx[i]] += g
        if self.noise:  # the same occupied sites always get the same noise
            fs = np.mod(np.rint(site @ np.linalg.inv(np.asarray(a.cell)) * 1000), 1000).astype(np.int64)
            fs = fs[np.lexsort(fs.T[::-1])]
            seed = int.from_bytes(hashlib.sha256(fs.tobytes()).digest()[:8], "little")
            e += self.noise * float(np.random.default_rng(seed).standard_normal())
        self.results = {"energy": float(e), "forces": f}
