"""``kmc parametrize``: structure -> sampled configurations -> relaxed energies -> fitted lattice
Hamiltonian + NEB barriers -> a framework model file (``model.toml``) and its data (``data.json``).

Steps (each relaxation and each NEB is cached on disk as it finishes, so a killed run resumes):

1. :func:`kmc.parametrize.lattice.load_problem`: sites, classes, hop classes, pair and dopant orbits.
2. Configurations: random arrangements at the charge-compensated ion count (dopant counts from 0
   to their maximum; vacancies when the mobile sublattice is full) that avoid every orbit shorter
   than the exclusion test cutoff, arrangements with one pair of every such short orbit (does it
   relax away?), then a second round in which the short orbits that did not relax away are
   allowed and every configuration draws random site-class weights, so that the class
   occupancies (e.g. garnet 24d versus 96h) are spread instead of all near the jammed typical
   one, then a few low-energy-biased ones (the lowest predicted by a first fit among many random
   candidates), then dopant tests (an ion forced next to one dopant) for the dopant orbits
   shorter than the cutoff that no earlier round tried; known structures (``include``: e.g. an
   ordered phase) join the first round. With ``join`` the short orbits are judged again on every
   run's placements together, and the fit takes every run's configurations.
3. Relaxation at fixed cell (BFGS), with ``relax_cell`` then together with the cell (the fitted
   energy holds the strain an arrangement induces), mapping back to the lattice: a short orbit whose pairs relax
   away in every test is a computed hard exclusion, recorded with its evidence; a configuration
   is fitted as the arrangement its ions relaxed into (every ion within the site tolerance of its
   own nearest site, no excluded pair), and is dropped when an ion ends between sites.
4. :func:`kmc.parametrize.fit.fit_hamiltonian`.
5. CI-NEB per hop class in several local environments (distinct neighbour occupancies), E_KRA's
   mean and spread; the attempt frequency from the curvature along the hop at the initial site.
6. :mod:`kmc.parametrize.writer`: model.toml and data.json, written to a temporary directory and
   renamed into place only when everything succeeded.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import multiprocessing
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
from ase.data import atomic_masses
from ase.geometry import find_mic
from ase.io import read
from scipy.constants import atomic_mass, electron_volt
from tqdm import tqdm

from kmc.config import InterstitialcyConfig
from kmc.exceptions import ConfigError, ConvergenceError, StructureError
from kmc.files import atomic_write_text, jsonable
from kmc.parametrize.calculators import Backend, get_calculator
from kmc.parametrize.fit import fit_hamiltonian
from kmc.parametrize.lattice import (
    Configuration,
    DopantSpec,
    LatticeProblem,
    load_problem,
)
from kmc.parametrize.neb import NEBSettings, check_endpoints, neb_path, relax, require_converged
from kmc.parametrize.writer import check_out_dir, model_toml, write_model_dir
from kmc.system.frameworks import computed_data, framework_names

__all__ = ["ParametrizeSettings", "ParametrizedModel", "parametrize", "attempt_frequency_THz", "rewrite_model"]


@dataclass(frozen=True)
class ParametrizeSettings:
    """Numbers that decide what is computed (all recorded in data.json and the model's provenance)."""

    n_configs: int = 40             #: random configurations
    n_low_energy: int = 6           #: low-energy-biased configurations added after a first fit
    n_exclusion_tests: int = 2      #: configurations per short orbit testing whether it relaxes away
    n_second_round: int | None = None  #: class-weighted configurations allowing the short orbits
    #: that did not relax away (None: half of n_configs when there is more than one site class or
    #: such an orbit, else 0)
    max_vacancies: int | None = None  #: extra vacancies (None: 2 when the mobile sublattice is full, else 0)
    n_environments: int = 3         #: NEB environments per hop class
    relax_fmax_eV_A: float = 0.05
    relax_max_steps: int = 300
    site_tolerance_A: float = 0.5   #: an ion farther than this from its site has left it
    relax_cell: bool = False        #: after the fixed-cell relaxation, relax positions and cell
    #: together and fit that energy (it then holds the strain an arrangement induces, e.g. the
    #: tetragonal distortion that comes with Li ordering in garnets); lattice mapping in fractional
    #: coordinates, NEBs stay at the parent cell
    neb: NEBSettings = NEBSettings()
    seed: int = 0

    @classmethod
    def quick(cls, **kw) -> "ParametrizeSettings":
        """Minutes, not hours: few configurations, 3-image bands, loose force tolerances."""
        base = dict(n_configs=10, n_low_energy=2, n_exclusion_tests=1, n_second_round=2, relax_fmax_eV_A=0.1,
                    relax_max_steps=200,
                    neb=NEBSettings(n_images=3, fmax_eV_A=0.1, pre_fmax_eV_A=0.3, max_steps=200,
                                    endpoint_fmax_eV_A=0.1, endpoint_max_steps=200))
        base.update(kw)
        return cls(**base)


@dataclass
class ParametrizedModel:
    """What ``kmc parametrize`` produces: the model file's text and every number behind it."""

    model_toml: str
    data: dict[str, Any]
    out_dir: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def _log_default(msg: str) -> None:
    print(f"kmc parametrize: {msg}", file=sys.stderr, flush=True)


def _relax_key(atoms, backend: Backend, settings: ParametrizeSettings) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(atoms.positions, 5).tobytes())
    h.update(np.round(np.asarray(atoms.cell), 5).tobytes())
    h.update(json.dumps([backend.name, settings.relax_fmax_eV_A, settings.relax_max_steps]).encode())
    return h.hexdigest()[:20]


def _relax_into_cache(f: Path, key: str, atoms, backend: Backend, settings: ParametrizeSettings, label: str,
                      cell: bool) -> dict:
    """The cached relaxation in ``f``, or relax ``atoms`` (with its cell if ``cell``) and store it."""
    if f.is_file():
        return json.loads(f.read_text())
    t0 = time.perf_counter()
    relaxed, steps = relax(atoms, backend.calculator, settings.relax_fmax_eV_A, settings.relax_max_steps,
                           label, cell=cell)
    a = relaxed.copy()
    a.calc = backend.calculator
    out = {"key": key, "energy_eV": float(a.get_potential_energy()), "steps": steps,
           "wall_s": time.perf_counter() - t0, "positions_A": np.round(relaxed.positions, 6).tolist()}
    if cell:
        out["cell_A"] = np.round(np.asarray(relaxed.cell), 6).tolist()
    atomic_write_text(f, json.dumps(out))
    return out


def _relax_cached(atoms, backend: Backend, settings: ParametrizeSettings, cache: Path, label: str) -> dict:
    """Relax ``atoms`` (fixed cell) or read the finished result from ``cache``."""
    key = _relax_key(atoms, backend, settings)
    return _relax_into_cache(cache / f"relax_{key}.json", key, atoms, backend, settings, label, cell=False)


def _sha256(path: str) -> str | None:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def _relax_cell_cached(atoms, fixed: dict, backend: Backend, settings: ParametrizeSettings, cache: Path,
                       label: str) -> dict:
    """Relax positions and cell together, starting from the fixed-cell result ``fixed`` (cached)."""
    key = hashlib.sha256(json.dumps([fixed["key"], "cell", settings.relax_fmax_eV_A,
                                     settings.relax_max_steps]).encode()).hexdigest()[:20]
    start = atoms.copy()
    start.positions = np.array(fixed["positions_A"])
    return _relax_into_cache(cache / f"relaxcell_{key}.json", key, start, backend, settings,
                             label + " (with its cell)", cell=True)


#: the energy backend of a relaxation worker process (:func:`_init_worker`)
_WORKER_BACKEND: Backend | None = None


def _init_worker(calculator: str | Backend, threads: int | None) -> None:
    """Build this worker process's own backend: by name, or the pickled :class:`Backend`."""
    global _WORKER_BACKEND
    if isinstance(calculator, Backend):
        _WORKER_BACKEND = calculator
        if threads and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(threads))
    else:
        _WORKER_BACKEND = get_calculator(calculator, threads, quiet=True)


def _relax_job(atoms, settings: ParametrizeSettings, cache: Path, label: str) -> None:
    """One configuration's relaxations (fixed cell, then with the cell), into the cache."""
    r = _relax_cached(atoms, _WORKER_BACKEND, settings, cache, label)
    if settings.relax_cell:
        _relax_cell_cached(atoms, r, _WORKER_BACKEND, settings, cache, label)


