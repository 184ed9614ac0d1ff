"""Climbing-image NEB between two endpoint structures, cached on disk and resumable.

Barrier conventions (design.md): with endpoint energies E_i, E_f and the highest image E_max,
``barrier_forward = E_max - E_i``, ``barrier_backward = E_max - E_f``, ``dE = E_f - E_i`` and the
kinetically resolved barrier ``E_KRA = E_max - (E_i + E_f) / 2``, so that the engine's
``Ea = max(E_KRA + dE/2, dE, 0)`` gives back the forward barrier (and ``E_KRA - dE/2`` the backward one).

Method (ASE, ``ase.mep.NEB``): endpoints relaxed at fixed cell (BFGS), the band interpolated with IDPP
(Smidstrup et al., J. Chem. Phys. 140, 214106 (2014)) under the minimum-image convention, relaxed with
FIRE first without and then with the climbing image (Henkelman, Uberuaga, Jonsson, J. Chem. Phys.
113, 9901 (2000)), improved tangent. Every finished stage is written to the cache directory as it
completes (and the band every few steps), so a killed run resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from ase.filters import FrechetCellFilter
from ase.geometry import find_mic
from ase.io import read, write
from ase.mep import NEB
from ase.optimize import BFGS, FIRE

from kmc.exceptions import ConfigError, ConvergenceError, StructureError

__all__ = ["NEBSettings", "NEBResult", "barriers_from_energies", "read_endpoint", "check_endpoints",
           "relax", "neb_path", "require_converged", "stored_energy"]


@dataclass(frozen=True)
class NEBSettings:
    """Numerical settings of one NEB calculation (all recorded with the result)."""

    n_images: int = 5               #: intermediate images (endpoints not counted)
    fmax_eV_A: float = 0.05         #: force tolerance of the climbing-image stage
    pre_fmax_eV_A: float = 0.15     #: force tolerance of the stage without climbing image
    spring_eV_A2: float = 0.1       #: NEB spring constant
    max_steps: int = 400            #: optimizer steps per stage
    relax_endpoints: bool = True    #: relax both endpoints at fixed cell before the band
    endpoint_fmax_eV_A: float = 0.03
    endpoint_max_steps: int = 300
    climb: bool = True
    save_every: int = 5             #: write the band to the cache every this many steps

    def __post_init__(self) -> None:
        if self.n_images < 1:
            raise StructureError(f"a NEB needs at least 1 intermediate image, got {self.n_images}; "
                                 "use --images 3 or more.")
        if not (self.fmax_eV_A > 0 and self.pre_fmax_eV_A > 0 and self.endpoint_fmax_eV_A > 0):
            raise StructureError("force tolerances must be positive; use e.g. --fmax 0.05.")


@dataclass
class NEBResult:
    """One converged (or not) band with its barriers and provenance."""

    energies_eV: list[float]          #: total energies of all images, endpoints included
    path_A: list[float]               #: cumulative image distance along the band
    barrier_forward_eV: float
    barrier_backward_eV: float
    E_KRA_eV: float
    dE_eV: float
    converged: bool
    moving_atom: int
    hop_length_A: float
    max_force_eV_A: float
    steps: int
    force_calls: int
    wall_s: float
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    band_file: str | None = None      #: the converged band (extxyz) in the cache, if any

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the ``kmc neb --json`` output)."""
        return asdict(self)


def barriers_from_energies(energies: np.ndarray | list[float]) -> dict[str, float]:
    """Forward/backward barriers, dE and E_KRA of a band from its image energies.

    Parameters
    ----------
    energies
        Total energies of the images in order, the two endpoints included (eV).

    Returns
    -------
    dict
        ``barrier_forward_eV``, ``barrier_backward_eV``, ``dE_eV``, ``E_KRA_eV``.
    """
    e = np.asarray(energies, dtype=float)
    if e.ndim != 1 or len(e) < 3 or not np.all(np.isfinite(e)):
        raise StructureError("a band needs at least 3 finite image energies (two endpoints and one image).")
    e_max = float(e.max())
    return {"barrier_forward_eV": e_max - float(e[0]), "barrier_backward_eV": e_max - float(e[-1]),
            "dE_eV": float(e[-1] - e[0]), "E_KRA_eV": e_max - 0.5 * float(e[0] + e[-1])}


