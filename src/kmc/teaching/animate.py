"""``kmc animate``: a matplotlib animation of ions hopping on a 2D teaching lattice.

One frame per hop (the first shows the starting configuration): ions are filled circles,
vacancies open circles, immobile blockers black squares, and the ion that has just hopped is
drawn in orange with an arrow from the site it left. The title carries the hop count and the kMC
clock, so the irregular waiting times of the residence-time algorithm are visible too.

GIFs are written with :class:`matplotlib.animation.PillowWriter`; MP4 needs ffmpeg
(:class:`matplotlib.animation.FFMpegWriter`). The file appears atomically (temporary file in the
same directory, then a rename). Python runs once per hop here, which is fine for the few hundred
hops an animation shows; trajectories of real runs go through :mod:`kmc.runs.trajectory` instead.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from kmc.config import Config, config_file
from kmc.engine.simulation import Simulation
from kmc.exceptions import ConfigError
from kmc.runs.system import build_system

#: teaching lattices ``kmc animate`` draws (the in-plane ones, and the chain)
PLANAR = ("square", "triangular", "honeycomb", "chain")
ION_COLOUR, HOP_COLOUR, VAC_EDGE = "#1f77b4", "#ff7f0e", "0.35"
_NOT_PLANAR = ("kmc animate draws 2D teaching lattices (" + ", ".join(PLANAR) + ") or a TOML "
               "config of one, not {source!r}; for 3D lattices and frameworks write [output] "
               "trajectory = \"traj.extxyz\" and open it in OVITO or the ASE GUI.")


def animation_config(source: str, *, supercell: tuple[int, int] | None = None,
                     vacancies: int | None = None, ions: int | None = None,
                     temperature_K: float | None = None, seed: int | None = None):
    """The :class:`~kmc.config.Config` to animate: a planar lattice name (defaults: 8 x 8 cells,
    or a ring of 16 for the chain; 3 vacancies; 0.25 eV; 600 K) or a TOML config of one, with the
    given overrides."""
    if source in PLANAR:
        data = {"lattice": {"builtin": source,
                            "supercell": [16, 1, 1] if source == "chain" else [8, 8, 1]},
                "occupancy": {"vacancies": 3},
                "model": {"attempt_frequency_THz": 10.0, "barrier_eV": 0.25},
                "run": {"temperatures_K": [600.0], "seed": 1}}
    else:
        p = Path(source)
        if p.suffix.lower() != ".toml" and not p.is_file():
            raise ConfigError(_NOT_PLANAR.format(source=source))
        path = config_file(source)
        data = Config.from_file(path).to_dict()
    lat = data["lattice"]
    if lat.get("builtin") not in PLANAR:
        raise ConfigError(_NOT_PLANAR.format(source=lat.get("cif") or lat.get("builtin")))
    if supercell is not None:
        lat["supercell"] = [supercell[0], 1, 1] if lat["builtin"] == "chain" else \
            [supercell[0], supercell[1], 1]
    if vacancies is not None:
        data["occupancy"] = {"vacancies": vacancies}
    elif ions is not None:
        data["occupancy"] = {"ions": ions}
    run = dict(data.get("run", {}))
    if temperature_K is not None:
        run["temperatures_K"] = [temperature_K]
    if seed is not None:
        run["seed"] = seed
    data["run"] = {k: v for k, v in run.items() if k in ("temperatures_K", "seed")}
    data.pop("output", None)
    return Config.from_dict(data)


def _writer(path: Path, fps: float):
    # lazy: matplotlib costs ~0.5 s; only figures need it
    from matplotlib import animation

    suffix = path.suffix.lower()
    if suffix == ".gif":
        return animation.PillowWriter(fps=fps)
    if suffix == ".mp4":
        if not animation.writers.is_available("ffmpeg"):
            raise ConfigError("writing MP4 needs ffmpeg, which matplotlib cannot find; install "
                              "ffmpeg or write a .gif instead (--out anim.gif).")
        return animation.FFMpegWriter(fps=fps)
    raise ConfigError(f"kmc animate writes .gif (or .mp4 with ffmpeg), not {path.name!r}; "
                      f"choose --out anim.gif.")


def animate(source: str, out: str | Path = "kmc-animation.gif", *, hops: int = 60,
            fps: float = 4.0, supercell: tuple[int, int] | None = None,
            vacancies: int | None = None, ions: int | None = None,
            temperature_K: float | None = None, seed: int | None = None, dpi: int = 80) -> Path:
    """Animate ``hops`` hops on a planar teaching lattice and write them to ``out``.

    Parameters
    ----------
    source : str
        ``square``, ``triangular``, ``honeycomb``, ``chain`` or a TOML config of one of them.
    out : str or Path
        ``.gif`` (Pillow) or ``.mp4`` (needs ffmpeg).
    hops : int
        Hops to show; the animation has ``hops + 1`` frames.
    fps : float
        Frames per second.
    supercell, vacancies, ions, temperature_K, seed
        Overrides of the lattice name's defaults or of the config.
    dpi : int
        Resolution of the frames.

    Returns
    -------
    Path
        The file written.
    """
    out = Path(out)
    if hops < 1:
        raise ConfigError(f"--hops must be at least 1, got {hops}.")
    if not out.parent.is_dir():
        raise ConfigError(f"the directory of {str(out)!r} does not exist; create it or choose "
                          f"another --out.")
    writer = _writer(out, fps)
    cfg = animation_config(source, supercell=supercell, vacancies=vacancies, ions=ions,
                           temperature_K=temperature_K, seed=seed)
    system = build_system(cfg)
    sim = Simulation(system.model, cfg.run.temperatures_K[0], n_ions=system.n_ions,
                     seed=cfg.run.seed)
    fig, draw = _scene(system, cfg)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=out.suffix)
    os.close(fd)
    try:
        with writer.saving(fig, tmp, dpi):
            st = sim.engine.state
            draw(st, None, 0, 0.0)
            writer.grab_frame()
            for k in range(1, hops + 1):
                before = st["ion_site"].copy()
                sim.run(1)
                moved = np.flatnonzero(st["ion_site"] != before)
                draw(st, [(before[i], int(st["ion_site"][i])) for i in moved], k,
                     float(st["clock"][0]))
                writer.grab_frame()
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _scene(system, cfg):
    """The figure and a ``draw(state, moves, hop, time_s)`` that updates it in place."""
    # lazy: matplotlib costs ~0.5 s; only figures need it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    net = system.network
    pos = net.positions[:, :2]
    chain = cfg.lattice.builtin == "chain"
    if chain:
        pos = np.column_stack([pos[:, 0], np.zeros(len(pos))])
    off, dst, _ = net.csr(net.hops)
    src = np.repeat(np.arange(net.n_sites), np.diff(off))
    seg_len = np.linalg.norm(net.positions[dst] - net.positions[src], axis=1)
    short = seg_len < float(net.hop_class_lengths.max()) + 1e-6   # bonds not across the boundary
    span = np.ptp(pos, axis=0)
    w = 7.0
    h = 2.2 if chain else max(3.0, w * (span[1] + 1) / (span[0] + 1) + 0.6)
    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0.02, 0.02, 0.96, 0.84 if not chain else 0.6])
    ax.set_aspect("equal")
    ax.axis("off")
    ax.add_collection(LineCollection(np.stack([pos[src[short]], pos[dst[short]]], axis=1),
                                     colors="0.85", linewidths=1.0, zorder=0))
    nn = float(np.min(seg_len))
    size = (72 * 0.45 * nn * w / (span[0] + nn)) ** 2  # marker area ~ 45 % of the bond length
    sites = ax.scatter(pos[:, 0], pos[:, 1], s=size, zorder=2)
    r_pt = 0.5 * np.sqrt(size)  # marker radius in points: the arrow ends at the circle's edge
    arrow = ax.annotate("", xy=(0, 0), xytext=(0, 0), zorder=3,
                        arrowprops={"arrowstyle": "-|>", "color": "k", "lw": 1.5,
                                    "shrinkA": 0, "shrinkB": r_pt, "mutation_scale": 14})
    arrow.set_visible(False)
    pad = 0.6 * nn
    ax.set_xlim(pos[:, 0].min() - pad, pos[:, 0].max() + pad)
    ax.set_ylim(pos[:, 1].min() - pad, pos[:, 1].max() + pad)
    handles = [Line2D([], [], ls="", marker="o", color=ION_COLOUR, label="ion"),
               Line2D([], [], ls="", marker="o", mfc="white", mec=VAC_EDGE, label="vacancy"),
               Line2D([], [], ls="", marker="o", color=HOP_COLOUR,
                      label="ion that just hopped (arrow: from where)")]
    if system.dopants:  # (teaching lattices have none; kept for completeness)
        handles.append(Line2D([], [], ls="", marker="s", color="k", label="blocker"))
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles),
              frameon=False, fontsize="small")
    title = fig.suptitle("", y=0.995, fontsize="medium")
    T = cfg.run.temperatures_K[0]

    def draw(st, moves, hop: int, time_s: float) -> None:
        occ = st["occ"]
        face = np.where(occ[:, None] == 1, np.array([[0.12, 0.47, 0.71, 1.0]]),
                        np.array([[1.0, 1.0, 1.0, 1.0]]))
        edge = np.tile(np.array([[0.35, 0.35, 0.35, 1.0]]), (len(occ), 1))
        face[occ == 2] = (0, 0, 0, 1)
        edge[occ == 2] = (0, 0, 0, 1)
        arrow.set_visible(False)
        for a, b in moves or []:
            face[b] = (1.0, 0.5, 0.05, 1.0)
            arrow.xy, arrow.xyann = tuple(pos[b]), tuple(pos[a])
            arrow.set_visible(bool(np.linalg.norm(pos[b] - pos[a]) < 1.5 * nn))
        sites.set_facecolors(face)
        sites.set_edgecolors(edge)
        n_ion = int(np.sum(occ == 1))
        title.set_text(f"{cfg.lattice.builtin}: {n_ion} ions, {int(np.sum(occ == 0))} vacancies, "
                       f"{T:g} K — hop {hop}, t = {time_s * 1e12:.2f} ps")

    return fig, draw
