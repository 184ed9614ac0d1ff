"""Figures of a campaign (``DIR/figures``), each written atomically.

* ``summary.png`` (with ``[analysis] arrhenius``): sigma(300 K) (or D(300 K)) and Ea against each
  varied key, one line per combination of the other varied keys, error bars ±1 standard error.
* ``arrhenius.png`` (``arrhenius_2.png``, ...): Arrhenius overlay of the groups, at most
  :data:`PER_OVERLAY` per figure (:func:`kmc.analysis.plots.plot_arrhenius`).
* ``sigma.png`` (without the Arrhenius analysis): sigma at each temperature against each varied
  key.

Figures are :class:`matplotlib.figure.Figure` objects on an Agg canvas; pyplot is never used.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from kmc.campaign.spec import BASES, plain_fmt
from kmc.campaign.store import atomic_write_with
from kmc.config.keys import parse_dotted

PER_OVERLAY = 6
_OWNED = ("summary.png", "sigma.png", "arrhenius.png", "arrhenius_*.png")


def _figure(figsize):
    # lazy: matplotlib costs ~0.5 s; only figures need it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    # the tight box keeps a white margin round every label, however long (constrained layout
    # alone let the last rotated category label end at the figure's edge)
    return atomic_write_with(path, lambda p: fig.savefig(p, format="png", dpi=150, bbox_inches="tight",
                                                         pad_inches=0.1))


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in values)


def _short(key: str) -> str:
    return parse_dotted(key)[-1]


def _label(name: str) -> str:
    """Short name of an axis column: last part of each dotted key."""
    if name == "temperature_K":
        return "T (K)"
    return ", ".join(_short(k.strip()) for k in name.split(", "))


def _val(v: Any) -> str:
    if isinstance(v, str):
        try:
            v = json.loads(v) if v[:1] in "[{" else v
        except ValueError:
            pass

    return plain_fmt(v)


def _series(df, xkey: str, others: list[str]):
    """(label, sub-frame sorted along x) for each combination of the other keys."""
    if not others:
        yield "", df
        return
    for combo, sub in df.groupby(others, sort=False, dropna=False):
        combo = combo if isinstance(combo, tuple) else (combo,)
        yield ", ".join(f"{_label(k)} = {_val(v)}" for k, v in zip(others, combo)), sub


def _x_positions(df, xkey: str, order: list):
    if _numeric(order):
        return (lambda vals: np.asarray(vals, float)), None
    index = {json.dumps(v) if not isinstance(v, str) else v: i for i, v in enumerate(order)}
    return (lambda vals: np.array([index[json.dumps(v) if not isinstance(v, str) else v]
                                   for v in vals], float)), [_val(v) for v in order]


def _panel(ax, df, xkey: str, others: list[str], y: str, lo=None, hi=None, err=None,
           log=False, ylabel: str = "") -> None:
    # lazy: matplotlib costs ~0.5 s; only figures need it
    from matplotlib import colormaps

    order = list(dict.fromkeys(df[xkey].tolist()))
    xpos, ticklabels = _x_positions(df, xkey, order)
    colours = colormaps["tab10"]
    for k, (label, sub) in enumerate(_series(df, xkey, others)):
        sub = sub[np.isfinite(sub[y].astype(float))]
        if sub.empty:
            continue
        x = xpos(sub[xkey].tolist())
        order_idx = np.argsort(x, kind="stable")
        x = x[order_idx]
        yv = sub[y].astype(float).to_numpy()[order_idx]
        if err is not None:
            e = sub[err].astype(float).to_numpy()[order_idx]
            yerr = np.where(np.isfinite(e), e, 0.0)
        elif lo is not None:
            lv = sub[lo].astype(float).to_numpy()[order_idx]
            hv = sub[hi].astype(float).to_numpy()[order_idx]
            yerr = np.vstack([np.where(np.isfinite(lv), yv - lv, 0.0),
                              np.where(np.isfinite(hv), hv - yv, 0.0)])
        else:
            yerr = None
        # categories (e.g. dopant tables) are not a continuum: markers only
        ax.errorbar(x, yv, yerr=yerr, fmt="o" if ticklabels is not None else "o-", ms=5, capsize=3, lw=1.4,
                    color=colours(k % 10), label=label or None)
    if ticklabels is not None:
        ax.set_xticks(range(len(ticklabels)))
        rotate = max(map(len, ticklabels)) > 6
        # rotated labels anchored at their right end, so the last one does not run off the figure
        ax.set_xticklabels(ticklabels, rotation=20 if rotate else 0, ha="right" if rotate else "center",
                           rotation_mode="anchor" if rotate else "default")
        ax.set_xlim(-0.5, len(ticklabels) - 0.5)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xkey)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def _axis_columns(campaign, table):
    """Add one column per group axis (its label key's value, or a joined label for a zip group
    that needs several keys); returns the table and the column names."""
    table = table.copy()
    names = []
    for name, keys in campaign.group_axes():
        if len(keys) == 1:
            table[name] = table[keys[0]]
        else:
            table[name] = [", ".join(_val(v) for v in vals)
                           for vals in zip(*(table[k] for k in keys))]
        names.append(name)
    return table, names


def _summary_figure(campaign, table, path: Path) -> Path | None:
    if table is None or "Ea_eV" not in table:
        return None
    table, keys = _axis_columns(campaign, table)
    if not keys:
        return None
    _, _, _, basis, unit = BASES[campaign.basis]
    ycol = f"{basis}_300K_{unit}"
    sym = {"sigma": r"$\sigma$(300 K) (S/cm)", "D_tracer": r"$D^*$(300 K) (cm$^2$/s)",
           "D_jump": r"$D_J$(300 K) (cm$^2$/s)"}[basis]
    ok = table[np.isfinite(table["Ea_eV"].astype(float))]
    if ok.empty:
        return None
    n = len(keys)
    fig = _figure((max(6.4, 4.6 * n + 0.6), 7.4))
    axes = fig.subplots(2, n, squeeze=False)
    for j, key in enumerate(keys):
        others = [k for k in keys if k != key]
        _panel(axes[0, j], ok, key, others, ycol, lo=f"{basis}_300K_1se_lo_{unit}",
               hi=f"{basis}_300K_1se_hi_{unit}", log=True, ylabel=sym if j == 0 else "")
        _panel(axes[1, j], ok, key, others, "Ea_eV", err="Ea_err_eV",
               ylabel="$E_a$ (eV)" if j == 0 else "")
        axes[0, j].set_xlabel("")
        if others:
            axes[0, j].legend(fontsize="small", framealpha=0.9)
    t_lo, t_hi = float(ok["T_min_K"].min()), float(ok["T_max_K"].max())
    extrap = " (extrapolated)" if not t_lo <= 300.0 <= t_hi else ""
    fig.suptitle(f"{campaign.name}\nArrhenius fit per group over {t_lo:g}–{t_hi:g} K, value at "
                 f"300 K{extrap}; error bars ±1 s.e.", fontsize="medium")
    return _save(fig, path)


def _overlay_figures(campaign, fits: dict, d: Path) -> list[Path]:
    # lazy: kmc.analysis.plots imports matplotlib (~0.5 s) at module level
    from kmc.analysis.plots import plot_arrhenius

    items = [(gf.label, gf.fit) for gf in fits.values() if gf.fit is not None]
    written = []
    for c, start in enumerate(range(0, len(items), PER_OVERLAY)):
        chunk = items[start:start + PER_OVERLAY]
        fig = _figure((7.2, 5.4))
        ax = fig.add_subplot()
        plot_arrhenius(chunk, ax=ax)
        n_fig = math.ceil(len(items) / PER_OVERLAY)
        fig.suptitle(f"{campaign.name}" + (f" ({c + 1}/{n_fig})" if n_fig > 1 else ""),
                     fontsize="medium")
        name = "arrhenius.png" if c == 0 else f"arrhenius_{c + 1}.png"
        written.append(_save(fig, d / name))
    return written


def _sigma_figure(campaign, summary, path: Path) -> Path | None:
    ok = summary[summary["status"] == "ok"]
    if ok.empty or "sigma_S_cm" not in ok:
        return None
    ok, keys = _axis_columns(campaign, ok)
    keys = keys or ["temperature_K"]
    n = len(keys)
    fig = _figure((max(6.4, 4.6 * n + 0.6), 4.2))
    axes = fig.subplots(1, n, squeeze=False)
    for j, key in enumerate(keys):
        others = [k for k in keys if k != key]
        if key != "temperature_K":
            others.append("temperature_K")
        _panel(axes[0, j], ok, key, others, "sigma_S_cm", err="sigma_err_S_cm", log=True,
               ylabel=r"$\sigma$ (S/cm)" if j == 0 else "")
        if others:
            axes[0, j].legend(fontsize="small", framealpha=0.9)
    fig.suptitle(f"{campaign.name}\nconductivity; error bars ±1 s.e.", fontsize="medium")
    return _save(fig, path)


def campaign_figures(campaign, out: str | Path, tables: dict) -> list[Path]:
    """Write the campaign's figures into ``out/figures``; returns the paths written (and removes
    figures of an earlier export that this one no longer produces)."""
    d = Path(out) / "figures"
    d.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if campaign.arrhenius:
        p = _summary_figure(campaign, tables.get("arrhenius"), d / "summary.png")
        if p:
            written.append(p)
        written.extend(_overlay_figures(campaign, campaign.fits(out), d))
    else:
        p = _sigma_figure(campaign, tables["summary"], d / "sigma.png")
        if p:
            written.append(p)
    keep = {p.name for p in written}
    for pattern in _OWNED:
        for old in d.glob(pattern):
            if old.name not in keep:
                old.unlink(missing_ok=True)
    return written
