"""Matplotlib figures: Arrhenius plots and mean squared displacements.

Figures are built as :class:`matplotlib.figure.Figure` objects with an Agg canvas attached, so
nothing here touches pyplot state or the global backend; callers may also pass their own ``ax``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from kmc.analysis.arrhenius import ArrheniusFit
from kmc.constants import KB_EV_K

__all__ = ["plot_arrhenius", "plot_msd"]

_DPI = 150
#: opacity of a fit's confidence band (its legend entries use the same colour)
_BAND_ALPHA = 0.22
_BASIS_LABELS = {
    "D_tracer": (r"$D^*$", "cm$^2$/s"),
    "D_jump": (r"$D_J$", "cm$^2$/s"),
    "D_J": (r"$D_J$", "cm$^2$/s"),
    "D_collective": (r"$D_J$", "cm$^2$/s"),
    "sigma": (r"$\sigma$", "S/cm"),
}
# Candidate tick temperatures (K) for the secondary top axis.
_NICE_T = (100, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1500, 2000, 3000)


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas; no pyplot involved
    return fig


def _save(fig: Figure, path: str | Path | None) -> None:
    if path is not None:
        fig.savefig(path, dpi=_DPI, bbox_inches="tight")


def _basis_label(basis: str) -> str:
    sym, unit = _BASIS_LABELS.get(basis, (None, None))
    if sym is None:
        for key, val in _BASIS_LABELS.items():  # e.g. "sigma_xx" -> sigma
            if basis.startswith(key):
                sym, unit = val
                break
    return f"{sym} ({unit})" if sym else basis.replace("_", " ")


def _unit_text(basis: str) -> str:
    for key, (_, unit) in _BASIS_LABELS.items():
        if basis.startswith(key):
            return " " + unit
    return ""


def _fmt_err(value: float, err: float) -> str:
    """'0.300 ± 0.012' with the error rounded to 2 significant figures."""
    if not np.isfinite(err) or err <= 0:
        return f"{value:.3f} (no error)"
    decimals = max(0, 1 - int(np.floor(np.log10(err))))
    decimals = min(decimals, 6)
    return f"{value:.{decimals}f} ± {err:.{decimals}f}"


def _normalise_fits(fits_or_points: Any, label: str | None) -> list[tuple[str, ArrheniusFit]]:
    if isinstance(fits_or_points, ArrheniusFit):
        return [(label or fits_or_points.basis.replace("_", " "), fits_or_points)]
    if isinstance(fits_or_points, Mapping):
        items = list(fits_or_points.items())
    elif isinstance(fits_or_points, Sequence) and not isinstance(fits_or_points, str):
        items = []
        for i, item in enumerate(fits_or_points):
            if isinstance(item, ArrheniusFit):
                items.append((f"{item.basis.replace('_', ' ')} {i + 1}", item))
            elif isinstance(item, Sequence) and not isinstance(item, str):
                items.append(tuple(item))
            else:
                items = []
                break
    else:
        items = []
    if not items or not all(
        len(it) == 2 and isinstance(it[1], ArrheniusFit) for it in items
    ):
        raise TypeError(
            "plot_arrhenius expects an ArrheniusFit, a list of (label, ArrheniusFit) pairs or a "
            "{label: ArrheniusFit} mapping; build fits with kmc.analysis.arrhenius.fit_arrhenius."
        )
    return [(str(lab), fit) for lab, fit in items]


def _inv_T_grid(T_a: float, T_b: float, n: int = 200) -> np.ndarray:
    # Uniform in 1/T so the line and band are smooth on the plotted axis.
    return 1.0 / np.linspace(1.0 / T_a, 1.0 / T_b, n)


def _safe_inv1000(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, 1000.0 / np.where(v > 0, v, 1.0), np.inf)


def _draw_kink(ax: Axes, fit: ArrheniusFit, colour: Any) -> None:
    """Dotted two-segment fit of a flagged fit, with a tick at the kink temperature."""
    d = fit.non_arrhenius_detail
    Tk, zk = d.get("kink_T_K", np.nan), d.get("kink_ln_y", np.nan)
    if not (np.isfinite(Tk) and np.isfinite(zk)):
        return
    t_lo, t_hi = fit.T_range_K
    xk = 1.0 / (KB_EV_K * Tk)
    for T_end, Ea in ((t_lo, d["Ea_below_kink_eV"]), (t_hi, d["Ea_above_kink_eV"])):
        Tg = _inv_T_grid(Tk, T_end, 50)
        z = zk - Ea * (1.0 / (KB_EV_K * Tg) - xk)
        y = np.exp(z) / Tg if fit.times_T else np.exp(z)
        ax.plot(1000.0 / Tg, y, ":", color=colour, lw=1.6, zorder=2)
    yk = np.exp(zk) / Tk if fit.times_T else np.exp(zk)
    ax.plot([1000.0 / Tk], [yk], marker="|", ms=14, mew=1.6, color=colour, ls="none", zorder=4)
    ax.annotate(
        f"kink {Tk:.0f} K: $E_a$ = {d['Ea_below_kink_eV']:.2f} eV below,\n"
        f"{d['Ea_above_kink_eV']:.2f} eV above",
        # below-left of the kink: an Arrhenius line falls from upper left to lower right, so
        # that corner is free of data, and the legend usually sits upper right
        (1000.0 / Tk, yk), xytext=(-12, -14), textcoords="offset points", fontsize="small",
        color=colour, ha="right", va="top",
    )


def plot_arrhenius(
    fits_or_points: ArrheniusFit | Sequence[tuple[str, ArrheniusFit]] | Mapping[str, ArrheniusFit],
    path: str | Path | None = None,
    *,
    ax: Axes | None = None,
    label: str | None = None,
    ylabel: str | None = None,
) -> Figure:
    """Arrhenius plot: data, fitted line, confidence band and 300 K extrapolation.

    The data are drawn against ``1000/T`` (K^-1) on a logarithmic y axis with error bars of
    ±1 standard error of ``ln y`` (``y exp(±y_err/y)``, the error model of the fit, which stays
    positive on a log axis). The band is the confidence interval of the fitted mean at the fit's
    ``level`` (:meth:`ArrheniusFit.interval`). When 300 K lies outside the fitted range the line
    and band are extended (dashed, lighter) to ``1000/300`` and the extrapolated value is marked
    with its interval. Fits flagged ``non_arrhenius`` also get their two-segment fit (dotted)
    with the kink marked and annotated. A top axis shows T in K. For ``times_T`` fits the
    quantity ``y`` itself (e.g. sigma) is plotted, so its line curves slightly.

    Parameters
    ----------
    fits_or_points : ArrheniusFit or sequence of (label, ArrheniusFit) or mapping
        One fit, or several to overlay in distinct colours.
    path : str or Path, optional
        Where to save the figure (format from the suffix; dpi 150, tight bounding box).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure.
    label : str, optional
        Legend label for a single fit (defaults to its basis).
    ylabel : str, optional
        y-axis label (defaults to the first fit's basis with units).

    Returns
    -------
    matplotlib.figure.Figure
    """
    items = _normalise_fits(fits_or_points, label)
    if ax is None:
        fig = _new_figure((6.4, 4.8))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    colours = colormaps["tab10"]
    level = items[0][1].level
    x_all: list[float] = []
    extrapolated = kinked = False
    band_of: dict[Line2D, Patch] = {}   # each fit's line -> a legend proxy of its band

    for k, (lab, fit) in enumerate(items):
        c = colours(k % 10)
        T, y = np.asarray(fit.T_K), np.asarray(fit.y)
        x = 1000.0 / T
        x_all.extend(x)
        name = f"{lab}: $E_a$ = {_fmt_err(fit.Ea_eV, fit.Ea_err_eV)} eV"
        if fit.non_arrhenius:
            name += " (non-Arrhenius)"
        if fit.y_err is not None:
            s = np.asarray(fit.y_err) / y
            yerr = np.vstack([y - y * np.exp(-s), y * np.exp(s) - y])
        else:
            yerr = None
        ax.errorbar(x, y, yerr=yerr, fmt="o", color=c, ms=5, capsize=3, lw=1.2, zorder=3)

        t_lo, t_hi = fit.T_range_K
        Tg = _inv_T_grid(t_lo, t_hi)
        lo, hi = fit.interval(Tg, level)
        (line,) = ax.plot(1000.0 / Tg, fit.predict(Tg), "-", color=c, lw=1.6, label=name, zorder=2)
        band = ax.fill_between(1000.0 / Tg, lo, hi, color=c, alpha=_BAND_ALPHA, lw=0, zorder=1)
        band_of[line] = Patch(facecolor=band.get_facecolor()[0], lw=0)

        if fit.non_arrhenius:
            _draw_kink(ax, fit, c)
            kinked = True

        if not t_lo <= 300.0 <= t_hi:
            extrapolated = True
            edge = t_lo if 300.0 < t_lo else t_hi
            Te = _inv_T_grid(edge, 300.0)
            lo_e, hi_e = fit.interval(Te, level)
            ax.plot(1000.0 / Te, fit.predict(Te), "--", color=c, lw=1.3, zorder=2)
            ax.fill_between(1000.0 / Te, lo_e, hi_e, color=c, alpha=0.10, lw=0, zorder=1)
            y300 = float(fit.predict(300.0))
            l300, h300 = (float(v) for v in fit.interval(300.0, level))
            x_all.append(1000.0 / 300.0)
            err300 = None
            if np.isfinite(l300) and np.isfinite(h300):
                err300 = [[y300 - l300], [h300 - y300]]
            ax.errorbar(
                [1000.0 / 300.0], [y300], yerr=err300, fmt="D", mfc="white", mec=c, color=c,
                ms=6, capsize=4, lw=1.2, zorder=4,
                label=f"300 K: {y300:#.2g} [{l300:#.2g}, {h300:#.2g}]{_unit_text(fit.basis)}",
            )

    ax.set_yscale("log")
    ax.set_xlabel(r"$1000/T$ (K$^{-1}$)")
    ax.set_ylabel(ylabel or _basis_label(items[0][1].basis))
    xmin, xmax = min(x_all), max(x_all)
    pad = 0.05 * (xmax - xmin) if xmax > xmin else 0.1 * xmax
    ax.set_xlim(xmin - pad, xmax + pad)
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", axis="y", alpha=0.1)

    # Each fit's entry is its line drawn over its band (one colour, as in the plot); proxy
    # entries explain the styles once instead of once per fit.
    handles, labels = ax.get_legend_handles_labels()
    handles = [(band_of[h], h) if h in band_of else h for h in handles]
    # one fit: the band's own colour; several: grey, each band is drawn in its fit's colour
    single = len(items) == 1
    handles.append(Patch(facecolor=band_of[line].get_facecolor() if single else (0.5, 0.5, 0.5, _BAND_ALPHA),
                         lw=0))
    labels.append(f"{level:.0%} confidence band" + ("" if single else " (colour of its fit)"))
    if extrapolated:
        handles.append(Line2D([], [], color="0.3", ls="--", lw=1.3))
        labels.append("extrapolation")
    if kinked:
        handles.append(Line2D([], [], color="0.3", ls=":", lw=1.6, marker="|", ms=8))
        labels.append("two-segment fit | kink")
    ax.legend(handles, labels, fontsize="small", framealpha=0.9, loc="best")

    top = ax.secondary_xaxis("top", functions=(_safe_inv1000, _safe_inv1000))
    T_visible = 1000.0 / np.array(ax.get_xlim())
    ticks = [t for t in _NICE_T if T_visible.min() <= t <= T_visible.max()]
    if len(ticks) > 7:  # thin out so the labels don't collide
        ticks = ticks[:: int(np.ceil(len(ticks) / 7))]
    top.set_xticks(ticks)
    top.set_xticklabels([f"{t:g}" for t in ticks])
    top.set_xlabel("$T$ (K)")

    _save(fig, path)
    return fig


def plot_msd(
    curves: Sequence[Mapping[str, Any]],
    path: str | Path | None = None,
    *,
    loglog: bool = False,
    panels: bool | None = None,
) -> Figure:
    """Mean squared displacement against time, one colour per temperature.

    Parameters
    ----------
    curves : sequence of mapping
        Each with ``temperature_K``, ``t_s`` (1-D), ``msd_tracer_A2`` (1-D), ``msd_collective_A2``
        (1-D or None) and optionally ``msd_tracer_err_A2`` / ``msd_collective_err_A2`` (1-D
        standard errors, drawn as ±1 sigma bands) and ``fit`` (the fit windows of
        :func:`kmc.analysis.transport.analyze_frames`: the D* window is shaded, hatched when the MSD is
        not diffusive there).
    path : str or Path, optional
        Where to save the figure (dpi 150, tight bounding box).
    loglog : bool, default False
        Logarithmic axes; points with ``t <= 0`` or non-positive MSD are left out.
    panels : bool, optional
        One panel per temperature (each with its own axes) instead of one shared axes. By
        default panels are used on linear axes when the time spans of the temperatures differ
        by more than a factor of 3, since the fast curves would otherwise be squeezed against
        the y axis; log-log axes share one panel.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    Tracer MSD is drawn solid, collective MSD dashed; colours run from dark (cold) to bright
    (hot) on the ``plasma`` colour map.
    """
    if not curves:
        raise ValueError("plot_msd needs at least one curve; pass a list of MSD dicts.")
    required = ("temperature_K", "t_s", "msd_tracer_A2")
    for i, cur in enumerate(curves):
        missing = [k for k in required if k not in cur]
        if missing:
            raise ValueError(
                f"MSD curve {i} lacks {missing}; give each curve temperature_K, t_s and msd_tracer_A2."
            )
    temps = sorted({float(c["temperature_K"]) for c in curves})
    cmap = colormaps["plasma"]
    colour = {
        T: cmap(0.05 + 0.75 * (i / (len(temps) - 1) if len(temps) > 1 else 0.0))
        for i, T in enumerate(temps)
    }
    if panels is None:
        spans = [float(np.nanmax(np.asarray(c["t_s"], dtype=float))) for c in curves]
        spans = [x for x in spans if np.isfinite(x) and x > 0]
        panels = (not loglog and len(temps) > 1 and bool(spans)
                  and max(spans) > 3.0 * min(spans))

    if panels:
        ncols = 2 if len(temps) == 4 else min(3, len(temps))
        nrows = -(-len(temps) // ncols)
        fig = _new_figure((3.4 * ncols + 0.6, 2.9 * nrows + 0.6))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        ax_of = {T: axes.flat[i] for i, T in enumerate(temps)}
        for extra in list(axes.flat)[len(temps):]:
            extra.set_visible(False)
    else:
        fig = _new_figure((6.4, 4.8))
        ax0 = fig.add_subplot()
        ax_of = {T: ax0 for T in temps}
    labelled: set[float] = set()
    any_collective = False

    def draw(ax: Axes, t: np.ndarray, m: Any, err: Any, c: Any, ls: str, lab: str | None) -> None:
        m = np.asarray(m, dtype=float)
        if m.shape != t.shape:
            raise ValueError(
                f"MSD has shape {m.shape} but t_s has shape {t.shape}; give one MSD value per time."
            )
        keep = np.isfinite(m) & np.isfinite(t)
        if loglog:
            keep &= (t > 0) & (m > 0)
        ax.plot(t[keep], m[keep], ls=ls, color=c, lw=1.6, label=lab)
        if err is not None:
            e = np.asarray(err, dtype=float)[keep]
            lo = m[keep] - e
            if loglog:  # a band reaching zero would blow up the log axis
                lo = np.maximum(lo, m[keep] * 0.05)
            ax.fill_between(t[keep], lo, m[keep] + e, color=c, alpha=0.2, lw=0)

    for cur in curves:
        T = float(cur["temperature_K"])
        c = colour[T]
        ax = ax_of[T]
        t = np.asarray(cur["t_s"], dtype=float)
        lab = None if T in labelled else f"{T:g} K"
        labelled.add(T)
        draw(ax, t, cur["msd_tracer_A2"], cur.get("msd_tracer_err_A2"), c, "-", lab)
        if cur.get("msd_collective_A2") is not None:
            any_collective = True
            draw(ax, t, cur["msd_collective_A2"], cur.get("msd_collective_err_A2"), c, "--", None)
        fit = (cur.get("fit") or {}).get("D_tracer")
        if fit is not None:  # the D* fit window (hatched where it is not diffusive)
            ax.axvspan(fit["start_s"], fit["end_s"], color=c, alpha=0.12, lw=0,
                       hatch=None if fit["diffusive"] else "//")

    style_handles = [Line2D([], [], color="0.2", ls="-", lw=1.6)]
    style_labels = ["tracer"]
    if any_collective:
        style_handles.append(Line2D([], [], color="0.2", ls="--", lw=1.6))
        style_labels.append("collective")
    for ax in dict.fromkeys(ax_of.values()):
        if loglog:
            ax.set_xscale("log")
            ax.set_yscale("log")
        else:
            ax.ticklabel_format(axis="both", style="sci", scilimits=(-3, 4), useMathText=True)
            ax.set_xlim(left=0)
            ax.set_ylim(bottom=0)
        ax.set_xlabel("$t$ (s)")
        ax.set_ylabel(r"MSD (Å$^2$)")
        ax.grid(True, alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles + style_handles, labels + style_labels, fontsize="small",
                  framealpha=0.9, loc="upper left", ncol=2 if len(handles) + 2 > 6 else 1)
    if panels:
        fig.tight_layout()

    _save(fig, path)
    return fig