def _neb_job(initial, final, settings: NEBSettings, cache_dir: Path) -> None:
    """One NEB band, into the cache (its result is read back by the main process)."""
    neb_path(initial, final, _WORKER_BACKEND, settings, cache_dir=cache_dir, log=lambda m: None)


def attempt_frequency_THz(atoms, index: int, direction: np.ndarray, calculator, step_A: float = 0.02) -> float:
    """Harmonic frequency of atom ``index`` along ``direction``: ``sqrt(k / m) / 2 pi`` with ``k`` the
    central finite difference of its force (the one-dimensional Vineyard prefactor along the hop)."""
    u = np.asarray(direction, float) / np.linalg.norm(direction)
    f = []
    for sgn in (1, -1):
        a = atoms.copy()
        a.positions[index] += sgn * step_A * u
        a.calc = calculator
        f.append(float(a.get_forces()[index] @ u))
    k = -(f[0] - f[1]) / (2 * step_A)  # eV/Å^2
    if not k > 0:
        return float("nan")
    m = atomic_masses[atoms.numbers[index]] * atomic_mass
    return float(np.sqrt(k * electron_volt * 1e20 / m) / (2 * np.pi) / 1e12)


def _variants(problem: LatticeProblem, vacancies: int) -> list[tuple[dict[str, int], int]]:
    """(dopant counts, extra vacancies) the random configurations cycle through."""
    counts: list[dict[str, int]] = [{}]
    for spec in problem.dopants:
        counts = [{**c, spec.element: k} for c in counts for k in range(spec.max_per_cell + 1)]
    variants = [(c, v) for c in counts for v in range(vacancies + 1)]
    if vacancies:  # a full sublattice: the undoped, vacancy-free cell has one arrangement only
        variants = [x for x in variants if x[1] > 0 or any(x[0].values())] or variants
    return variants


def _check_mappable(results: list[dict], usable: list[int], tolerance_A: float) -> None:
    """Fewer than 4 relaxed structures on the lattice because the ions moved off *every* set of
    sites is a structure problem (its sites are not near the calculator's minima), not a matter
    of more configurations: say so with the distances."""
    if len(usable) >= 4 or not results:
        return
    far = [r["mapping"]["max_mapped_distance_A"] for r in results]
    if min(far) > tolerance_A:
        raise StructureError(
            f"{len(results) - len(usable)} of {len(results)} relaxed configurations have ions "
            f"{min(far):.2f}-{max(far):.2f} Å from the nearest site (tolerance {tolerance_A:g} Å), so the "
            "structure's sites are not near the calculator's minima (idealised positions?); start from a "
            "structure relaxed with the same calculator.")


def _atom_on(atoms, cfg: Configuration, result: dict, site: int) -> int:
    """Index in ``atoms`` (built from ``cfg``) of the mobile ion that relaxed onto ``site``."""
    return len(atoms) - len(cfg.occupied) + result["mapping"]["mapped_sites"].index(site)


def _sample(problem: LatticeProblem, settings: ParametrizeSettings, rng: np.random.Generator,
            vacancies: int) -> list[Configuration]:
    """Random configurations over dopant counts and vacancies, then the exclusion tests."""
    configs: list[Configuration] = []
    variants = _variants(problem, vacancies)
    for k in range(settings.n_configs):
        c, v = variants[k % len(variants)]
        configs.append(problem.random_configuration(rng, c, v))
    for o in problem.short_orbits:
        inst = np.flatnonzero(problem.pair_orbit == o)
        for t in range(settings.n_exclusion_tests):
            a = int(inst[rng.integers(len(inst))])
            pair = (int(problem.pair_i[a]), int(problem.pair_j[a]))
            configs.append(problem.random_configuration(rng, {}, min(vacancies, 1), forced=pair,
                                                        kind=f"exclusion-test:{problem.orbit_name(o)}"))
    return configs


class _Plan:
    """The configurations each sampling round drew, kept in the cache (``plan_<key>.json``) as soon as
    they are drawn, with the random state after the round.

    A rerun takes the recorded arrangements instead of drawing again: numpy's random streams and the
    neighbour order of the structure libraries are not promised across versions, so re-drawing on
    another machine could ask for relaxations nobody has cached (a garnet cache made with one install
    matched only its first 36 of 60 draws on another)."""

    def __init__(self, cache: Path, key: str, rng: np.random.Generator) -> None:
        self.path = cache / f"plan_{key}.json"
        self.key, self.rng = key, rng
        self.rounds: dict[str, dict] = {}
        if self.path.is_file():
            self.rounds = json.loads(self.path.read_text())["rounds"]

    def take(self, name: str, draw: Callable[[], list[Configuration]]) -> list[Configuration]:
        """The round ``name``: recorded (the random state restored to after it), or drawn now and recorded."""
        if name in self.rounds:
            if self.rounds[name].get("rng_state_after") is not None:  # None: rebuilt from a data.json
                self.rng.bit_generator.state = self.rounds[name]["rng_state_after"]
            return [Configuration.from_dict(c) for c in self.rounds[name]["configurations"]]
        cfgs = draw()
        self.rounds[name] = {"configurations": [c.to_dict() for c in cfgs],
                             "rng_state_after": self.rng.bit_generator.state}
        atomic_write_text(self.path, json.dumps({"key": self.key, "rounds": self.rounds}))
        return cfgs


def rewrite_model(data: dict, values_eV=None) -> str:
    """The model.toml text of a finished run from its ``data`` (data.json), optionally with other
    values of its fitted terms (``values_eV``: same order as ``data["fit"]["terms"]``, e.g. one of
    ``data["fit"]["bootstrap_values_eV"]``): the same lattice, mapping, exclusions and NEB barriers.
    What ``kmc parametrize`` wrote is ``rewrite_model(data)``, up to the run's own date."""
    args = data.get("problem_args")
    if args is None:
        raise ConfigError("this data.json predates problem_args (2026-12-07); rerun its command (from "
                          "the cache it recomputes nothing) to rewrite the model.")
    problem = load_problem(args["structure"], args["mobile"],
                           tuple(args["supercell"]) if args["supercell"] else None, args["hop_cutoff_A"],
                           args["interaction_cutoff_A"], args["exclusion_cutoff_A"],
                           [DopantSpec(**d) for d in args["dopants"]])
    terms = data["fit"]["terms"]
    names = list(terms)
    values = np.array([terms[n]["value_eV"] for n in names] if values_eV is None else values_eV, float)
    if values.shape != (len(names),):
        raise ConfigError(f"values_eV needs one value per fitted term ({len(names)}), got {values.shape}.")
    fit = SimpleNamespace(names=names, values_eV=values, errors_eV=np.array([terms[n]["error_eV"] for n in names]),
                          undetermined=list(data["fit"]["undetermined"]))
    excluded = {o for o in range(len(problem.orbits)) if problem.orbit_name(o) in data["computed_exclusions"]}
    return model_toml(problem, data, fit, excluded)


def plan_key(problem: LatticeProblem, settings: ParametrizeSettings, vacancies: int,
             include: list[str]) -> str:
    """What the sampled configurations depend on: the lattice, the dopants, the sampling settings
    and the included structures (not the relaxation, NEB or mapping settings)."""
    h = hashlib.sha256()
    h.update(np.round(np.asarray(problem.pos, float), 4).tobytes())
    h.update(json.dumps([list(problem.class_names), int(problem.n_nominal), [asdict(d) for d in problem.dopants],
                         settings.n_configs, settings.n_low_energy, settings.n_exclusion_tests,
                         settings.n_second_round, vacancies, settings.seed,
                         [_sha256(f) for f in include]], default=str).encode())
    return h.hexdigest()[:20]


def _fitted(problem: LatticeProblem, cfg: Configuration, mapping: dict, excluded: set[int]) -> Configuration | None:
    """The lattice configuration a relaxed structure is fitted as (see the module docstring), or
    None when it is none: an ion between sites, two ions on one site, an ion on a dopant-blocked
    site or a pair of an excluded orbit."""
    if not mapping["mapped"]:
        return None
    sites = sorted(mapping["mapped_sites"])
    if problem.blocked(cfg)[sites].any():
        return None
    occ = np.zeros(len(problem.pos), dtype=bool)
    occ[sites] = True
    both = occ[problem.pair_i] & occ[problem.pair_j]
    if np.isin(problem.pair_orbit[both], list(excluded)).any():
        return None
    return Configuration(sites, list(cfg.dopants), cfg.kind)


