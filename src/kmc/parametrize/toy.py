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
from ase.geometry import get_distances
from scipy.optimize import minimize_scalar

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
    """A lattice Hamiltonian as a smooth ASE calculator.

    Each atom of ``species`` sits in a soft-min well over the sites (unit-cell sites ``unit_frac``
    of ``unit_lattice``, repeated periodically): ``-tau log sum_s exp(-k |r - R_s|^2 / 2 tau)``,
    with weights ``w_s`` (the soft-max of the same exponents) that are 1 on a site and switch
    smoothly between sites. The energy adds the weighted site energies, the weighted pair terms
    between the sites of two atoms (looked up by class pair and distance rounded to 0.01 Å), a
    random but fixed energy per supercell site of standard deviation ``noise_eV`` (a disorder no
    per-class model can fit: the fit's noise), and a repulsion ``B (r_core - r)^2`` between atoms
    closer than ``r_core``. On the sites, the energy is exactly the lattice Hamiltonian plus the
    noise; between them it is smooth, so NEB converges. Forces are analytic (tested against finite
    differences in the tests). Other atoms feel nothing, except that an atom of an element in
    ``dopant_eV`` adds its term to every state of a mobile atom at that distance from it (a
    dopant-mobile pair term; the dopants themselves feel no force).

    Parameters
    ----------
    unit_lattice, unit_frac, unit_class
        Sites of the unit cell (rows of the lattice in Å; fractional coordinates; class names).
    site_energy_eV
        Class name -> site energy.
    pair_eV
        ``(class_a, class_b, distance_A)`` -> pair term (either class order).
    dopant_eV
        ``(element, class, distance_A)`` -> term between an atom of ``element`` and a mobile atom
        on a site of ``class`` at that distance (0.01 Å).
    dopant_core_A
        The repulsion ``B (r_core - r)^2`` also between a mobile atom and an atom of an element of
        ``dopant_eV`` closer than this (pushes ions off the sites next to a dopant).
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, unit_lattice, unit_frac, unit_class, site_energy_eV: dict,
                 pair_eV: dict, species: str = "Li", k_eV_A2: float = 0.4, tau_eV: float = 0.02,
                 r_core_A: float = 0.0, core_eV_A2: float = 5.0, noise_eV: float = 0.0,
                 dopant_eV: dict | None = None, dopant_core_A: float = 0.0, **kw) -> None:
        super().__init__(**kw)
        self.L = np.asarray(unit_lattice, float)
        self.frac = np.mod(np.asarray(unit_frac, float), 1.0)
        self.cls = list(unit_class)
        self.e_unit = np.array([float(site_energy_eV.get(c, 0.0)) for c in self.cls])
        self.pair = {}
        for (a, b, d), j in pair_eV.items():
            self.pair[(a, b, round(float(d), 2))] = float(j)
            self.pair[(b, a, round(float(d), 2))] = float(j)
        self.species = species
        self.dopant = {(e, c, round(float(d), 2)): float(j) for (e, c, d), j in (dopant_eV or {}).items()}
        self.dopant_core = float(dopant_core_A)
        self.k, self.tau = float(k_eV_A2), float(tau_eV)
        self.r_core, self.core, self.noise = float(r_core_A), float(core_eV_A2), float(noise_eV)

    def _eta(self, key: tuple) -> float:
        """The fixed random energy of the supercell site at fractional position ``key`` / 1000."""
        memo = self.__dict__.setdefault("_eta_memo", {})
        if key not in memo:
            seed = int.from_bytes(hashlib.sha256(np.array(key, np.int64).tobytes()).digest()[:8], "little")
            memo[key] = float(np.random.default_rng(seed).standard_normal())
        return memo[key]

    def _smooth_energy(self, pos: np.ndarray, cell: np.ndarray,
                       dopants: list[tuple[str, np.ndarray]] = ()) -> tuple[float, np.ndarray]:
        """Energy and its gradient with respect to the positions of the mobile atoms
        (``dopants``: element and position of each atom with dopant terms)."""
        f = pos @ np.linalg.inv(self.L)
        d = f[:, None, :] - self.frac[None, :, :]
        d -= np.rint(d)
        dc = d @ self.L                                     # r_i - R_ia, R_ia the nearest image of site a
        R = pos[:, None, :] - dc
        x = -self.k * (dc ** 2).sum(axis=2) / (2 * self.tau)
        m = x.max(axis=1, keepdims=True)
        w = np.exp(x - m)
        z = w.sum(axis=1, keepdims=True)
        e = float((-self.tau * (np.log(z) + m)).sum())
        w /= z
        grad = self.k * np.einsum("ia,iax->ix", w, dc)    # of the soft-min wells
        g = np.broadcast_to(self.e_unit[None, :], w.shape).copy()  # energy of atom i in state a
        inv = np.linalg.inv(cell)
        if self.noise:
            fr = np.mod(np.rint(R @ inv * 1000), 1000).astype(np.int64).reshape(-1, 3)
            g += self.noise * np.array([self._eta(tuple(row)) for row in fr]).reshape(w.shape)
        for el, p in dopants:   # a fixed term per state: enters like the site energy
            fr = (R - p) @ inv
            dint = np.rint(np.linalg.norm((fr - np.rint(fr)) @ cell, axis=-1) * 100).astype(np.int64)
            for a in range(w.shape[1]):
                for i in range(w.shape[0]):
                    g[i, a] += self.dopant.get((el, self.cls[a], round(dint[i, a] / 100, 2)), 0.0)
        e += float((w * g).sum())
        n, u = w.shape
        if n > 1 and self.pair:
            dv = R[None, :, None, :, :] - R[:, None, :, None, :]     # (i, j, a, b, 3)
            fr = dv @ inv
            dist = np.linalg.norm((fr - np.rint(fr)) @ cell, axis=-1)
            dint = np.rint(dist * 100).astype(np.int64)
            J = np.zeros_like(dist)
            for a in range(u):
                for b in range(u):
                    sub = dint[:, :, a, b]
                    for dd in np.unique(sub):
                        jv = self.pair.get((self.cls[a], self.cls[b], round(dd / 100, 2)))
                        if jv:
                            J[:, :, a, b][sub == dd] = jv
            J[np.arange(n), np.arange(n)] = 0.0
            field = np.einsum("jb,ijab->ia", w, J)
            e += 0.5 * float((w * field).sum())
            g += field
        # d w_ia / d r_i = w_ia (dx_ia - sum_c w_ic dx_ic), dx_ia = -k (r_i - R_ia) / tau
        dx = -self.k * dc / self.tau
        mean = np.einsum("ic,icx->ix", w, dx)
        grad += np.einsum("ia,ia,iax->ix", g, w, dx - mean[:, None, :])
        return e, grad

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        a = self.atoms
        cell = np.asarray(a.cell)
        idx = np.array([i for i, s in enumerate(a.get_chemical_symbols()) if s == self.species], int)
        pos = a.positions[idx].copy()
        els = {e for e, _, _ in self.dopant}
        dop = [(sym, a.positions[i]) for i, sym in enumerate(a.get_chemical_symbols()) if sym in els]
        e, grad = self._smooth_energy(pos, cell, dop)
        f = np.zeros((len(a), 3))
        f[idx] = -grad
        if self.r_core > 0 and len(idx) > 1:
            dv, d = get_distances(pos, cell=a.cell, pbc=a.pbc)
            for i in range(len(idx)):
                for j in range(i + 1, len(idx)):
                    if d[i, j] < self.r_core:
                        e += self.core * (self.r_core - d[i, j]) ** 2
                        g = -2 * self.core * (self.r_core - d[i, j]) * dv[i, j] / d[i, j]  # dE/dr_j
                        f[idx[j]] -= g
                        f[idx[i]] += g
        if self.dopant_core > 0 and dop:
            core_idx = [i for i, sym in enumerate(a.get_chemical_symbols()) if sym in els]
            for j in core_idx:
                dv, d = get_distances(pos, a.positions[j], cell=a.cell, pbc=a.pbc)
                for i in range(len(idx)):
                    r = d[i, 0]
                    if r < self.dopant_core:
                        e += self.core * (self.dopant_core - r) ** 2
                        f[idx[i]] -= 2 * self.core * (self.dopant_core - r) * dv[i, 0] / r  # away from it
        self.results = {"energy": float(e), "forces": f}