def read_endpoint(path: str | Path):
    """Read one endpoint structure (POSCAR/CONTCAR, CIF, extxyz, anything ``ase.io.read`` knows)."""
    p = Path(path)
    if not p.is_file():
        raise StructureError(f"endpoint file {str(p)!r} does not exist; give a POSCAR, CIF or extxyz file.")
    try:
        atoms = read(str(p), format="vasp") if p.name.upper() in ("POSCAR", "CONTCAR") else read(str(p))
    except Exception as exc:  # noqa: BLE001 - ASE raises many types for unreadable files
        raise StructureError(f"cannot read endpoint {str(p)!r} ({type(exc).__name__}: {exc}); "
                             "give a POSCAR, CIF or extxyz file.") from None
    if len(atoms) == 0:
        raise StructureError(f"endpoint {str(p)!r} holds no atoms.")
    return atoms


def check_endpoints(initial, final) -> tuple[int, float]:
    """Check two endpoints describe one hop; return (moving atom index, hop length in Å).

    Same atoms in the same order, same cell; the moving atom is the one with the largest
    minimum-image displacement.
    """
    if len(initial) != len(final) or list(initial.numbers) != list(final.numbers):
        raise StructureError("the endpoints must hold the same atoms in the same order "
                             f"({initial.get_chemical_formula()} vs {final.get_chemical_formula()}).")
    if not np.allclose(initial.cell.array, final.cell.array, atol=1e-3):
        raise StructureError("the endpoints must share one cell (lattice vectors differ by more than 1e-3 Å).")

    d, dist = find_mic(final.positions - initial.positions, initial.cell, pbc=True)
    moving = int(np.argmax(dist))
    if dist[moving] < 0.3:
        raise StructureError("no atom moves by more than 0.3 Å between the endpoints; they are one "
                             "configuration, not a hop.")
    return moving, float(dist[moving])


def _key(initial, final, calculator: str, settings: NEBSettings) -> str:
    h = hashlib.sha256()
    for a in (initial, final):
        h.update(np.ascontiguousarray(a.numbers, dtype=np.int64).tobytes())
        h.update(np.round(a.positions, 6).tobytes())
        h.update(np.round(a.cell.array, 6).tobytes())
    h.update(json.dumps([calculator, asdict(settings)], sort_keys=True).encode())
    return h.hexdigest()[:16]


def relax(atoms, calculator, fmax: float, max_steps: int, label: str = "structure",
          logfile: str | None = None, cell: bool = False) -> tuple[Any, int]:
    """Relax atomic positions with BFGS, at fixed cell or (``cell=True``) together with the cell
    (ASE's FrechetCellFilter: ``fmax`` then also bounds the stress times the volume per atom);
    return (atoms, steps).

    Raises
    ------
    ConvergenceError
        If the largest force is still above ``fmax`` after ``max_steps`` steps.
    ConfigError
        If ``cell`` is asked of a calculator that computes no stress.
    """
    atoms = atoms.copy()
    atoms.calc = calculator
    target = atoms
    if cell:
        if "stress" not in getattr(calculator, "implemented_properties", ["stress"]):
            raise ConfigError(f"the calculator {type(calculator).__name__} computes no stress, so the cell "
                              "cannot be relaxed; relax at fixed cell (drop --relax-cell).")
        target = FrechetCellFilter(atoms)
    opt = BFGS(target, logfile=logfile)
    ok = opt.run(fmax=fmax, steps=max_steps)
    f = float(np.sqrt((target.get_forces() ** 2).sum(axis=1)).max())
    if not ok and f > fmax:
        raise ConvergenceError(f"relaxation of {label} did not converge: max force {f:.3f} eV/Å after "
                               f"{max_steps} steps (tolerance {fmax}); raise the step budget or check the "
                               "structure (overlapping atoms?).")
    atoms.calc = None
    return atoms, int(opt.nsteps)


def _write_atomic(path: Path, images: list, **kw) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp), images, format="extxyz", **kw)
    tmp.replace(path)