#: a dopant orbit is a computed exclusion when ions placed on it relaxed away in at least this many
#: fitted configurations and no fitted configuration holds one there (its term is then undetermined)
DOPANT_EXCLUSION_MIN_CONFIGS = 2


def _dopant_exclusion_evidence(problem: LatticeProblem, configs: list[Configuration],
                               fitted_of: dict[int, Configuration]) -> dict[str, dict]:
    """Per dopant orbit: in how many fitted configurations (and for how many ions) an ion was
    placed on a site of that orbit around a dopant, and how many of those ions stayed there after
    the relaxation (an orbit every placed ion leaves is a computed exclusion of that dopant, as
    for the short mobile-mobile orbits)."""
    out: dict[str, dict] = {}
    for k, fitted in fitted_of.items():
        placed, kept = set(configs[k].occupied), set(fitted.occupied)
        per_orbit: dict[int, list[int]] = {}
        for el, _which, idx in configs[k].dopants:
            for site, o in problem.dopant_pairs.get((el, str(idx)), []):
                if site in placed:
                    per_orbit.setdefault(o, []).append(site)
        for o, sites in per_orbit.items():
            e = out.setdefault(problem.dopant_orbit_name(o), {"configurations": 0, "ions_placed": 0, "ions_stayed": 0})
            e["configurations"] += 1
            e["ions_placed"] += len(sites)
            e["ions_stayed"] += sum(1 for x in sites if x in kept)
    return dict(sorted(out.items()))


def _dopant_tests(problem: LatticeProblem, settings: ParametrizeSettings, rng: np.random.Generator,
                  vacancies: int, configs: list[Configuration]) -> list[Configuration]:
    """Configurations testing the dopant orbits shorter than the exclusion test cutoff that fewer
    than DOPANT_EXCLUSION_MIN_CONFIGS earlier configurations tried: one dopant with an ion forced
    on a site of that orbit (the earlier rounds' hard-core sampling may never put one there, and an
    untried orbit would stay an undetermined term that no exclusion covers)."""
    tried = np.zeros(len(problem.dopant_orbits), dtype=int)
    for cfg in configs:
        placed = set(cfg.occupied)
        hit = {o for el, _w, idx in cfg.dopants for site, o in problem.dopant_pairs.get((el, str(idx)), [])
               if site in placed}
        tried[list(hit)] += 1
    out: list[Configuration] = []
    for o, (el, _host, _c, dist) in enumerate(problem.dopant_orbits):
        if dist >= problem.exclusion_cutoff_A or tried[o] >= DOPANT_EXCLUSION_MIN_CONFIGS:
            continue
        which, cand = problem.dopant_candidates[el]
        for _ in range(max(settings.n_exclusion_tests, DOPANT_EXCLUSION_MIN_CONFIGS - int(tried[o]))):
            idx = int(cand[rng.integers(len(cand))])
            sites = [site for site, k in problem.dopant_pairs[(el, str(idx))] if k == o]
            site = int(sites[rng.integers(len(sites))])
            out.append(problem.random_configuration(rng, {}, min(vacancies, 1), forced=(site,),
                                                    kind=f"dopant-test:{problem.dopant_orbit_name(o)}",
                                                    placed_dopants=[(el, which, idx)]))
    return out


def _pooled_exclusion_evidence(problem: LatticeProblem, runs: list[tuple[str, list[dict]]]) -> dict[str, dict]:
    """Per short orbit: how many pairs of it were placed in the configurations of all ``runs``
    (label, mappings of its configurations) and how many of them relaxed away, in all and per run."""
    out = {problem.orbit_name(o): {"placed": 0, "relaxed_away": 0, "by_run": {}} for o in problem.short_orbits}
    for label, mappings in runs:
        for m in mappings:
            for sp in m["short_pairs"]:
                e = out[sp["orbit"]]
                run = e["by_run"].setdefault(label, {"placed": 0, "relaxed_away": 0})
                for x in (e, run):
                    x["placed"] += 1
                    x["relaxed_away"] += int(sp["relaxed_away"])
    return out


def _names(problem: LatticeProblem, orbits: set[int]) -> str:
    """The orbits' names for a message ("no pair" if none)."""
    return ", ".join(problem.orbit_name(o) for o in sorted(orbits)) or "no pair"


def _design(problem: LatticeProblem, configs: list[Configuration], exclude: set[int]):
    """Composition matrix C, model matrix X and the column names."""
    names = [f"site:{c}" for c in problem.class_names[1:]] + \
            [f"pair:{problem.orbit_name(o)}" for o in range(len(problem.orbits)) if o not in exclude] + \
            [f"dopant:{problem.dopant_orbit_name(o)}" for o in range(len(problem.dopant_orbits))]
    keep = [o for o in range(len(problem.orbits)) if o not in exclude]
    C, X = [], []
    for cfg in configs:
        f = problem.features(cfg)
        C.append(np.concatenate([[1.0], f["composition"]]))
        X.append(np.concatenate([f["class"][1:], f["pair"][keep], f["dopant"]]))
    return np.array(C), np.array(X), names


def _fitted_counts(problem: LatticeProblem, configs: list[Configuration], excluded: set[int], fit):
    """Composition matrix C and the counts of the fitted terms (columns in ``fit.names`` order):
    ``counts @ fit.values_eV + C @ fit.chemical_potentials_eV`` is the fit's energy."""
    C, X, names = _design(problem, configs, excluded)
    return C, X[:, [names.index(n) for n in fit.names]]


def _path_blocked(problem: LatticeProblem, cfg: Configuration, occ: np.ndarray, s: int, d: int,
                  moving: tuple[int, ...] = ()) -> bool:
    """True if an ion (other than the hopping one and the ions on ``moving``, which move in the
    same event) or a host atom sits on the straight hop s -> d (closer than 0.4 x the hop length, at
    most 1 Å, to the segment): the band would start by pushing atoms through each other, so the hop
    is not an elementary one in this configuration."""
    v = find_mic(problem.pos[d] - problem.pos[s], problem.cell, pbc=True)[0]
    length = float(np.linalg.norm(v))
    others = np.vstack([problem.pos[occ & ~np.isin(np.arange(len(occ)), (s, *moving))], problem.host_positions,
                        problem.pos[[i for _, w, i in cfg.dopants if w == "mobile"]].reshape(-1, 3)])
    rel = find_mic(others - problem.pos[s], problem.cell, pbc=True)[0]
    t = np.clip(rel @ v / length ** 2, 0.0, 1.0)
    dist = np.linalg.norm(rel - t[:, None] * v, axis=1)
    return bool((dist < min(1.0, 0.4 * length)).any())


#: A band is degenerate when both barriers are below FLAT_BAND_EV and the relaxed endpoints lie
#: closer than FLAT_BAND_PATH hop lengths: both endpoints relaxed into one minimum (garnet: the
#: included t-LLZO order, whose octahedral Li sit at cage centres, gave four such bands, barriers
#: 0-0.9 meV, relaxed paths 8-17 % of the hop), so it is not a hop of its class. 1 meV is kT/26 at
#: 300 K; real small barriers met (96h-96h, 3-5 meV) are above it.
FLAT_BAND_EV = 1e-3
FLAT_BAND_PATH = 0.25
#: candidate environments per wanted one, so that degenerate bands can be replaced
FLAT_BAND_CANDIDATES = 3


def _mapped_ends(problem: LatticeProblem, cfg: Configuration, band_file: str | Path | None,
                 tolerance_A: float) -> list[list[int]] | None:
    """The arrangements (sorted occupied sites) both relaxed endpoints of a band map onto, the way
    a fitted configuration is mapped (:meth:`~kmc.parametrize.lattice.LatticeProblem.map_relaxed`);
    None when there is no band file or an endpoint has an ion off the sites."""
    if not band_file or not Path(band_file).is_file():
        return None
    maps = [problem.map_relaxed(cfg, read(str(band_file), index=i).positions, tolerance_A) for i in (0, -1)]
    return [sorted(m["mapped_sites"]) for m in maps] if all(m["mapped"] for m in maps) else None


def _relaxes_back(problem: LatticeProblem, cfg: Configuration, band_file: str | None, tolerance_A: float) -> bool:
    """True when both relaxed endpoints of a band map onto the lattice as one and the same
    arrangement: the moved ions went back (or on to where others were), so whatever its barrier
    the band is not an event of its class (garnet: three of ten bands, E_KRA 1-2 meV, barriers
    3-4 meV, above the flat-band rule)."""
    ends = _mapped_ends(problem, cfg, band_file, tolerance_A)
    return ends is not None and ends[0] == ends[1]


