"""Exact checks of the engine and the transport analysis: ``kmc validate [--quick]``.

Every check runs a seeded simulation whose answer is known exactly from results nobody here
wrote, and compares the model value with it in units of the standard error (SE) the code itself
reports. A check passes when

* ``|model - exact| < 4 SE`` (:data:`SE_TOLERANCE`), and
* the SE is small enough for the comparison to mean something: below ``max_rel_se * |exact|``
  (or ``max_abs_se``), so that a real error of a few per cent cannot hide behind a wide error
  bar; or, for a distribution test, its p-value is above :data:`P_MIN`.

The exact results (see also ``tests/validation``):

* the single-vacancy tracer correlation factor f of the simulated periodic box
  (:func:`single_vacancy_f_exact`, the statistical target: one vacancy in a box of N sites gives
  an f above the infinite lattice's by an O(1/N) excess, +0.07 to +0.23 % in the boxes used
  here), reported next to the value of the infinite 2D or 3D lattice
  (:data:`EXACT_CORRELATION_FACTORS`: Compaan & Haven, Trans. Faraday Soc. 52, 786 (1956) and
  54, 1498 (1958); the 3D values to nine digits from D. R. Trinkle's Green-function code
  ``onsager``, Philos. Mag. 97, 2514 (2017); the 2D closed forms 1/(pi - 1) for the square and
  (pi + 6 sqrt 3)/(11 pi - 6 sqrt 3) for the triangular lattice, and 1/3 for honeycomb);
* one vacancy on a ring of N sites: the exact finite-time f from the winding of the vacancy
  walk (:func:`ring_f_exact`);
* one ion: ``D = z Gamma a^2 / (2 d)`` and exponential waiting times of rate ``z Gamma``;
* a non-interacting lattice gas at filling c: ``D_J = (1 - c) z Gamma a^2 / (2 d)``;
* two site classes with an energy difference: the exact canonical occupation (enumerated);
* Arrhenius recovery: a lattice gas with one barrier gives back that barrier as Ea.

The full set (``quick=False``) uses the replica counts of ``tests/validation`` and takes a few
minutes; ``quick=True`` uses fewer lattices and replicas (with correspondingly looser, but still
meaningful, SE bounds) and takes well under two minutes on two cores.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np
import scipy.sparse as sp
from scipy import stats
from scipy.sparse.linalg import splu
from scipy.special import gammaln

from kmc.config import Config
from kmc.constants import KB_EV_K
from kmc.engine.simulation import Simulation
from kmc.exceptions import ConfigError
from kmc.runs.replicas import replica_seeds, run_replica
from kmc.runs.runner import run_config
from kmc.runs.system import build_system
from kmc.system.lattices import teaching_lattice

if TYPE_CHECKING:  # annotations only
    from kmc.system.network import SiteNetwork

#: a model value passes when it lies within this many standard errors of the exact value
SE_TOLERANCE = 4.0
#: a distribution test passes when its p-value is above this
P_MIN = 1e-3

#: exact single-vacancy tracer correlation factors of the infinite lattices (all nearest-neighbour
#: hops equal); sources in the module docstring; tests/data/correlation_factors.toml (the project's
#: reference set, Green-function values) is checked against these in tests/test_validate.py
EXACT_CORRELATION_FACTORS: dict[str, float] = {
    "honeycomb": 1.0 / 3.0,
    "square": 1.0 / (math.pi - 1.0),
    "triangular": (math.pi + 6 * math.sqrt(3)) / (11 * math.pi - 6 * math.sqrt(3)),
    "diamond": 0.5,
    "sc": 0.653108838,
    "bcc": 0.727194140,
    "fcc": 0.781451422,
}

#: supercells for the single-vacancy checks (>= ~1000 sites; the target is the exact f of the box,
#: above the infinite lattice's by an O(1/N) excess)
VACANCY_SUPERCELL: dict[str, tuple[int, int, int]] = {
    "honeycomb": (24, 24, 1), "square": (36, 36, 1), "triangular": (36, 36, 1),
    "diamond": (6, 6, 6), "sc": (12, 12, 12), "bcc": (10, 10, 10), "fcc": (8, 8, 8)}

#: replicas of the full single-vacancy checks (from the 32-replica calibration of
#: tests/validation: an expected SE of about 0.25 % of f)
VACANCY_REPLICAS_FULL: dict[str, int] = {
    "honeycomb": 190, "square": 320, "triangular": 113, "diamond": 82, "sc": 59, "bcc": 53,
    "fcc": 32}

#: attempt frequency (Hz), barrier (eV) and temperature (K) of the simple checks
NU_HZ, BARRIER_EV, T_K = 1e13, 0.2, 600.0


@dataclass(frozen=True)
class Check:
    """One model-vs-exact comparison.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"f sc"``.
    description : str
        What is compared.
    model : float
        The simulated value.
    se : float
        Its standard error (NaN for a distribution test).
    exact : float
        The exact value.
    max_se : float
        Largest SE for which the comparison counts as sharp (absolute, same unit as ``model``).
    p_value : float or None
        For a distribution test (Kolmogorov-Smirnov): its p-value; ``model`` is then the test
        statistic and ``exact`` is 0.
    seconds : float
        Wall time of the check.
    reference : str
        Where the exact value comes from.
    infinite : float or None
        For a correlation factor: the infinite-lattice value, reported beside ``exact`` (the
        value of the simulated finite box, which is what ``model`` is compared with).
    """

    name: str
    description: str
    model: float
    se: float
    exact: float
    max_se: float
    p_value: float | None = None
    seconds: float = 0.0
    reference: str = ""
    infinite: float | None = None

    @property
    def deviation_se(self) -> float:
        """``(model - exact) / SE`` (NaN for a distribution test)."""
        if self.p_value is not None or not (self.se > 0):
            return float("nan")
        return (self.model - self.exact) / self.se

    @property
    def sharp(self) -> bool:
        """Whether the SE is small enough for the comparison to be meaningful."""
        return self.p_value is not None or (math.isfinite(self.se) and 0 < self.se <= self.max_se)

    @property
    def passed(self) -> bool:
        """Within :data:`SE_TOLERANCE` SE of the exact value with a sharp SE (or p > P_MIN)."""
        if self.p_value is not None:
            return bool(self.p_value > P_MIN)
        dev = self.deviation_se
        return bool(math.isfinite(dev) and abs(dev) < SE_TOLERANCE and self.sharp)

    def to_dict(self) -> dict:
        """JSON-ready fields, including ``deviation_se``, ``sharp`` and ``passed``."""
        return {"name": self.name, "description": self.description, "model": self.model,
                "se": self.se, "exact": self.exact, "max_se": self.max_se,
                "deviation_se": self.deviation_se, "p_value": self.p_value, "sharp": self.sharp,
                "passed": self.passed, "seconds": self.seconds, "reference": self.reference,
                "infinite": self.infinite}


def hop_rate(barrier_eV: float = BARRIER_EV, temperature_K: float = T_K,
             nu_Hz: float = NU_HZ) -> float:
    """``Gamma = nu exp(-E / kT)`` of one hop (Hz)."""
    return nu_Hz * math.exp(-barrier_eV / (KB_EV_K * temperature_K))


def _config(lattice: str, supercell, occupancy: dict, run: dict, **model) -> Config:
    m = {"attempt_frequency_THz": NU_HZ / 1e12, "barrier_eV": BARRIER_EV}
    m.update(model)
    r = {"temperatures_K": [T_K], "equilibration_hops_per_ion": 20, "msd_points": 2}
    r.update(run)
    lat = {"builtin": lattice, "supercell": list(supercell)}
    if "site_labels" in m:
        lat["site_labels"] = m.pop("site_labels")
    return Config.from_dict({"lattice": lat, "occupancy": occupancy, "model": m, "run": r})


def _mean_se(x) -> tuple[float, float]:
    x = np.asarray(x, float)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))


# ------------------------------------------------------------------------------ the checks
def check_correlation_factor(lattice: str, replicas: int, hops_per_ion: float = 200,
                             max_rel_se: float = 0.015, seed: int = 2024,
                             supercell: tuple[int, int, int] | None = None) -> Check:
    """Single-vacancy tracer correlation factor on a teaching lattice against the exact value
    of the simulated periodic box (:func:`single_vacancy_f_exact`); the infinite-lattice value
    (:data:`EXACT_CORRELATION_FACTORS`) is reported beside it.

    Parameters
    ----------
    lattice : str
        A key of :data:`EXACT_CORRELATION_FACTORS`.
    replicas : int
        Independent replicas (the SE is taken over them).
    hops_per_ion : float
        Measured hops per ion of each replica.
    max_rel_se : float
        The SE must be below this fraction of the exact value.
    seed : int
        Seed of the run.
    supercell : 3 ints, optional
        Default :data:`VACANCY_SUPERCELL`.
    """
    cells = supercell or VACANCY_SUPERCELL[lattice]
    cfg = _config(lattice, cells, {"vacancies": 1},
                  {"hops_per_ion": hops_per_ion, "replicas": replicas, "seed": seed})
    exact = single_vacancy_f_exact(build_system(cfg).network)
    r = run_config(cfg).results[0]
    box = "x".join(str(c) for c in cells)
    return Check(f"f {lattice}", f"single-vacancy correlation factor, {lattice} {box} box "
                 f"({replicas} replicas)", r["correlation_factor"], r["correlation_factor_err"],
                 exact, max_rel_se * exact,
                 reference="exact for this box (jump-chain matrix method); infinite lattice: "
                           "Compaan & Haven 1956/58, Trinkle, onsager (2017)",
                 infinite=EXACT_CORRELATION_FACTORS[lattice])


def ring_f_exact(n_sites: int, hops: int) -> float:
    """Exact ``E[sum_i R_i^2] / M`` for one vacancy making ``M`` hops on a ring of ``N`` sites.

    Relative to any ion the vacancy walks on a ring of ``L = N - 1`` positions and the ion steps
    by -1/+1 each time that walk winds; the ``N - 1`` ions start at the ``L`` distinct offsets, so
    ``sum_i R_i^2 = sum_k floor((Y + k - 1) / L)^2`` with ``Y`` the vacancy's net displacement,
    a binomial random walk.

    Parameters
    ----------
    n_sites : int
        Sites on the ring.
    hops : int
        Vacancy hops ``M``.

    Returns
    -------
    float
        The expected correlation factor of the window (lattice constant 1).
    """
    L = n_sites - 1
    k = np.arange(hops + 1)
    y = 2 * k - hops
    logp = gammaln(hops + 1) - gammaln(k + 1) - gammaln(hops - k + 1) - hops * math.log(2)
    offsets = np.arange(1, L + 1)
    wind = np.floor((y[:, None] + offsets[None, :] - 1) / L)
    return float(np.sum(np.exp(logp) * np.sum(wind ** 2, axis=1)) / hops)


def vacancy_network(lattice: str, supercell: tuple[int, int, int]) -> SiteNetwork:
    """The site network of the single-vacancy checks: the builtin ``lattice`` repeated
    ``supercell`` times, built through the config path of ``kmc run`` (:func:`build_system`)."""
    return build_system(_config(lattice, supercell, {"vacancies": 1},
                                {"replicas": 1, "seed": 0})).network


def single_vacancy_jump_chain(network: SiteNetwork) -> tuple[np.ndarray, np.ndarray]:
    """Markov chain of the successive jumps of a tracer exchanging with one vacancy in the
    finite periodic ``network`` (every hop at the same rate).

    A jump state is a hop template ``t`` of the network (the tracer jumps from unit-cell site
    ``src[t]`` by ``hop_vectors[t]``); afterwards the vacancy sits on the site the tracer left
    and walks uniformly over the hops of the supercell until it hops back onto the tracer, from
    one of the tracer's neighbours, which is the next jump.  The probability of each next jump
    is an absorption probability of that walk on the other ``N - 1`` sites (a sparse linear
    solve per unit-cell site; the lattice is periodic, so the tracer's cell does not matter).

    Parameters
    ----------
    network : SiteNetwork
        A connected periodic network without knock-off events.

    Returns
    -------
    P : ndarray, shape (n_templates, n_templates)
        ``P[t, u]``: probability that jump ``t`` is followed by jump ``u``.
    vectors : ndarray, shape (n_templates, 3)
        The jump vectors (Å) of the templates.
    """
    h = network.hops
    n_t, n = len(h), network.n_sites
    off, nbr, tmpl = network.csr(h)
    src = np.repeat(np.arange(n), np.diff(off))
    # the reverse of template (a -> b, image i) is (b -> a, -i)
    index = {(a, b, tuple(i)): t for t, (a, b, i) in
             enumerate(zip(h.src.tolist(), h.dst.tolist(), h.image.tolist()))}
    rev = np.array([index[(b, a, tuple(-np.array(i)))] for a, b, i in
                    zip(h.src.tolist(), h.dst.tolist(), h.image.tolist())])
    # vacancy walk: every hop out of a site equally likely (parallel hops to one site add up)
    walk = sp.csr_matrix((1.0 / np.diff(off)[src], (src, nbr)), shape=(n, n))
    P = np.zeros((n_t, n_t))
    for u in range(network.n_unit):
        s = u                                   # site u of the supercell's first cell
        keep = np.flatnonzero(np.arange(n) != s)
        pos = np.full(n, -1)
        pos[keep] = np.arange(n - 1)
        lu = splu(sp.identity(n - 1, format="csc") - walk[keep][:, keep].tocsc())
        into = np.flatnonzero(nbr == s)         # the hops that bring the vacancy onto the tracer
        R = np.zeros((n - 1, len(into)))
        R[pos[src[into]], np.arange(len(into))] = 1.0 / np.diff(off)[src[into]]
        X = lu.solve(R)                         # X[w, k]: from w, the vacancy arrives via into[k]
        nxt = rev[tmpl[into]]                   # the tracer's jump is the reverse of that hop
        for t in np.flatnonzero(h.dst == u):    # jumps that leave the tracer on u
            # the vacancy starts on the site the tracer came from: u's neighbour along rev[t]
            vac = nbr[off[s] + np.flatnonzero(tmpl[off[s]:off[s + 1]] == rev[t])[0]]
            np.add.at(P[t], nxt, X[pos[vac]])
    return P, network.hop_vectors


def single_vacancy_f_exact(network: SiteNetwork) -> float:
    """Exact tracer correlation factor of one vacancy in the finite periodic ``network``.

    From the jump chain of :func:`single_vacancy_jump_chain` (Compaan & Haven's / Howard's
    matrix method, on the finite graph instead of the infinite lattice):
    ``f = 1 + 2 sum_{k>=1} <e_0 . e_k> / <|e|^2>`` with the averages over the stationary
    distribution ``pi`` of the jumps, summed exactly with the fundamental matrix
    ``Z = (I - P + 1 pi)^-1``: ``sum_{k>=1} P^k e = (Z - I) e`` because ``pi e = 0``.
    For a ring of N sites this is ``1 / (N - 1)``; it tends to :data:`EXACT_CORRELATION_FACTORS`
    as the supercell grows (an O(1/N) excess).

    Parameters
    ----------
    network : SiteNetwork
        A connected periodic network (all hops at one rate; e.g. :func:`vacancy_network`).

    Returns
    -------
    float
        The correlation factor ``lim <R^2> / (n <|e|^2>)`` of a tracer after n -> inf jumps.
    """
    P, v = single_vacancy_jump_chain(network)
    n_t = len(P)
    # stationary distribution: pi (I - P) = 0, sum(pi) = 1
    a = np.vstack([(np.eye(n_t) - P).T, np.ones(n_t)])
    pi = np.linalg.lstsq(a, np.r_[np.zeros(n_t), 1.0], rcond=None)[0]
    Z = np.linalg.inv(np.eye(n_t) - P + np.outer(np.ones(n_t), pi))
    later = (Z - np.eye(n_t)) @ v               # sum over k >= 1 of E[e_k | e_0]
    return float(1.0 + 2.0 * np.sum(pi[:, None] * v * later) / np.sum(pi * np.sum(v * v, axis=1)))


def check_ring(n_sites: int = 16, windows: int = 300, max_rel_se: float = 0.05,
               seed: int = 16) -> Check:
    """One vacancy on a ring (``chain`` lattice): f of windows of ``4 (N - 1)^2`` hops against
    :func:`ring_f_exact` (every window starts with the ions at all offsets, so windows are
    independent and identically distributed)."""
    system = build_system(_config("chain", (n_sites, 1, 1), {"vacancies": 1},
                                  {"replicas": 1, "seed": seed}))
    sim = Simulation(system.model, T_K, n_ions=n_sites - 1, seed=seed)
    hops = 4 * (n_sites - 1) ** 2
    samples = []
    for _ in range(windows):
        sim.reset_measurement()
        sim.run(hops)
        samples.append(np.sum(sim.displacements ** 2) / sim.engine.state["sumsq"].sum())
    m, se = _mean_se(samples)
    exact = ring_f_exact(n_sites, hops)
    return Check(f"f ring N={n_sites}", f"one vacancy on a ring of {n_sites} sites, "
                 f"{hops} hops", m, se, exact, max_rel_se * exact,
                 reference="exact winding-number sum (binomial vacancy walk)")


def check_one_ion(lattice: str = "sc", supercell=(6, 6, 6), windows: int = 400,
                  hops: int = 500, waits: int = 3000, max_rel_se: float = 0.03,
                  seed: int = 5) -> list[Check]:
    """One ion: ``D = z Gamma a^2 / (2 d)`` from independent windows, the mean waiting time
    ``1 / (z Gamma)`` and a Kolmogorov-Smirnov test of the waiting times against Exp(z Gamma)."""
    tl = teaching_lattice(lattice, 1.0)
    t0 = time.perf_counter()
    system = build_system(_config(lattice, supercell, {"ions": 1}, {"replicas": 1, "seed": seed}))
    sim = Simulation(system.model, T_K, n_ions=1, seed=seed)
    rate = tl.coordination * hop_rate()
    clock = sim.engine.state["clock"]
    w = np.empty(waits)
    for k in range(waits):
        before = float(clock[0])
        sim.run(1)
        w[k] = float(clock[0]) - before
    ks = stats.kstest(w, "expon", args=(0, 1 / rate))
    m_w, se_w = _mean_se(w)
    t_wait = time.perf_counter() - t0
    t0 = time.perf_counter()
    d_est = []
    for _ in range(windows):
        sim.reset_measurement()
        sim.run(hops)
        d_est.append(np.sum(sim.displacements ** 2) / (2 * tl.dimensionality * sim.time))
    m, se = _mean_se(np.array(d_est) * 1e-16)  # Å^2/s -> cm^2/s
    exact = rate * tl.nn_distance_A ** 2 / (2 * tl.dimensionality) * 1e-16
    t_d = time.perf_counter() - t0
    return [
        Check(f"D one ion {lattice}", f"one ion on {lattice}: D = z Gamma a^2/(2d) (cm2/s)", m, se,
              exact, max_rel_se * exact, seconds=t_d, reference="random walk"),
        Check("mean wait", f"one ion on {lattice}: mean waiting time 1/(z Gamma) (s)", m_w, se_w,
              1 / rate, max_rel_se / rate, seconds=t_wait / 2,
              reference="Poisson process"),
        Check("wait KS", f"waiting times vs Exp(z Gamma), Kolmogorov-Smirnov ({waits} hops)",
              float(ks.statistic), float("nan"), 0.0, float("nan"), p_value=float(ks.pvalue),
              seconds=t_wait / 2, reference="Poisson process"),
    ]


def check_lattice_gas(filling: float = 0.5, replicas: int = 96, hops_per_ion: float = 150,
                      max_rel_se: float = 0.15, seed: int = 50) -> Check:
    """Non-interacting lattice gas on simple cubic 6^3 at ``filling``:
    ``D_J = (1 - c) z Gamma a^2 / (2 d)``."""
    cfg = _config("sc", (6, 6, 6), {"filling": filling},
                  {"hops_per_ion": hops_per_ion, "replicas": replicas, "seed": seed})
    r = run_config(cfg).results[0]
    exact = (1 - filling) * 6 * hop_rate() / 6 * 1e-16  # a = 1 Å, z = 6, d = 3
    return Check(f"D_J gas c={filling:g}", f"lattice gas on sc at c = {filling:g}: "
                 f"D_J = (1-c) z Gamma a^2/(2d) (cm2/s)", r["D_jump_cm2_s"],
                 r["D_jump_err_cm2_s"], exact, max_rel_se * exact,
                 reference="lattice gas with site exclusion")


def exact_two_class_occupation(n_ions: int, sites_per_class: int, dE_eV: float,
                               temperature_K: float) -> float:
    """Exact canonical mean fraction of the B sites occupied: ``n_ions`` non-interacting ions on
    ``sites_per_class`` A sites and as many B sites, B higher by ``dE_eV`` (sum over the number
    k of ions on B of ``C(M, n-k) C(M, k) exp(-k dE / kT)``)."""
    m = sites_per_class
    k = np.arange(max(0, n_ions - m), min(n_ions, m) + 1)
    logw = (gammaln(m + 1) - gammaln(n_ions - k + 1) - gammaln(m - n_ions + k + 1)
            + gammaln(m + 1) - gammaln(k + 1) - gammaln(m - k + 1)
            - k * dE_eV / (KB_EV_K * temperature_K))
    p = np.exp(logw - logw.max())
    return float(np.sum(k * p) / p.sum()) / m


def check_boltzmann(replicas: int = 16, hops_per_ion: float = 300, dE_eV: float = 0.05,
                    max_rel_se: float = 0.02, seed: int = 3) -> Check:
    """Two site classes on bcc 4^3 (corners A, body centres B higher by ``dE_eV``) at filling 0.3:
    the time-averaged B occupation against the exact canonical value."""
    cfg = _config("bcc", (4, 4, 4), {"filling": 0.3},
                  {"hops_per_ion": hops_per_ion, "replicas": replicas, "seed": seed},
                  site_labels=["A", "B"], site_energies_eV={"B": dE_eV})

    system = build_system(cfg)
    seeds = replica_seeds(cfg.run.seed, 1, cfg.run.replicas)[0]
    m_sites = 64
    occ = [run_replica(system, T_K, s, cfg.run).sample.class_occupation[1] / m_sites
           for s in seeds]
    m, se = _mean_se(occ)
    exact = exact_two_class_occupation(system.n_ions, m_sites, dE_eV, T_K)
    return Check("occupation B", f"two site classes, dE = {dE_eV:g} eV: B-site occupation",
                 m, se, exact, max_rel_se * exact, reference="canonical ensemble (enumerated)")


def check_arrhenius(replicas: int = 8, hops_per_ion: float = 400, time_origins: int = 20,
                    max_se_eV: float = 0.005, seed: int = 1000) -> Check:
    """Lattice gas (16 ions on 8^3 sc, a = 2.5 Å) with one 0.30 eV barrier at 300-600 K: the
    D* Arrhenius fit must give Ea = 0.30 eV (every rate is the same Gamma(T), so D* is exactly
    proportional to exp(-0.30 eV / kT))."""
    ea = 0.30
    cfg = Config.from_dict({
        "lattice": {"builtin": "sc", "supercell": [8, 8, 8], "lattice_constant_A": 2.5},
        "occupancy": {"ions": 16},
        "model": {"attempt_frequency_THz": 10.0, "barrier_eV": ea},
        "run": {"temperatures_K": [300.0, 400.0, 500.0, 600.0], "hops_per_ion": hops_per_ion,
                "time_origins": time_origins, "equilibration_hops_per_ion": 5,
                "replicas": replicas, "seed": seed, "msd_points": 2,
                "arrhenius_basis": "D_tracer"}})
    a = run_config(cfg).arrhenius
    return Check("Arrhenius Ea", "Ea from a D* sweep 300-600 K of a 0.30 eV lattice gas (eV)",
                 a["Ea_eV"], a["Ea_err_eV"], ea, max_se_eV,
                 reference="Gamma = nu exp(-Ea/kT) by construction")


# ------------------------------------------------------------------------------ the suite
#: check groups in run order: name -> (quick plan, full plan); each plan returns thunks
GROUPS = ("correlation", "ring", "one-ion", "lattice-gas", "boltzmann", "arrhenius")


def _plan(group: str, quick: bool) -> list[Callable[[], Check | list[Check]]]:
    if group == "correlation":
        if quick:
            return [lambda lat=lat: check_correlation_factor(lat, 24, 100, 0.015)
                    for lat in ("square", "triangular", "honeycomb", "sc", "bcc", "fcc")]
        return [lambda lat=lat: check_correlation_factor(lat, VACANCY_REPLICAS_FULL[lat], 500,
                                                         0.0035)
                for lat in EXACT_CORRELATION_FACTORS]
    if group == "ring":
        return [lambda: check_ring(16, 2500 if quick else 10000, 0.04 if quick else 0.02)]
    if group == "one-ion":
        return [lambda: check_one_ion(windows=2000 if quick else 8000, hops=200,
                                      waits=2000 if quick else 10000,
                                      max_rel_se=0.03 if quick else 0.015)]
    if group == "lattice-gas":
        return [lambda: check_lattice_gas(0.5, 96 if quick else 320, 150,
                                          0.12 if quick else 0.08)]
    if group == "boltzmann":
        return [lambda: check_boltzmann(12 if quick else 32, 200 if quick else 300,
                                        max_rel_se=0.03 if quick else 0.02)]
    if group == "arrhenius":
        return [lambda: check_arrhenius(8, 200 if quick else 400, 10 if quick else 20,
                                        0.008 if quick else 0.005)]
    raise KeyError(group)


def resolve_groups(only: Iterable[str] | None) -> list[str]:
    """The check groups to run: all of :data:`GROUPS` for None or empty, else ``only`` (each
    must be a group name; a ConfigError names the first unknown one)."""
    groups = list(GROUPS) if not only else list(dict.fromkeys(only))
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ConfigError(f"unknown check group {unknown[0]!r}; choose from {', '.join(GROUPS)}.")
    return groups


def run_checks(quick: bool = False, only: Iterable[str] | None = None,
               on_check: Callable[[Check], None] | None = None) -> list[Check]:
    """Run the exact checks.

    Parameters
    ----------
    quick : bool
        Fewer lattices and replicas (under two minutes on two cores) instead of the full set.
    only : iterable of str, optional
        Run only these groups (see :data:`GROUPS`).
    on_check : callable, optional
        Called with every :class:`Check` as soon as it is done.

    Returns
    -------
    list of Check
    """
    groups = resolve_groups(only)
    out: list[Check] = []
    for g in groups:
        for thunk in _plan(g, quick):
            t0 = time.perf_counter()
            res = thunk()
            items = res if isinstance(res, list) else [res]
            if not isinstance(res, list):
                items = [Check(**{**res.__dict__, "seconds": time.perf_counter() - t0})]
            for c in items:
                out.append(c)
                if on_check is not None:
                    on_check(c)
    return out


def _fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.6g}" if 1e-3 <= abs(x) < 1e4 or x == 0 else f"{x:.4e}"


TABLE_HEAD = (f"{'check':<18} {'model':>12} {'± SE':>11} {'exact':>12} {'dev (SE)':>9} "
              f"{'result':>6} {'infinite lattice':>16}")


def format_row(c: Check) -> str:
    """One line of the table: model ± SE, exact, deviation in SE (or the KS p-value), result;
    for a correlation factor also the infinite-lattice value (``exact`` is the box's)."""
    dev = f"p={c.p_value:.2g}" if c.p_value is not None else (
        f"{c.deviation_se:+.2f}" if math.isfinite(c.deviation_se) else "-")
    res = "ok" if c.passed else ("FAIL" if c.sharp else "BLUNT")
    row = (f"{c.name:<18} {_fmt(c.model):>12} {_fmt(c.se):>11} {_fmt(c.exact):>12} "
           f"{dev:>9} {res:>6}")
    return row if c.infinite is None else f"{row} {_fmt(c.infinite):>16}"