def stored_energy(atoms) -> float | None:
    """Energy kept with a structure read back from a cache file, or None.

    ASE's extxyz reader turns an ``energy`` entry of the comment line into a
    SinglePointCalculator result rather than ``atoms.info``, so both places are checked.
    """
    if "energy" in atoms.info:
        return float(atoms.info["energy"])
    calc = getattr(atoms, "calc", None)  # only a stored result: a live calculator may be shared
    if isinstance(calc, SinglePointCalculator) and "energy" in calc.results:
        return float(calc.results["energy"])
    return None


class _ImageCalculator(Calculator):
    """One band image's own view of the shared calculator, caching that image's energy and forces.

    ASE's NEB and FIRE ask every image for its forces up to three times per step; a calculator shared
    by all images remembers only the last structure it saw, so each request was a new evaluation.
    ``counter[0]`` counts the evaluations actually made (the result's ``force_calls``).
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, shared, counter: list[int]) -> None:
        super().__init__()
        self.shared = shared
        self.counter = counter

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = self.shared
        self.results = {"energy": float(a.get_potential_energy()), "forces": np.array(a.get_forces())}
        self.counter[0] += 1


def neb_path(initial, final, backend, settings: NEBSettings = NEBSettings(),
             cache_dir: str | Path | None = None,
             log: Callable[[str], None] | None = None) -> NEBResult:
    """Climbing-image NEB between two endpoints with the energy backend ``backend``.

    Parameters
    ----------
    initial, final
        ASE Atoms of the two endpoints (same atoms, same order, same cell).
    backend
        A :class:`kmc.parametrize.calculators.Backend`.
    settings
        Numerical settings.
    cache_dir
        Directory for finished stages (relaxed endpoints, partial and final band, result JSON); a
        rerun with the same inputs and settings resumes from it and recomputes nothing finished.
    log
        Called with one progress line every few steps (default: stderr).

    Returns
    -------
    NEBResult
        Check ``converged``: an unconverged band is returned (with its barriers) so callers can
        report it; :func:`kmc.cli.main` turns it into an error.
    """
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    moving, hop = check_endpoints(initial, final)
    key = _key(initial, final, backend.name, settings)
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        done = cache / f"neb_{key}.json"
        if done.is_file():
            log(f"neb {key}: cached result {done}")
            data = json.loads(done.read_text())
            band = cache / f"neb_{key}_final.extxyz"
            data.setdefault("band_file", str(band) if band.is_file() else None)
            return NEBResult(**data)
    t0 = time.perf_counter()
    calls = 0
    steps = 0

    # 1. endpoints (cached)
    ends_file = cache / f"neb_{key}_endpoints.extxyz" if cache else None
    if ends_file is not None and ends_file.is_file():
        ends = read(str(ends_file), index=":")
        for a in ends:  # extxyz may hand the stored energy back through a single-point calculator
            if "kmc_energy_eV" not in a.info and a.calc is not None:
                a.info["kmc_energy_eV"] = float(a.get_potential_energy())
            a.calc = None
        log(f"neb {key}: relaxed endpoints from cache")
    else:
        ends = []
        for label, a in (("initial endpoint", initial), ("final endpoint", final)):
            if settings.relax_endpoints:
                a, n = relax(a, backend.calculator, settings.endpoint_fmax_eV_A, settings.endpoint_max_steps,
                             label)
                calls += n + 1
                log(f"neb {key}: {label} relaxed in {n} steps")
            a = a.copy()
            b = a.copy()
            b.calc = backend.calculator
            a.info["kmc_energy_eV"] = float(b.get_potential_energy())
            calls += 1
            ends.append(a)
        if ends_file is not None:
            _write_atomic(ends_file, ends)

    # 2. band: resume a partial one or interpolate
    band_file = cache / f"neb_{key}_band.extxyz" if cache else None
    stage = "pre"
    images = None
    if band_file is not None and band_file.is_file():
        images = read(str(band_file), index=":")
        stage = images[0].info.get("stage", "pre")
        steps = int(images[0].info.get("steps", 0))
        log(f"neb {key}: resuming band ({stage} stage, {steps} steps done)")
    if images is None or len(images) != settings.n_images + 2:
        images = [ends[0].copy()] + [ends[0].copy() for _ in range(settings.n_images)] + [ends[1].copy()]
        NEB(images, method="improvedtangent").interpolate(method="idpp", mic=True)
        stage = "pre"
    for im in images:
        im.info.pop("energy", None)
        im.calc = None
    e0, e1 = float(ends[0].info["kmc_energy_eV"]), float(ends[1].info["kmc_energy_eV"])

    # endpoints stay fixed: a single-point calculator hands NEB their (cached) energies
    for im, e in ((images[0], e0), (images[-1], e1)):
        im.calc = SinglePointCalculator(im, energy=e, forces=np.zeros((len(im), 3)))
    band_calls = [0]
    for im in images[1:-1]:
        im.calc = _ImageCalculator(backend.calculator, band_calls)
    converged = False
    while stage != "done":
        climb = stage == "climb"
        neb = NEB(images, k=settings.spring_eV_A2, climb=climb, method="improvedtangent")
        opt = FIRE(neb, logfile=None)
        fmax = settings.fmax_eV_A if climb else settings.pre_fmax_eV_A

        def observe(stage=stage, opt=opt, neb=neb) -> None:
            nonlocal steps
            steps += 1
            if band_file is not None and steps % settings.save_every == 0:
                snap = [im.copy() for im in images]
                snap[0].info.update({"stage": stage, "steps": steps})
                _write_atomic(band_file, snap)
            if steps % 10 == 0:
                f = float(np.sqrt((neb.get_forces() ** 2).sum(axis=1)).max())
                log(f"neb {key}: {stage} step {steps}, max force {f:.3f} eV/Å, "
                    f"{time.perf_counter() - t0:.0f} s")

        opt.attach(observe, interval=1)
        ok = opt.run(fmax=fmax, steps=settings.max_steps)
        if stage == "pre":
            stage = "climb" if settings.climb else "done"
            converged = bool(ok) if not settings.climb else converged
        else:
            stage = "done"
            converged = bool(ok)
        if band_file is not None:
            snap = [im.copy() for im in images]
            snap[0].info.update({"stage": stage, "steps": steps})
            _write_atomic(band_file, snap)
    f_max = float(np.sqrt((NEB(images, climb=settings.climb, method="improvedtangent").get_forces() ** 2)
                          .sum(axis=1)).max())
    energies = [e0, *(float(im.get_potential_energy()) for im in images[1:-1]), e1]
    calls += band_calls[0]
    pos = np.array([im.positions for im in images])

    seg = [float(np.linalg.norm(find_mic(pos[i + 1] - pos[i], images[0].cell, pbc=True)[0]))
           for i in range(len(images) - 1)]
    b = barriers_from_energies(energies)
    result = NEBResult(energies_eV=energies, path_A=[0.0, *np.cumsum(seg).tolist()],
                       converged=converged, moving_atom=moving, hop_length_A=hop, max_force_eV_A=f_max,
                       steps=steps, force_calls=calls, wall_s=time.perf_counter() - t0,
                       settings=asdict(settings), provenance=dict(backend.provenance), **b)
    if cache is not None:
        final_band = [im.copy() for im in images]
        for im, e in zip(final_band, energies):
            im.calc = None
            im.info = {"energy": e}
        _write_atomic(cache / f"neb_{key}_final.extxyz", final_band)
        result.band_file = str(cache / f"neb_{key}_final.extxyz")
        tmp = cache / f"neb_{key}.json.tmp"
        tmp.write_text(json.dumps(result.to_dict(), indent=1))
        tmp.replace(cache / f"neb_{key}.json")
    return result


def require_converged(result: NEBResult) -> NEBResult:
    """Raise :class:`ConvergenceError` with the numbers if the band did not converge."""
    if not result.converged:
        raise ConvergenceError(f"the NEB did not converge: max force {result.max_force_eV_A:.3f} eV/Å after "
                               f"{result.steps} steps (tolerance {result.settings.get('fmax_eV_A')}); "
                               "raise --steps, add images, or check the endpoints.")
    if not math.isfinite(result.E_KRA_eV):
        raise ConvergenceError("the NEB energies are not finite; check the calculator and the endpoints.")
    return result