def _excluded_neighbours(problem: LatticeProblem, excluded: set[int]) -> dict[int, set[int]]:
    """Site -> the sites of the excluded orbits round it."""
    out: dict[int, set[int]] = {}
    mask = np.isin(problem.pair_orbit, list(excluded))
    for a, b in zip(problem.pair_i[mask], problem.pair_j[mask]):
        out.setdefault(int(a), set()).add(int(b))
        out.setdefault(int(b), set()).add(int(a))
    return out


def _hop_paths(problem: LatticeProblem, hop_orbit: int) -> list[tuple[int, int]]:
    """Every hop (source, destination) of one pair orbit, both directions of each pair."""
    out = []
    for p in np.flatnonzero(problem.pair_orbit == hop_orbit):
        i, j = int(problem.pair_i[p]), int(problem.pair_j[p])
        out += [(i, j), (j, i)]
    return out


def _environments(problem: LatticeProblem, configs: list[Configuration], energies: list[float],
                  paths: list[tuple[int, ...]], excluded: set[int], n_env: int) -> list[tuple[int, ...]]:
    """Up to ``n_env`` environments (configuration, *path) of one event class with distinct
    neighbour occupancies, lowest-energy configurations first. A path is the sites an event's ions
    move along: (source, destination) for a hop (:func:`_hop_paths`), (pusher's site, pushed ion's
    site, its landing site) for a knock-off (:func:`_knockoff_events`); the ion on each site but the
    last moves on to the next. An environment needs an ion on every site but the last, that one
    free and open (no excluded neighbour occupied but the first site) and no segment crossed by an
    atom that stays."""
    out, seen = [], set()
    excl_nbr = _excluded_neighbours(problem, excluded)
    for c in np.argsort(energies, kind="stable"):
        cfg = configs[c]
        occ = np.zeros(len(problem.pos), dtype=bool)
        occ[cfg.occupied] = True
        blocked = problem.blocked(cfg)
        for path in paths:
            movers, d = path[:-1], path[-1]
            if not occ[list(movers)].all() or occ[d] or blocked[d]:
                continue
            if any(occ[x] and x != path[0] for x in excl_nbr.get(d, ())):
                continue
            if any(_path_blocked(problem, cfg, occ, a, b, tuple(x for x in movers if x != a))
                   for a, b in zip(path, path[1:])):
                continue
            sig = []
            for site in path:
                m = (problem.pair_i == site) | (problem.pair_j == site)
                other = np.where(problem.pair_i[m] == site, problem.pair_j[m], problem.pair_i[m])
                on = occ[other] & ~np.isin(other, movers)
                sig.append(tuple(np.bincount(problem.pair_orbit[m][on], minlength=len(problem.orbits))))
            sig = (tuple(sig), len(cfg.dopants))
            if sig in seen:
                continue
            seen.add(sig)
            out.append((int(c), *path))
            if len(out) >= n_env:
                return out
    return out


def _check_interstitialcy(spec: dict) -> dict:
    """``interstitialcy`` of :func:`parametrize` checked like a config's ``[model.interstitialcy]``,
    as a plain dict (the classes are checked against the lattice by :func:`_knockoff_events`)."""
    c = InterstitialcyConfig.parse(dict(spec))
    return {"interstitial": list(c.interstitial), "lattice": list(c.lattice), "max_angle_deg": c.max_angle_deg}


def _knockoff_events(problem: LatticeProblem, interstitialcy: dict) -> dict[str, list[tuple[int, int, int]]]:
    """The knock-off (interstitialcy) events of the problem's cell per class: (pusher's site, the
    pushed ion's site, where it lands), from
    :meth:`~kmc.system.network.SiteNetwork.with_interstitialcy` (which refuses unknown classes and
    a lattice without a triple within the angle)."""
    net = problem.network.with_interstitialcy(list(interstitialcy["interstitial"]), list(interstitialcy["lattice"]),
                                              float(interstitialcy["max_angle_deg"]))
    ev, names = net.events(), net.event_class_names
    src = np.repeat(np.arange(net.n_sites), np.diff(ev["out_off"]))
    out: dict[str, list[tuple[int, int, int]]] = {}
    for e in np.flatnonzero(ev["ev_mid"] >= 0):
        out.setdefault(names[net.templates.klass[ev["ev_tmpl"][e]]], []).append(
            (int(src[e]), int(ev["ev_mid"][e]), int(ev["ev_dst"][e])))
    return out


#: calculator provenance that may differ between joined runs: the energies do not depend on it
JOIN_ENVIRONMENT_KEYS = frozenset({"python", "ase_version", "torch_version", "device", "platform"})
#: settings two runs must share for their energies and bands to be fitted together
JOIN_SETTINGS = ("relax_fmax_eV_A", "relax_max_steps", "relax_cell", "site_tolerance_A", "neb")


@dataclass
class _Joined:
    """Another finished run's configurations, energies and NEB bands (its data.json), to be fitted
    together with this run's."""

    label: str
    sha256: str
    data: dict
    dopants: list[DopantSpec]
    #: (index in the joint set, index in the joined run, data.json entry) of each configuration kept
    kept: list[tuple[int, int, dict]] = field(default_factory=list)
    duplicates: int = 0                                 #: configurations this run (or an earlier join) has
    n_fitted: int = 0                                   #: kept configurations that enter the fit


def _read_joined(source: str | Path) -> _Joined:
    """Read one ``join`` source: a data.json, a model directory holding one, or a builtin computed
    model's name."""
    p = Path(source)
    if p.is_dir():
        p = p / "data.json"
    if p.is_file():
        raw = p.read_bytes()
        label = str(source)
    else:
        builtin = computed_data(str(source)) if str(source) in framework_names() else None
        if builtin is None:
            raise ConfigError(f"--join {source!r} is neither a data.json (or a directory holding one) nor a "
                              f"builtin computed model; give the data.json another `kmc parametrize` wrote.")
        raw = json.dumps(builtin, sort_keys=True).encode()
        label = f"builtin:{source}"
    try:
        data = json.loads(raw)
        need = ("structure", "mobile", "supercell", "orbits", "calculator", "settings", "configurations",
                "computed_exclusions", "neb")
        missing = [k for k in need if k not in data]
    except (ValueError, TypeError):
        data, missing = None, ["(not JSON)"]
    if data is None or missing:
        raise ConfigError(f"--join {source!r} is not a data.json of `kmc parametrize` (missing "
                          f"{', '.join(missing)}); give the data.json a finished run wrote.")
    specs = [DopantSpec(**d) for d in data.get("problem_args", {}).get("dopants", [])]
    if not specs and any(c["dopants"] for c in data["configurations"]):
        raise ConfigError(f"--join {source!r} has doped configurations but predates problem_args "
                          f"(2026-12-07); rerun its command (from its cache it recomputes nothing).")
    return _Joined(label, hashlib.sha256(raw).hexdigest(), data, specs)


def _check_joined(j: _Joined, problem: LatticeProblem, settings: ParametrizeSettings, backend: Backend) -> None:
    """A joined run must describe the same lattice (structure, supercell, mobile species, pair
    orbits), computed with the same calculator and relaxation/NEB settings."""
    data, source = j.data, j.label
    orbits = [problem.orbit_name(o) for o in range(len(problem.orbits))]
    what = None
    if (data["structure"], data["mobile"], list(data["supercell"])) != \
            (problem.source, problem.mobile, list(problem.network.supercell)):
        what = (f"another lattice ({data['structure']}, {data['mobile']}, supercell {data['supercell']}) than "
                f"this run ({problem.source}, {problem.mobile}, supercell {list(problem.network.supercell)})")
    elif [o["name"] for o in data["orbits"]] != orbits:
        what = "other pair orbits (another interaction or hop cutoff)"
    else:
        mine = {k: v for k, v in backend.provenance.items() if k not in JOIN_ENVIRONMENT_KEYS}
        theirs = {k: v for k, v in data["calculator"].items() if k not in JOIN_ENVIRONMENT_KEYS}
        own, their_settings = jsonable(asdict(settings)), data["settings"]
        diff = [k for k in JOIN_SETTINGS if their_settings.get(k) != own[k]]
        if mine != theirs:
            what = f"another calculator ({theirs}, this run: {mine})"
        elif diff:
            what = f"other settings ({', '.join(f'{k}={their_settings.get(k)!r}' for k in diff)})"
    if what:
        raise ConfigError(f"--join {source!r} was computed on {what}, so its energies cannot be fitted with "
                          f"this run's; join only runs of the same lattice, calculator and settings.")


