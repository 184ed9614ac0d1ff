"""Rate model: physical parameters -> the flat arrays the engine runs on, plus an independent numpy
reference of every rate (used by the tests and the engine's debug mode).

Rate of a hop i -> j: ``nu0 * exp(-Ea / kT)`` with ``Ea = max(E_KRA + dE/2, dE, 0)`` and
``dE = E_final - E_initial`` (site energies, mobile-mobile pair interactions per distance shell,
mobile-blocker interactions, and the work ``-q E . dr`` of an applied field).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kmc.constants import beta_per_eV
from kmc.engine._engine import QUANTUM_EV
from kmc.exceptions import ConfigError
from kmc.system.network import SiteNetwork

EMPTY, ION, BLOCKER = 0, 1, 2  # site states
#: largest |energy| (eV) of a barrier, site energy, pair interaction or field work: far beyond any
#: physical value, and small enough that no sum of them overflows (nor an integer field, see
#: ``QUANTUM_EV``)
MAX_ENERGY_EV = 1e4
#: largest attempt frequency (Hz): 1e6 THz, far above any phonon frequency
MAX_ATTEMPT_FREQUENCY_HZ = 1e18


def _check_energies(what: str, key: str, values: np.ndarray, example: str) -> None:
    """Finite and within +-MAX_ENERGY_EV, or a ConfigError naming ``key``."""
    values = np.asarray(values, float)
    bad = values[~(np.abs(values) <= MAX_ENERGY_EV)]
    if bad.size:
        raise ConfigError(f"{what} must be finite and within +-{MAX_ENERGY_EV:g} eV, got "
                          f"{float(bad.flat[0])!r}; set {key} to an energy in eV such as "
                          f"{example}.")


def shell_energies(shell_lengths: np.ndarray, table: list[tuple[float, float]]) -> np.ndarray:
    """Energy of each interaction shell from a ``[(r_max_A, J_eV), ...]`` table (increasing r_max;
    J applies to distances in (previous r_max, r_max])."""
    out = np.zeros(len(shell_lengths))
    lower = -np.inf
    for r_max, j in table:
        if r_max <= lower:
            raise ConfigError("interaction shells must be listed with increasing r_max_A.")
        out[(shell_lengths > lower + 1e-9) & (shell_lengths <= r_max + 1e-9)] = j
        lower = r_max
    return out


@dataclass
class RateModel:
    """Energy model on a :class:`SiteNetwork`.

    Parameters
    ----------
    network : SiteNetwork
    attempt_frequency_Hz : float or array per hop class
    barrier_eV : float or array per hop class
        Kinetically resolved barrier E_KRA of each hop class.
    site_energy_eV : array per site class, optional
    mobile_mobile : list of (r_max_A, J_eV), optional
        Pair interaction between mobile ions by distance shell.
    mobile_blocker : list of (r_max_A, J_eV), optional
        Interaction of a mobile ion with an immobile blocker on a mobile-ion site.
    field_V_per_A : 3 floats, optional
        Uniform electric field; adds ``-q E . dr`` to every hop's dE.
    charge_e : float
        Charge of the mobile ion in units of e.
    site_energy_offset_eV : array per supercell site, optional
        Extra static energy of an ion on each site (e.g. the local perturbation near a placed
        dopant); it breaks translation invariance, so the engine then evaluates every rate.
    """

    network: SiteNetwork
    attempt_frequency_Hz: float | np.ndarray = 1e13
    barrier_eV: float | np.ndarray = 0.0
    site_energy_eV: np.ndarray | None = None
    mobile_mobile: list = field(default_factory=list)
    mobile_blocker: list = field(default_factory=list)
    field_V_per_A: tuple[float, float, float] = (0.0, 0.0, 0.0)
    charge_e: float = 1.0
    site_energy_offset_eV: np.ndarray | None = None

    def __post_init__(self) -> None:
        net = self.network
        n_hc = len(net.event_class_names)
        self.nu_class = np.broadcast_to(np.asarray(self.attempt_frequency_Hz, float), (n_hc,)).copy()
        self.kra_class = np.broadcast_to(np.asarray(self.barrier_eV, float), (n_hc,)).copy()
        ok_nu = (self.nu_class > 0) & (self.nu_class <= MAX_ATTEMPT_FREQUENCY_HZ)
        bad_nu = self.nu_class[~ok_nu]
        if bad_nu.size:
            raise ConfigError(f"attempt frequencies must be positive and at most "
                              f"{MAX_ATTEMPT_FREQUENCY_HZ:g} Hz, got {float(bad_nu[0])!r} Hz; set "
                              f"[model] attempt_frequency_THz to a phonon frequency such as 10.")
        _check_energies("barriers", "[model] barrier_eV", self.kra_class, "0.3")
        e = np.zeros(len(net.class_names)) if self.site_energy_eV is None else \
            np.asarray(self.site_energy_eV, float)
        if e.shape != (len(net.class_names),):
            raise ConfigError("site energies need one finite value per site class.")
        _check_energies("site energies", "[model.site_energies_eV]", e, "0.1")
        self.class_energy = e
        for table in (self.mobile_mobile, self.mobile_blocker):
            _check_energies("pair interactions", "[model.interactions_eV]",
                            [j for _, j in table], "0.05")
        J = shell_energies(net.shell_lengths, self.mobile_mobile)
        # integer interaction energies: the engine's fields never drift (see src/kmc/engine/_engine.pyx)
        self.shell_Jq = np.rint(J / QUANTUM_EV).astype(np.int64)
        if len(net.interactions):  # the engine's integer field on a site must not overflow
            most = np.bincount(net.interactions.src, minlength=net.n_unit,
                               weights=np.abs(J[net.interaction_shell])).max()
            if most / QUANTUM_EV >= 2.0**62:
                raise ConfigError(f"the pair interactions on one site add up to {most:.3g} eV, "
                                  f"beyond what the engine's integer fields hold; use smaller "
                                  f"[model.interactions_eV] energies or a shorter range.")
        self.shell_J_blocker = shell_energies(net.shell_lengths, self.mobile_blocker)
        self.field = np.asarray(self.field_V_per_A, float)
        if self.field.shape != (3,) or np.any(~np.isfinite(self.field)):
            raise ConfigError("field_V_per_A must be three finite numbers.")
        with np.errstate(all="ignore"):
            work = self.charge_e * (net.hop_vectors @ self.field)
        if not np.all(np.abs(work) <= MAX_ENERGY_EV):
            raise ConfigError(f"the field does work beyond +-{MAX_ENERGY_EV:g} eV on a hop; set "
                              f"[model] field_V_per_A to a small field such as [0.01, 0, 0] V/Å.")
        if self.site_energy_offset_eV is not None:
            off = np.asarray(self.site_energy_offset_eV, float)
            if off.shape != (net.n_sites,) or np.any(~np.isfinite(off)):
                raise ConfigError("site_energy_offset_eV needs one finite value per supercell "
                                  "site.")
            _check_energies("site energy offsets", "the dopant energy_shift_eV", off, "0.05")
            self.site_energy_offset_eV = off

    @property
    def interacting(self) -> bool:
        return bool(np.any(self.shell_Jq != 0))

    # ------------------------------------------------------------------ per-site / template arrays
    def site_energies(self, occ: np.ndarray) -> np.ndarray:
        """Static energy of an ion on each site: site-class energy plus its interaction with the
        blockers in ``occ`` (blockers never move, so this is fixed for a run)."""
        net = self.network
        E = self.class_energy[net.site_class].copy()
        if self.site_energy_offset_eV is not None:
            E += self.site_energy_offset_eV
        if np.any(self.shell_J_blocker != 0) and np.any(occ == BLOCKER):
            off, nbr, tmpl = net.csr(net.interactions)
            J = self.shell_J_blocker[net.interaction_shell[tmpl]]
            src = np.repeat(np.arange(net.n_sites), np.diff(off))
            np.add.at(E, src, J * (occ[nbr] == BLOCKER))
        return E

    def _template_field_energy(self) -> np.ndarray:
        t = self.network.templates
        return -self.charge_e * ((t.vec1 + t.vec2) @ self.field)

    def _template_pair_Jq(self) -> np.ndarray:
        """Quantized interaction between the source and destination of each template (0 if out
        of range): the part of the destination's field that the leaving ion itself makes.

        In a small supercell the source can reach the destination's site through more than one
        periodic image (e.g. both neighbours along x in a 2-wide supercell are the same site); the
        field counts every image, so the sum runs over all interaction pairs whose image equals
        the template's modulo the supercell."""
        net = self.network
        t = net.templates
        out = np.zeros(len(t), dtype=np.int64)
        if len(net.interactions) == 0:
            return out
        n = np.array(net.supercell)
        acc: dict[tuple, int] = {}
        for a, b, i, j in zip(net.interactions.src.tolist(), net.interactions.dst.tolist(),
                              (net.interactions.image % n).tolist(),
                              self.shell_Jq[net.interaction_shell].tolist()):
            acc[(a, b, tuple(i))] = acc.get((a, b, tuple(i)), 0) + j
        for k, (a, b, i) in enumerate(zip(t.src.tolist(), t.dst.tolist(),
                                          (t.dst_image % n).tolist())):
            out[k] = acc.get((a, b, tuple(i)), 0)
        return out

    def _template_src_excluded(self) -> np.ndarray:
        """How often the source counts among the occupied excluded neighbours of the destination
        (0 or 1, or more when a small supercell joins them through several periodic images)."""
        net = self.network
        t = net.templates
        n = np.array(net.supercell)
        count: dict[tuple, int] = {}
        for a, b, i in zip(net.exclusions.src.tolist(), net.exclusions.dst.tolist(),
                           (net.exclusions.image % n).tolist()):
            count[(a, b, tuple(i))] = count.get((a, b, tuple(i)), 0) + 1
        # pairs of the destination's list that land on the source: (dst, src, -image mod n)
        return np.array([count.get((b, a, tuple(i)), 0) for a, b, i in zip(
            t.src.tolist(), t.dst.tolist(), (-t.dst_image % n).tolist())], dtype=np.uint8)

    @staticmethod
    def barrier(kra: np.ndarray, dE: np.ndarray) -> np.ndarray:
        """Kinetically resolved barrier ``max(E_KRA + dE/2, dE, 0)``."""
        return np.maximum(np.maximum(kra + 0.5 * dE, dE), 0.0)

    def engine_spec(self, occ: np.ndarray, temperature_K: float) -> tuple[dict, bool]:
        """Static arrays of the engine for this occupancy pattern of blockers, and whether every
        rate is a per-template constant (no interactions, translation-invariant site energies)."""
        net = self.network
        tp = net.templates
        hc = tp.klass
        E_site = self.site_energies(occ)
        beta = beta_per_eV(temperature_K)
        t_dE = self._template_field_energy()
        E_unit = self.class_energy[net.unit_class]
        static = (not self.interacting) and np.array_equal(E_site, np.tile(E_unit, net.n_cells))
        dE0 = t_dE + E_unit[tp.dst] - E_unit[tp.src]
        rate0 = self.nu_class[hc] * np.exp(-beta * self.barrier(self.kra_class[hc], dE0))
        _, ex_nbr, _ = net.csr(net.exclusions)
        if self.interacting:
            _, in_nbr, in_t = net.csr(net.interactions)
            in_Jq = self.shell_Jq[net.interaction_shell[in_t]]
            uoff_in = net.unit_offsets(net.interactions)
        else:
            in_nbr, in_Jq = np.zeros(0, np.int32), np.zeros(0, np.int64)
            uoff_in = np.zeros(net.n_unit + 1, np.int64)
        ev = net.events()
        spec = {k: ev[k] for k in ("ev_dst", "ev_mid", "mid_off", "mid_ev", "mid_src")}
        spec["layout"] = np.array([net.n_unit, len(tp), net.n_sites], dtype=np.int64)
        spec.update(
            uoff_out=net.unit_offsets(tp.as_pairs), uoff_ex=net.unit_offsets(net.exclusions),
            ex_nbr=ex_nbr, uoff_in=uoff_in, in_nbr=in_nbr,
            in_Jq=np.ascontiguousarray(in_Jq, dtype=np.int64),
            t_vec1=np.ascontiguousarray(tp.vec1), t_vec2=np.ascontiguousarray(tp.vec2),
            t_len1sq=np.einsum("ij,ij->i", tp.vec1, tp.vec1),
            t_len2sq=np.einsum("ij,ij->i", tp.vec2, tp.vec2),
            t_kra=self.kra_class[hc], t_nu=self.nu_class[hc], t_dE=t_dE,
            t_Jq=self._template_pair_Jq(), t_srcex=self._template_src_excluded(),
            t_rate0=rate0, E_site=E_site, site_class=net.site_class.astype(np.int32),
        )
        return spec, bool(static)

    # ------------------------------------------------------------------ numpy reference
    def reference_rates(self, occ: np.ndarray, temperature_K: float) -> np.ndarray:
        """Every event rate computed from scratch with numpy (independent of the engine)."""
        net = self.network
        beta = beta_per_eV(temperature_K)
        hc = net.templates.klass[net.events()["ev_tmpl"].astype(np.int64)]
        rate = self.nu_class[hc] * np.exp(-beta * self.barriers(occ))
        return np.where(self.allowed(occ), rate, 0.0)

    def barriers(self, occ: np.ndarray) -> np.ndarray:
        """Kinetically resolved barrier Ea (eV) of every event in ``occ`` (allowed or not)."""
        net = self.network
        ev = net.events()
        src = np.repeat(np.arange(net.n_sites), np.diff(ev["out_off"]))
        dst = ev["ev_dst"].astype(np.int64)
        t = ev["ev_tmpl"].astype(np.int64)
        E, h = self.site_energies(occ), self.fields(occ)
        Jsd = self._template_pair_Jq()[t] * QUANTUM_EV
        dE = E[dst] - E[src] + self._template_field_energy()[t] + h[dst] - h[src] - Jsd
        return self.barrier(self.kra_class[net.templates.klass[t]], dE)

    def allowed(self, occ: np.ndarray) -> np.ndarray:
        """Events that the occupancy permits at all (an ion at the source, an empty destination
        free of excluded occupied neighbours, an ion in the middle of a knock-off), whatever
        their rate."""
        net = self.network
        ev = net.events()
        src = np.repeat(np.arange(net.n_sites), np.diff(ev["out_off"]))
        dst = ev["ev_dst"].astype(np.int64)
        t = ev["ev_tmpl"].astype(np.int64)
        allowed = (occ[src] == ION) & (occ[dst] == EMPTY)
        mid = ev["ev_mid"]
        if len(mid):
            allowed &= (mid < 0) | (occ[np.maximum(mid, 0)] == ION)
        if len(net.exclusions):
            ex_src, ex_dst = net._tile(net.exclusions)
            count = np.bincount(ex_src, weights=(occ[ex_dst] != EMPTY), minlength=net.n_sites)
            allowed &= (count[dst] - self._template_src_excluded()[t]) == 0
        return allowed

    def fields(self, occ: np.ndarray) -> np.ndarray:
        """Interaction field (eV) on every site from the mobile ions."""
        net = self.network
        h = np.zeros(net.n_sites)
        if self.interacting:
            off, nbr, tmpl = net.csr(net.interactions)
            src = np.repeat(np.arange(net.n_sites), np.diff(off))
            J = self.shell_Jq[net.interaction_shell[tmpl]] * QUANTUM_EV
            np.add.at(h, src, J * (occ[nbr] == ION))
        return h

    def energy(self, occ: np.ndarray) -> float:
        """Configurational energy (eV) of an occupancy (without the field term)."""
        on = occ == ION
        return float(np.sum(self.site_energies(occ)[on]) + 0.5 * np.sum(self.fields(occ)[on]))
