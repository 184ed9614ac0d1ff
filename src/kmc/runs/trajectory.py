"""Trajectory export: ``[output] trajectory = "traj.extxyz"`` (ASE extended XYZ).

A :class:`TrajectoryRecorder` rides along one replica's measurement. The runner splits its engine
``run(n)`` chunks at the recorder's frame marks (``run(a)`` then ``run(b)`` equals ``run(a + b)``
bit for bit, so recording never changes a result) and calls :meth:`TrajectoryRecorder.sync`
after every chunk: no Python runs per hop. A frame stores the site of every ion and its unwrapped
displacement since the start of the measurement, accumulated across the measurement blocks (time
origins), whose resets of the engine's displacement array the recorder detects.

:class:`Trajectory` turns the frames into :class:`ase.Atoms` (mobile ions in a fixed order, so
viewers such as OVITO can follow each one; then the immobile blockers; then, optionally, the
framework atoms of the supercell) and writes them with ``ase.io.write(..., format="extxyz")``
atomically. Per-atom arrays: ``ion_id`` (-1 for immobile atoms) and ``displacement`` (unwrapped,
Å); per-frame info: ``time_s``, ``hops`` and ``temperature_K``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kmc.exceptions import ConfigError
from kmc.files import atomic_write_with

#: chemical symbol of immobile blockers when several dopants sit on mobile-ion sites
BLOCKER_SYMBOL = "X"


class TrajectoryRecorder:
    """Frames of one replica at ``frames + 1`` hop marks evenly spread over ``total_hops``
    measured hops (events).

    Parameters
    ----------
    total_hops : int
        Measured engine events the frames span (the nominal measurement of the replica).
    frames : int
        Intervals between frames; ``frames + 1`` frames including the start (fewer if
        ``total_hops < frames``). Recording stops after the last mark, also when a convergence
        round extends the run.
    """

    def __init__(self, total_hops: int, frames: int) -> None:
        marks = np.rint(np.linspace(0, max(int(total_hops), 0), int(frames) + 1)).astype(np.int64)
        self.marks = np.unique(marks)
        self.done = 0                       # measured hops seen so far
        self.next = 0                       # index of the next mark to record
        self.t0: float | None = None        # measurement origin of the engine window we track
        self.last_disp: np.ndarray | None = None
        self.cum: np.ndarray | None = None  # unwrapped displacement since the first frame, Å
        self.time0 = 0.0
        self.sites: list[np.ndarray] = []
        self.disp: list[np.ndarray] = []
        self.times: list[float] = []
        self.hops: list[int] = []

    @property
    def finished(self) -> bool:
        """All frames recorded."""
        return self.next >= len(self.marks)

    def hops_to_next(self) -> int:
        """Hops until the next frame (a large number once finished)."""
        if self.finished:
            return 1 << 62
        return int(self.marks[self.next] - self.done)

    def _track(self, sim) -> None:
        st = sim.engine.state
        disp = st["disp"]
        if self.t0 != sim.t0:               # a new measurement window: disp was reset to zero
            self.t0 = sim.t0
            self.last_disp = np.zeros_like(disp)
        self.cum += disp - self.last_disp
        self.last_disp = disp.copy()

    def start(self, sim) -> None:
        """First call at the start of the measurement: records frame 0."""
        if self.cum is not None:
            return
        st = sim.engine.state
        self.cum = np.zeros_like(st["disp"])
        self.t0 = sim.t0
        self.last_disp = st["disp"].copy()
        self.time0 = float(st["clock"][0])
        self._maybe_record(sim)

    def sync(self, sim, hops: int) -> None:
        """After ``hops`` measured hops: accumulate displacements; record a frame at a mark."""
        self.done += int(hops)
        self._track(sim)
        self._maybe_record(sim)

    def _maybe_record(self, sim) -> None:
        if self.finished or self.done != self.marks[self.next]:
            return
        st = sim.engine.state
        self.sites.append(st["ion_site"].copy())
        self.disp.append(self.cum.copy())
        self.times.append(float(st["clock"][0]) - self.time0)
        self.hops.append(self.done)
        self.next += 1


@dataclass
class Trajectory:
    """Recorded frames of one replica with everything needed to draw them.

    Attributes
    ----------
    lattice : ndarray, shape (3, 3)
        Supercell vectors (rows), Å.
    site_positions : ndarray, shape (n_sites, 3)
        Cartesian positions of the mobile-ion sites, Å.
    species : str
        Mobile species.
    sites : ndarray, shape (n_frames, n_ions)
        Site of every ion in every frame.
    displacement : ndarray, shape (n_frames, n_ions, 3)
        Unwrapped displacement of every ion since the first frame, Å.
    times_s, hops : ndarray, shape (n_frames,)
        Time since the first frame and measured hops (events) at each frame.
    blocked_sites : ndarray of int
        Sites holding immobile blockers (drawn as ``blocker_symbol``).
    framework_symbols, framework_positions
        Framework atoms of the supercell (empty for a teaching lattice).
    """

    lattice: np.ndarray
    site_positions: np.ndarray
    species: str
    sites: np.ndarray
    displacement: np.ndarray
    times_s: np.ndarray
    hops: np.ndarray
    temperature_K: float
    blocked_sites: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    blocker_symbol: str = BLOCKER_SYMBOL
    framework_symbols: list[str] = field(default_factory=list)
    framework_positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    @property
    def n_frames(self) -> int:
        return int(self.sites.shape[0])

    @property
    def n_ions(self) -> int:
        return int(self.sites.shape[1])

    def n_atoms(self, framework_atoms: bool = False) -> int:
        """Atoms per frame: ions, blockers and (optionally) framework atoms."""
        return (self.n_ions + len(self.blocked_sites)
                + (len(self.framework_symbols) if framework_atoms else 0))

    def to_atoms(self, framework_atoms: bool = False) -> list:
        """One :class:`ase.Atoms` per frame.

        Parameters
        ----------
        framework_atoms : bool
            Append the framework atoms of the supercell to every frame.
        """
        # lazy: ase (~10 ms) only for exporting frames; a run does not load it
        from ase import Atoms

        n_ion, n_blk = self.n_ions, len(self.blocked_sites)
        symbols = [self.species] * n_ion + [self.blocker_symbol] * n_blk
        static = [self.site_positions[self.blocked_sites]]
        if framework_atoms and len(self.framework_symbols):
            symbols += list(self.framework_symbols)
            static.append(self.framework_positions)
        static_pos = np.vstack(static) if static else np.zeros((0, 3))
        n_static = len(static_pos)
        ion_id = np.concatenate([np.arange(n_ion), np.full(n_static, -1)]).astype(np.int64)
        out = []
        for k in range(self.n_frames):
            pos = np.vstack([self.site_positions[self.sites[k]], static_pos])
            at = Atoms(symbols=symbols, positions=pos, cell=self.lattice, pbc=True)
            at.arrays["ion_id"] = ion_id
            at.arrays["displacement"] = np.vstack([self.displacement[k], np.zeros((n_static, 3))])
            at.info.update(frame=k, time_s=float(self.times_s[k]), hops=int(self.hops[k]),
                           temperature_K=float(self.temperature_K))
            out.append(at)
        return out

    def write(self, path: str | Path, framework_atoms: bool = False) -> Path:
        """Write all frames to ``path`` as extended XYZ, atomically (complete or untouched)."""
        # lazy: ase.io costs ~0.2 s (scipy); only writing a trajectory needs it
        from ase.io import write

        images = self.to_atoms(framework_atoms)
        return atomic_write_with(Path(path), lambda p: write(str(p), images, format="extxyz"))


def framework_atoms_of(system) -> tuple[list[str], np.ndarray]:
    """Non-mobile atoms of a framework or CIF source, tiled over the supercell: the majority
    element of every site that is not a mobile-species site (empty for a teaching lattice)."""
    src = getattr(system, "source", None)
    st = getattr(src, "structure", None)
    net = system.network
    if st is None:
        return [], np.zeros((0, 3))
    symbols, frac = [], []
    for site in st:
        comp = site.species.get_el_amt_dict()
        if net.species in comp:
            continue
        symbols.append(max(comp, key=comp.get))
        frac.append(np.mod(site.frac_coords, 1.0))
    if not symbols:
        return [], np.zeros((0, 3))
    frac = np.array(frac)
    cells = net._cells
    pos = (cells[:, None, :] + frac[None, :, :]).reshape(-1, 3) @ net.unit_lattice
    return symbols * len(cells), pos


def blocker_symbol_of(system) -> str:
    """The dopant element on mobile-ion sites, or :data:`BLOCKER_SYMBOL` if there are several."""
    els = {d.element for d in getattr(system, "dopants", []) if d.on_mobile_sites}
    return els.pop() if len(els) == 1 else BLOCKER_SYMBOL


def trajectory_from_recorder(system, rec: TrajectoryRecorder, blocked: np.ndarray,
                             temperature_K: float) -> Trajectory:
    """Assemble a :class:`Trajectory` from a finished recorder of a replica of ``system``."""
    net = system.network
    fw_sym, fw_pos = framework_atoms_of(system)
    n_ions = len(rec.sites[0]) if rec.sites else 0
    return Trajectory(
        lattice=np.asarray(net.lattice, float), site_positions=np.asarray(net.positions, float),
        species=net.species, sites=np.array(rec.sites, dtype=np.int64).reshape(-1, n_ions),
        displacement=np.array(rec.disp, float).reshape(-1, n_ions, 3),
        times_s=np.array(rec.times), hops=np.array(rec.hops, np.int64),
        temperature_K=float(temperature_K),
        blocked_sites=np.flatnonzero(blocked).astype(np.int64),
        blocker_symbol=blocker_symbol_of(system),
        framework_symbols=fw_sym, framework_positions=fw_pos)


def trajectory_target(config, out_dir: str | Path | None) -> Path | None:
    """Where ``[output] trajectory`` of ``config`` goes: inside ``out_dir`` (``kmc run --out``)
    or else the working directory (the config refuses absolute paths and ``..``). None without a
    trajectory. Raises a ConfigError when the directory does not exist."""
    oc = getattr(config, "output", None)
    if oc is None or oc.trajectory is None:
        return None
    p = Path(oc.trajectory).expanduser()
    if not p.is_absolute():
        p = (Path(out_dir) if out_dir is not None else Path.cwd()) / p
    if not p.parent.is_dir():
        raise ConfigError(f"the directory of [output] trajectory {str(p)!r} does not exist; "
                          f"create it or give a file name inside an existing directory.")
    return p


def write_run_trajectory(result, out_dir: str | Path | None) -> Path | None:
    """Write the trajectory a :class:`~kmc.runs.results.RunResult` recorded to its
    :func:`trajectory_target`; returns the path (None when the config asks for none)."""
    target = trajectory_target(result.config, out_dir)
    traj = getattr(result, "trajectory", None)
    if target is None or traj is None:
        return None
    return traj.write(target, framework_atoms=result.config.output.framework_atoms)