def _joint_dopants(own: list[DopantSpec], joined: list[_Joined]) -> list[DopantSpec]:
    """This run's dopants, then those only the joined runs have (one spec per element)."""
    out = list(own)
    for j in joined:
        for spec in j.dopants:
            same = next((s for s in out if s.element == spec.element), None)
            if same is None:
                out.append(spec)
            elif (same.host, same.charge) != (spec.host, spec.charge):
                raise ConfigError(f"--join {j.label!r} places {spec.element} on {spec.host} (charge "
                                  f"{spec.charge}), this run on {same.host} (charge {same.charge}); one "
                                  f"Hamiltonian needs one host per dopant.")
    return out


def _hop_barriers(bands: list[dict], nu_THz: float, flat_skipped: list[dict]) -> dict:
    """One hop class's entry of data.json's ``neb``: E_KRA statistics over its bands."""
    kra = np.array([b["E_KRA_eV"] for b in bands])
    return {"E_KRA_mean_eV": float(kra.mean()),
            "E_KRA_std_eV": float(kra.std(ddof=1)) if len(kra) > 1 else float("nan"),
            "E_KRA_min_eV": float(kra.min()), "E_KRA_max_eV": float(kra.max()),
            "n_environments": len(bands), "attempt_frequency_THz": nu_THz, "bands": bands,
            "flat_bands_skipped": flat_skipped}


def _hop_energy_check(problem: LatticeProblem, fit, excluded: set[int], neb_out: dict,
                      sampled_at: dict[str | None, dict[int, Configuration]], tolerance_A: float,
                      cache: Path) -> dict:
    """A held-out check of the fit on the NEB bands (which are not fitted), and what each band is.

    Both relaxed endpoints of a band are mapped onto the lattice like a fitted configuration
    (:meth:`~kmc.parametrize.lattice.LatticeProblem.map_relaxed`); the band then records the
    arrangements they are (``endpoint_sites``), how many ions the two differ by
    (``ions_rearranged``: 1 for the intended single hop, 0 when the endpoints relaxed into one
    arrangement, more for a concerted rearrangement), whether it is the intended hop
    (``single_hop``) and the fitted Hamiltonian's energy change between them
    (``hamiltonian_dE_eV``), to be compared with the band's own ``dE_eV``. Returns the counts and
    the statistics of Hamiltonian minus band over the bands whose endpoints both map.
    ``sampled_at[source][configuration]`` is the configuration a band started from (source None:
    this run)."""
    diffs, counts = [], {"n_bands": 0, "n_mapped": 0, "n_single_hop": 0, "n_same_arrangement": 0,
                         "n_rearranged": 0}
    for v in neb_out.values():
        for b in v["bands"]:
            counts["n_bands"] += 1
            cfg = sampled_at.get(b.get("source"), {}).get(b["configuration"])
            band = Path(b.get("band_file") or "")
            if not band.is_file():  # the cache moved: look in this run's
                band = cache / "neb" / band.name
            b.update(hamiltonian_dE_eV=None, endpoint_sites=None, ions_rearranged=None, single_hop=None)
            ends = _mapped_ends(problem, cfg, band, tolerance_A) if cfg is not None and band.name else None
            if ends is None:
                continue
            gone, new = set(ends[0]) - set(ends[1]), set(ends[1]) - set(ends[0])
            _, n = _fitted_counts(problem, [Configuration(e, list(cfg.dopants), cfg.kind) for e in ends], excluded, fit)
            b.update(hamiltonian_dE_eV=float((n[1] - n[0]) @ fit.values_eV), endpoint_sites=ends,
                     ions_rearranged=len(new), single_hop=(gone, new) == ({b["from_site"]}, {b["to_site"]}))
            counts["n_mapped"] += 1
            counts["n_single_hop"] += b["single_hop"]
            counts["n_same_arrangement"] += len(new) == 0
            counts["n_rearranged"] += len(new) > 1
            diffs.append(b["hamiltonian_dE_eV"] - b["dE_eV"])
    if not diffs:
        return counts
    x = np.array(diffs)
    return {**counts, "mean_diff_eV": float(x.mean()), "rms_diff_eV": float(np.sqrt((x ** 2).mean())),
            "min_diff_eV": float(x.min()), "max_diff_eV": float(x.max())}


def parametrize(structure: str, mobile: str = "Li", out_dir: str | Path | None = None, *,
                supercell: tuple[int, int, int] | None = None, hop_cutoff_A: float | None = None,
                interaction_cutoff_A: float | None = None, exclusion_cutoff_A: float | None = None,
                calculator: str | Backend = "chgnet", dopants: list[DopantSpec] = (),
                settings: ParametrizeSettings | None = None, quick: bool = False,
                cache_dir: str | Path | None = None, threads: int | None = None,
                progress: bool = False, log: Callable[[str], None] | None = None,
                command: str | None = None, include: list[str] = (), quiet: bool = False,
                name: str | None = None, workers: int = 1,
                join: list[str | Path] = (), interstitialcy: dict | None = None) -> ParametrizedModel:
    """Compute a lattice model of ``structure`` (see the module docstring).

    Parameters
    ----------
    structure
        Builtin framework name, CIF or POSCAR.
    mobile
        Mobile species.
    out_dir
        Where model.toml and data.json go (None: return them without writing). The directory
        appears complete or not at all.
    supercell, hop_cutoff_A, interaction_cutoff_A, exclusion_cutoff_A, dopants
        See :func:`kmc.parametrize.lattice.load_problem`.
    calculator
        Backend name (``chgnet``, ``sevennet``, ``module:Class``) or a ready :class:`Backend`.
    settings
        Sampling and convergence settings (default: :class:`ParametrizeSettings`, or its
        :meth:`~ParametrizeSettings.quick` version with ``quick=True``).
    cache_dir
        Relaxations and NEBs as they finish (default: ``<out_dir>.cache`` next to the output).
    progress
        Show a tqdm progress bar on stderr.
    include
        Structure files (or builtin names) of known arrangements of the same framework, e.g. an
        ordered phase from experiment: each one's mobile-ion arrangement is mapped onto the
        lattice (:meth:`~kmc.parametrize.lattice.LatticeProblem.configuration_from_structure`)
        and computed like the sampled configurations. Random sampling rarely meets an ordered
        ground state; this is how the fit learns its energy.
    quiet
        Discard the calculator's start-up messages (default: they go to stderr).
    name
        The model's name in model.toml (default ``<structure>-computed``); a builtin computed
        model is written under its builtin name.
    workers
        Processes relaxing the configurations of a sampling round concurrently, each with its
        own calculator (``threads`` torch threads each, 1 if not given), and then running the
        first ``settings.n_environments`` NEB bands of every hop class. Every relaxation and
        band is the same computation in whichever process, so the model does not depend on it
        (with one torch thread: bit for bit); the fits, and any further band (after a flat one),
        run in this process.
    join
        Other finished runs of the same lattice, calculator and settings (their data.json, a
        directory holding it, or a builtin computed model's name), e.g. an undoped run and runs
        with other dopants: the final Hamiltonian is fitted to their configurations and this
        run's together (a configuration met twice counts once), dopants of every run get their
        terms, and each hop class's E_KRA is the mean over the bands of all runs. Sampling, the
        NEB environments and the attempt frequency stay this run's own.
    interstitialcy
        Concerted two-ion events to compute as well: ``{"interstitial": [...], "lattice": [...],
        "max_angle_deg": float}``, the knock-offs of
        :meth:`~kmc.system.network.SiteNetwork.with_interstitialcy` (an ion on an interstitial-class
        site pushes the ion on a neighbouring lattice-class site on to another interstitial-class
        site). Each knock-off class gets NEB bands in ``settings.n_environments`` environments in
        which both ions move together, like a hop class; the model file then declares them
        (``[network.interstitialcy]``) with their E_KRA, so runs of it include them.

    Returns
    -------
    ParametrizedModel
    """
    log = log or _log_default
    t_start = time.perf_counter()
    settings = settings or (ParametrizeSettings.quick() if quick else ParametrizeSettings())
    problem = load_problem(structure, mobile, supercell, hop_cutoff_A, interaction_cutoff_A,
                           exclusion_cutoff_A, list(dopants))
    if out_dir is not None:
        check_out_dir(Path(out_dir))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a whole number of at least 1 (processes relaxing "
                          f"configurations and running NEBs), got {workers!r}.")
    if workers > 1 and threads is None:
        threads = 1  # one torch thread per process: the cores are shared out by processes
    knockoffs: dict[str, list[tuple[int, int, int]]] = {}
    if interstitialcy is not None:   # checked now, before any calculation
        interstitialcy = _check_interstitialcy(interstitialcy)
        knockoffs = _knockoff_events(problem, interstitialcy)
    joined = [_read_joined(j) for j in join]
    backend = calculator if isinstance(calculator, Backend) else get_calculator(calculator, threads, quiet)
    for j in joined:
        _check_joined(j, problem, settings, backend)
    joint_dopants = _joint_dopants(list(dopants), joined)
    # the problem the final Hamiltonian is fitted and written on: this run's lattice with the dopants
    # of every joined run (the same sites and indices; only the dopant orbits are added)
    fit_problem = problem if len(joint_dopants) == len(problem.dopants) else load_problem(
        structure, mobile, supercell, hop_cutoff_A, interaction_cutoff_A, exclusion_cutoff_A, joint_dopants)
    cache = Path(cache_dir) if cache_dir is not None else (
        Path(str(Path(out_dir).resolve()) + ".cache") if out_dir is not None else None)
    if cache is None:
        cache = Path(tempfile.mkdtemp(prefix="kmc-parametrize-"))
    cache.mkdir(parents=True, exist_ok=True)
    full = problem.n_nominal == len(problem.pos)
    vacancies = settings.max_vacancies if settings.max_vacancies is not None else (2 if full else 0)
    if full and vacancies == 0 and not problem.dopants:
        raise StructureError("every mobile site is occupied, so there is only one arrangement and no hop; "
                             "allow vacancies (max_vacancies >= 1) or give a charge-compensating --dopant.")
    rng = np.random.default_rng(settings.seed)
    plan = _Plan(cache, plan_key(problem, settings, vacancies, list(include)), rng)
    configs = plan.take("first", lambda: _sample(problem, settings, rng, vacancies))
    included = [{"file": Path(f).name, "sha256": _sha256(f), "configuration": len(configs) + k}
                for k, f in enumerate(include)]
    configs += plan.take("included", lambda: [problem.configuration_from_structure(f, settings.site_tolerance_A)
                                              for f in include])
    log(f"{len(problem.pos)} {mobile} sites ({', '.join(problem.class_names)}) in a "
        f"{'x'.join(map(str, problem.network.supercell))} supercell, {len(problem.orbits)} pair orbits within "
        f"{problem.cutoff:.2f} Å, {len(problem.network.hop_class_names)} hop classes; {len(configs)} "
        f"configurations to relax with {backend.name} (cache {cache})")

    def in_pool(job, args: list[tuple], what: str, unit: str) -> None:
        """Run ``job(*a)`` for every ``a`` in ``workers`` processes, each writing into the cache
        (a pool per batch: seconds of start-up against minutes per relaxation or band)."""
        # spawn: a fresh interpreter per worker (torch's threads do not survive a fork)
        pool = ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), _init_worker,
                                   (calculator, threads))
        try:
            jobs = [pool.submit(job, *a) for a in args]
            for done in tqdm(as_completed(jobs), total=len(jobs), desc=f"{what} ({workers} processes)",
                             unit=unit, file=sys.stderr, disable=not progress):
                done.result()  # a worker's error (e.g. an unconverged relaxation) is raised here
        finally:
            # on an error the queued ones are dropped; running ones finish into the cache
            pool.shutdown(cancel_futures=True)

    def run_all(cfgs: list[Configuration], start: int) -> list[dict]:
        """Relax (or read) every configuration and map it back to the lattice."""
        if workers > 1:  # then every relaxation below is read from the cache
            in_pool(_relax_job, [(problem.atoms(cfg), settings, cache, f"configuration {start + k}")
                                 for k, cfg in enumerate(cfgs)], "relaxing", "config")
        res = []
        for k, cfg in enumerate(tqdm(cfgs, desc="relaxing", unit="config", file=sys.stderr,
                                     disable=not progress)):
            atoms = problem.atoms(cfg)
            r = _relax_cached(atoms, backend, settings, cache, f"configuration {start + k}")
            pos = np.array(r["positions_A"])
            if settings.relax_cell:
                rc = _relax_cell_cached(atoms, r, backend, settings, cache, f"configuration {start + k}")
                # fitted: the fully relaxed energy; NEBs start from the fixed-cell positions
                r = {**r, "fixed_cell_energy_eV": r["energy_eV"], "energy_eV": rc["energy_eV"],
                     "cell_A": rc["cell_A"], "cell_steps": rc["steps"]}
                frac = np.linalg.solve(np.array(rc["cell_A"]).T, np.array(rc["positions_A"]).T).T
                pos = frac @ problem.cell
            r["mapping"] = problem.map_relaxed(cfg, pos, settings.site_tolerance_A)
            res.append(r)
        return res

    results = run_all(configs, 0)
    # computed exclusions: a short orbit whose tested pairs relax away every time
    evidence: dict[str, list[dict]] = {}
    for k, (cfg, r) in enumerate(zip(configs, results)):
        for sp in r["mapping"]["short_pairs"]:
            evidence.setdefault(sp["orbit"], []).append({**sp, "configuration": k})
    excluded = {o for o in problem.short_orbits
                if evidence.get(problem.orbit_name(o)) and all(e["relaxed_away"] for e in evidence[problem.orbit_name(o)])}
    # nearest-site mapping is unambiguous only within half the shortest distance between two sites
    # that may both be occupied (an ion between the two sites of an excluded pair is on one of them
    # either way)
    allowed = [problem.orbits[o][2] for o in range(len(problem.orbits)) if o not in excluded]
    if allowed and settings.site_tolerance_A > 0.5 * min(allowed) + 1e-9:
        raise ConfigError(f"site tolerance {settings.site_tolerance_A:g} Å is more than half the shortest "
                          f"distance between sites that may both be occupied ({min(allowed):.2f} Å); "
                          f"use at most {0.5 * min(allowed):.2f} Å.")
    # untested short orbits stay avoided; tested ones that stayed are sampled like any other pair
    avoid = sorted(excluded | {o for o in problem.short_orbits if not evidence.get(problem.orbit_name(o))})
    n_second = settings.n_second_round
    if n_second is None:
        n_second = settings.n_configs // 2 if (len(problem.class_names) > 1 or len(avoid) < len(problem.short_orbits)) else 0
    if n_second:
        def draw_second() -> list[Configuration]:
            variants, second = _variants(problem, vacancies), []
            for k in range(n_second):
                w = np.exp(rng.uniform(-3.0, 3.0, size=len(problem.class_names)))
                c, v = variants[k % len(variants)]
                second.append(problem.random_configuration(rng, c, v, kind="class-weighted", avoid=avoid,
                                                           class_weights=w))
            return second

        second = plan.take("second", draw_second)
        log(f"second round: {n_second} class-weighted configurations"
            + (f" with {', '.join(problem.orbit_name(o) for o in problem.short_orbits if o not in avoid)} allowed"
               if len(avoid) < len(problem.short_orbits) else ""))
        results += run_all(second, len(configs))
        configs += second

    def fitted_set() -> dict[int, Configuration]:
        """Configuration index -> the arrangement it is fitted as (only those that map)."""
        pairs = ((k, _fitted(problem, configs[k], r["mapping"], excluded)) for k, r in enumerate(results))
        return {k: f for k, f in pairs if f is not None}

    def refit():
        """This run's fitted configurations (index -> arrangement), their indices, arrangements,
        composition matrix and energies, and the fit on them: after each round."""
        f_of = fitted_set()
        use = list(f_of)
        Cm, X, names = _design(problem, list(f_of.values()), excluded)
        energies = np.array([results[k]["energy_eV"] for k in use])
        return f_of, use, list(f_of.values()), Cm, energies, fit_hamiltonian(Cm, X, energies, names, seed=settings.seed)

    _check_mappable(results, list(fitted_set()), settings.site_tolerance_A)
    fitted_of, usable, fitted, C, E, fit = refit()
    # low-energy-biased configurations: the lowest predicted among many random candidates
    if settings.n_low_energy:
        def draw_low() -> list[Configuration]:
            cand = [problem.random_configuration(rng, {}, min(vacancies, 1), kind="low-energy",
                                                 avoid=avoid if n_second else None)
                    for _ in range(20 * settings.n_low_energy)]
            known = {tuple(c.occupied) for c in configs}
            Cc, counts = _fitted_counts(problem, cand, excluded, fit)
            pred = counts @ fit.values_eV + Cc @ fit.chemical_potentials_eV
            chosen = []
            for k in np.argsort(pred, kind="stable"):
                if tuple(cand[k].occupied) not in known:
                    known.add(tuple(cand[k].occupied))
                    chosen.append(cand[k])
                if len(chosen) >= settings.n_low_energy:
                    break
            return chosen

        chosen = plan.take("low-energy", draw_low)
        results += run_all(chosen, len(configs))
        configs += chosen
        fitted_of, usable, fitted, C, E, fit = refit()
    # short dopant orbits no round tried: tested now (a round of its own, after every earlier one,
    # so the plans of runs made before it draw nothing else anew)
    tests = plan.take("dopant-tests", lambda: _dopant_tests(problem, settings, rng, vacancies, configs))
    if tests:
        log(f"dopant tests: {len(tests)} configurations with an ion next to a dopant "
            f"({', '.join(sorted({c.kind.split(':', 1)[1] for c in tests}))})")
        results += run_all(tests, len(configs))
        configs += tests
        fitted_of, usable, fitted, C, E, fit = refit()
    # the final fit: this run's configurations and the joined runs' (NEBs below: this run's own)
    all_configs, all_fitted_of = list(configs), dict(fitted_of)
    all_E = {k: results[k]["energy_eV"] for k in fitted_of}
    pooled: dict[str, dict] = {}
    if joined:
        seen = {(tuple(c.occupied), tuple(map(tuple, c.dopants))) for c in configs}
        for j in joined:
            for i, e in enumerate(j.data["configurations"]):
                cfg = Configuration.from_dict(e)
                key = (tuple(cfg.occupied), tuple(map(tuple, cfg.dopants)))
                if key in seen:  # the same arrangement is the same cached relaxation
                    j.duplicates += 1
                    continue
                seen.add(key)
                j.kept.append((len(all_configs), i, e))
                all_configs.append(cfg)
        # which short pairs relax away is judged on every placement of every run (each run's own
        # decision rests on its few exclusion tests; one pair that stayed anywhere is a minimum)
        pooled = _pooled_exclusion_evidence(problem, [("this run", [r["mapping"] for r in results])]
                                            + [(j.label, [e["mapping"] for _, _, e in j.kept]) for j in joined])
        pooled_excluded = {o for o in problem.short_orbits
                           if 0 < pooled[problem.orbit_name(o)]["placed"] == pooled[problem.orbit_name(o)]["relaxed_away"]}
        if pooled_excluded != excluded:
            counts = "; ".join(f"{n}: {v['relaxed_away']} of {v['placed']} placed pairs relaxed away"
                               for n, v in pooled.items())
            raise ConfigError(f"this run's exclusion tests find {_names(problem, excluded)} relaxing away, "
                              f"but all the joined runs' placements together find "
                              f"{_names(problem, pooled_excluded)} ({counts}); this run's sampling rests on "
                              f"its own decision, so join the runs from one whose own tests agree "
                              f"(give it the others with --join).")
        for j in joined:
            for k, _i, e in j.kept:
                f = _fitted(fit_problem, all_configs[k], e["mapping"], excluded)
                if f is not None:
                    all_fitted_of[k], all_E[k] = f, float(e["energy_eV"])
                    j.n_fitted += 1
        C, X, names = _design(fit_problem, list(all_fitted_of.values()), excluded)
        fit = fit_hamiltonian(C, X, np.array(list(all_E.values())), names, seed=settings.seed)
        log(f"joint fit: {len(all_fitted_of)} configurations, {len(fitted_of)} of this run and "
            + ", ".join(f"{j.n_fitted} of {j.label} ({j.duplicates} already here)" for j in joined))
    dopant_evidence = _dopant_exclusion_evidence(fit_problem, all_configs, all_fitted_of)
    dopant_excluded = sorted(n for n in (x[len("dopant:"):] for x in fit.undetermined if x.startswith("dopant:"))
                             if dopant_evidence.get(n, {}).get("configurations", 0) >= DOPANT_EXCLUSION_MIN_CONFIGS
                             and dopant_evidence[n]["ions_stayed"] == 0)
    if dopant_excluded:
        log(f"relaxed away next to a dopant (computed exclusions): {', '.join(dopant_excluded)}")
    n_sites_mobile = float(np.mean(C[:, 1]))
    log(f"fit: {len(fit.names)} terms on {fit.n_configurations} configurations, CV RMSE "
        f"{1000 * fit.cv_rmse_eV:.2f} meV per cell ({1000 * fit.cv_rmse_eV / n_sites_mobile:.3f} meV per "
        f"{mobile}); relaxed away: {', '.join(problem.orbit_name(o) for o in sorted(excluded)) or 'none'}")

    # barriers per hop class
    neb_out: dict[str, dict] = {}
    nu: dict[str, float] = {}
    hop_orbits = [o for o in range(len(problem.orbits)) if problem.orbit_is_hop[o]]
    # more candidates than needed: an environment whose band is flat is skipped (below); an
    # environment is (configuration, the sites of the event's path): (c, s, d) for a hop, (c, s, m, d)
    # for a knock-off (the ion on s pushes the one on m on to d)
    paths = {problem.orbit_name(o): _hop_paths(problem, o) for o in hop_orbits} | knockoffs
    candidates = {name: _environments(problem, fitted, list(E), p, excluded,
                                      FLAT_BAND_CANDIDATES * settings.n_environments) for name, p in paths.items()}

    def endpoints(c: int, *path: int):
        """Configuration index and the two endpoints of an event in fitted arrangement c: the ion
        on each site of ``path`` but the last moves on to the next site."""
        k = usable[c]
        init = problem.atoms(configs[k])
        init.positions = np.array(results[k]["positions_A"])
        fin = init.copy()
        movers = [_atom_on(init, configs[k], results[k], x) for x in path[:-1]]
        for a, x in zip(movers, path[1:]):
            fin.positions[a] = problem.pos[x]
        return k, init, fin

    def band_record(k: int, path: tuple[int, ...], res) -> dict:
        mid = {"mid_site": path[1]} if len(path) == 3 else {}
        return {"configuration": k, "from_site": path[0], "to_site": path[-1], **mid, **res.to_dict()}

    def moves(env: tuple[int, ...]) -> bool:
        """False when the relaxed ion already sits next to where the event would take it (no atom
        moves 0.3 Å): not an event in this configuration."""
        try:
            check_endpoints(*endpoints(*env)[1:])
        except StructureError:
            return False
        return True

    candidates = {hop: [env for env in envs if moves(env)] for hop, envs in candidates.items()}
    if workers > 1:  # the first n_environments bands of each class are always needed
        in_pool(_neb_job, [(*endpoints(*env)[1:], settings.neb, cache / "neb") for envs in candidates.values()
                           for env in envs[:settings.n_environments]], "NEB", "band")
    for hop, envs in candidates.items():
        bands, flat, used, flat_used = [], [], [], []
        for env in envs:
            if len(bands) == settings.n_environments:
                break
            k, init, fin = endpoints(*env)
            res = require_converged(neb_path(init, fin, backend, settings.neb, cache_dir=cache / "neb",
                                             log=lambda m: None))
            flat_band = (max(res.barrier_forward_eV, res.barrier_backward_eV) < FLAT_BAND_EV
                         and res.path_A[-1] < FLAT_BAND_PATH * res.hop_length_A)
            if flat_band or _relaxes_back(problem, configs[k], res.band_file, settings.site_tolerance_A):
                # both endpoints relaxed into one minimum (e.g. an ion at a cage centre between the
                # two sites) or into one arrangement: not an event of this class, and its E_KRA of a
                # few meV would be an artefact
                flat.append({**band_record(k, env[1:], res), "skipped_as": "flat" if flat_band else "relaxes back"})
                flat_used.append(env)
                log(f"{hop}: configuration {k}: " + (
                    f"both endpoints relax into one minimum (flat band, relaxed path {res.path_A[-1]:.2f} of "
                    f"{res.hop_length_A:.2f} Å)" if flat_band else
                    "both endpoints relax into the starting arrangement") + "; not used")
                continue
            bands.append(band_record(k, env[1:], res))
            used.append(env)
            log(f"{hop}: environment {len(bands)}/{settings.n_environments}: E_KRA {res.E_KRA_eV:.3f} eV "
                f"(forward {res.barrier_forward_eV:.3f}, backward {res.barrier_backward_eV:.3f})")
        if not bands and flat:   # every candidate is flat: then that is the answer
            bands, used = flat[: settings.n_environments], flat_used[: settings.n_environments]
            flat = flat[settings.n_environments:]
        if not bands:
            log(f"{hop}: no configuration holds " + ("two ions and a free site for this knock-off" if
                                                     hop.startswith("knockoff:") else
                                                     "an ion next to a free site of this hop") + "; no barrier")
            continue
        c0, s0, n0 = used[0][:3]   # the attempt frequency along the first move of the first band
        a0 = problem.atoms(configs[usable[c0]])
        a0.positions = np.array(results[usable[c0]]["positions_A"])
        idx0 = _atom_on(a0, configs[usable[c0]], results[usable[c0]], s0)

        direction = find_mic(problem.pos[n0] - problem.pos[s0], problem.cell, pbc=True)[0]
        nu[hop] = attempt_frequency_THz(a0, idx0, direction, backend.calculator)
        neb_out[hop] = _hop_barriers(bands, nu[hop], [{k: b[k] for k in ("configuration", "from_site", "to_site",
                                                                         "skipped_as")} for b in flat])
    for j in joined:  # the joined runs' bands of each class (a band both runs computed counts once)
        for hop, v in j.data["neb"].items():
            mine = neb_out.get(hop, {"bands": [], "flat_bands_skipped": []})
            have = {b.get("band_file") for b in mine["bands"]}
            # (a band the joined run's hop check found relaxing back is left out, as here)
            theirs = [{**b, "source": j.label} for b in v["bands"]
                      if b.get("band_file") not in have and b.get("ions_rearranged") != 0]
            nu.setdefault(hop, v["attempt_frequency_THz"])
            neb_out[hop] = _hop_barriers(mine["bands"] + theirs, nu[hop], mine["flat_bands_skipped"])
    sampled_at: dict[str | None, dict[int, Configuration]] = {None: dict(enumerate(configs))}
    for j in joined:
        sampled_at[j.label] = {i: Configuration.from_dict(e) for i, e in enumerate(j.data["configurations"])}
    hop_check = _hop_energy_check(fit_problem, fit, excluded, neb_out, sampled_at, settings.site_tolerance_A, cache)
    if hop_check["n_mapped"]:
        log(f"hop check (bands not fitted): of {hop_check['n_bands']} bands {hop_check['n_single_hop']} are the "
            f"single hop, {hop_check['n_rearranged']} rearrange several ions, {hop_check['n_same_arrangement']} "
            f"relax back; Hamiltonian minus band energy change between the mapped endpoints: mean "
            f"{hop_check['mean_diff_eV']:+.3f} eV, RMS {hop_check['rms_diff_eV']:.3f} eV over {hop_check['n_mapped']}")
    if not neb_out:
        raise StructureError("no hop class has a barrier (no sampled configuration holds an ion next to "
                             "a free site); allow vacancies or lower the occupancy.")
    # the model's attempt frequency is that of the single-ion hops (knock-offs keep their own in data.json)
    good = [v for h, v in nu.items() if math.isfinite(v) and not h.startswith("knockoff:")]
    if not good:
        raise ConvergenceError("the curvature along every hop is not positive at the initial site, so no "
                               "attempt frequency can be computed; check the relaxations.")
    wall = time.perf_counter() - t_start
    data = {
        "structure": problem.source, "mobile": mobile, "supercell": list(problem.network.supercell),
        # what rebuilds the lattice problem (rewrite_model): load_problem's arguments
        "problem_args": {"structure": structure, "mobile": mobile,
                         "supercell": list(supercell) if supercell else None, "hop_cutoff_A": hop_cutoff_A,
                         "interaction_cutoff_A": interaction_cutoff_A, "exclusion_cutoff_A": exclusion_cutoff_A,
                         "dopants": [asdict(d) for d in joint_dopants]},
        "space_group": problem.space_group, "site_classes": problem.class_names,
        "orbits": [{"name": problem.orbit_name(o), "distance_A": problem.orbits[o][2],
                    "pairs_in_supercell": int((problem.pair_orbit == o).sum()), "hop": bool(problem.orbit_is_hop[o]),
                    "excluded": o in excluded} for o in range(len(problem.orbits))],
        "dopant_orbits": [fit_problem.dopant_orbit_name(o) for o in range(len(fit_problem.dopant_orbits))],
        "calculator": backend.provenance, "settings": jsonable(asdict(settings)),
        "configurations": [{**cfg.to_dict(), "energy_eV": r["energy_eV"], "relax_steps": r["steps"],
                            "n_mobile": len(cfg.occupied), "mapping": r["mapping"], "used_in_fit": k in fitted_of,
                            **{x: r[x] for x in ("fixed_cell_energy_eV", "cell_A", "cell_steps") if x in r},
                            "fitted_occupied": fitted_of[k].occupied if k in fitted_of else None,
                            "positions_A": r["positions_A"]}
                           for k, (cfg, r) in enumerate(zip(configs, results))]
                          + [{**e, "used_in_fit": k in all_fitted_of, "source": j.label, "source_index": i,
                              "fitted_occupied": all_fitted_of[k].occupied if k in all_fitted_of else None}
                             for j in joined for k, i, e in j.kept],
        "exclusions": {problem.orbit_name(o): evidence.get(problem.orbit_name(o), [])
                       for o in problem.short_orbits},
        "computed_exclusions": [problem.orbit_name(o) for o in sorted(excluded)],
        **({"pooled_exclusions": pooled} if joined else {}),
        "dopant_exclusions": dopant_evidence,
        "computed_dopant_exclusions": dopant_excluded,
        "included": included,
        "joined": [{"source": j.label, "sha256": j.sha256, "command": j.data.get("command"),
                    "date": j.data.get("date"), "configurations": len(j.kept), "fitted": j.n_fitted,
                    "already_here": j.duplicates} for j in joined],
        "fit": {"terms": {n: {"value_eV": float(v), "error_eV": float(e)}
                          for n, v, e in zip(fit.names, fit.values_eV, fit.errors_eV)},
                "undetermined": fit.undetermined, "alpha": fit.alpha, "cv_rmse_eV_per_cell": fit.cv_rmse_eV,
                "cv_rmse_meV_per_mobile_ion": 1000 * fit.cv_rmse_eV / n_sites_mobile,
                "train_rmse_eV_per_cell": fit.train_rmse_eV, "n_configurations": fit.n_configurations,
                "n_folds": fit.n_folds, "reference_class": problem.class_names[0],
                "chemical_potentials_eV": fit.chemical_potentials_eV.tolist(),
                "predictions_eV": fit.predictions_eV.tolist(), **fit.details},
        "interstitialcy": interstitialcy,
        "neb": neb_out, "hop_energy_check": hop_check, "attempt_frequency_THz": float(np.mean(good)),
        "wall_s": wall, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command or f"kmc parametrize {shlex.quote(structure)} --mobile {mobile}",
    }
    if name:
        data["name"] = name
    text = model_toml(fit_problem, data, fit, excluded)
    model = ParametrizedModel(text, data)
    model.summary = {
        "structure": problem.source, "site_energies_eV": {problem.class_names[0]: 0.0, **{
            n[5:]: fit.value(n) for n in fit.names if n.startswith("site:")}},
        "terms": data["fit"]["terms"], "undetermined": fit.undetermined,
        "cv_rmse_meV_per_cell": 1000 * fit.cv_rmse_eV, "cv_rmse_meV_per_mobile_ion": data["fit"]["cv_rmse_meV_per_mobile_ion"],
        "computed_exclusions": data["computed_exclusions"],
        "computed_dopant_exclusions": dopant_excluded,
        "barriers_eV": {k: {"mean": v["E_KRA_mean_eV"], "std": v["E_KRA_std_eV"], "n": v["n_environments"]}
                        for k, v in neb_out.items()},
        "attempt_frequency_THz": data["attempt_frequency_THz"], "n_configurations": len(data["configurations"]),
        "hop_energy_check": hop_check,
        "wall_s": wall}
    if out_dir is not None:
        model.out_dir = write_model_dir(Path(out_dir), text, data)
        model.summary.update({"model": str(model.out_dir / "model.toml"), "data": str(model.out_dir / "data.json")})
    return model
