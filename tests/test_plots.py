"""Tests of kmc.analysis.plots: figures are built without pyplot and saved as non-empty PNGs."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest
from matplotlib.figure import Figure

import kmc.analysis.plots
from kmc.analysis.arrhenius import fit_arrhenius
from kmc.analysis.plots import plot_arrhenius, plot_msd
from kmc.constants import KB_EV_K

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG_MAGIC


def _fit(Ea: float, A: float, seed: int, T=None, **kw):
    T = np.linspace(400.0, 1000.0, 6) if T is None else np.asarray(T, dtype=float)
    rng = np.random.default_rng(seed)
    y = A * np.exp(-Ea / (KB_EV_K * T)) * (1.0 + 0.05 * rng.standard_normal(T.size))
    if kw.get("times_T"):
        y = y / T
    return fit_arrhenius(T, y, 0.05 * y, **kw)


def _legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_single_fit(tmp_path):
    path = tmp_path / "arrhenius.png"
    fig = plot_arrhenius(_fit(0.30, 1e-3, 0), path, label="LLZO")
    assert isinstance(fig, Figure)
    assert _is_png(path)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    texts = _legend_texts(fig)
    assert any(t.startswith("LLZO: $E_a$ = 0.") and "eV" in t for t in texts)
    assert any(t.startswith("300 K:") for t in texts)  # 300 K lies outside 400-1000 K
    lo, hi = ax.get_xlim()
    assert lo < 1.0 and hi > 1000.0 / 300.0  # the extrapolation to 1000/300 is in view


def _legend_entry(ax, text: str):
    """The legend artist drawn next to the entry whose label starts with ``text``."""
    leg = ax.get_legend()
    labels = [t.get_text() for t in leg.get_texts()]
    return leg.legend_handles[next(i for i, t in enumerate(labels) if t.startswith(text))]


def test_band_legend_shares_the_colour_of_its_fit():
    """Issue 19: the shaded band, its legend entry and the fit's line are one colour."""
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgba

    for items in (_fit(0.30, 1e-3, 0), [("a", _fit(0.45, 1e-2, 1)), ("b", _fit(0.30, 1e-3, 2))]):
        fig = plot_arrhenius(items, label="a")
        ax = fig.axes[0]
        lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
        # the first band of each fit (the extrapolation's band is lighter)
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)][::2]
        assert len(lines) == len(bands) == (1 if not isinstance(items, list) else 2)
        for line, band, (lab, _) in zip(lines, bands, [("a", 0), ("b", 0)]):
            rgba = tuple(band.get_facecolor()[0])
            assert to_rgba(line.get_color())[:3] == pytest.approx(rgba[:3])
            # the fit's legend entry shows its band (line drawn over it) in the band's colour
            entry = _legend_entry(ax, f"{lab}: $E_a$")
            assert tuple(entry.get_facecolor()) == pytest.approx(rgba)
        if not isinstance(items, list):   # one fit: the band's own entry in its colour too
            entry = _legend_entry(ax, "95% confidence band")
            assert tuple(entry.get_facecolor()) == pytest.approx(rgba)


def test_overlay_uses_distinct_colours(tmp_path):
    path = tmp_path / "overlay.png"
    fits = [("undoped", _fit(0.45, 1e-2, 1)), ("Ga-doped", _fit(0.30, 1e-3, 2)),
            ("Ta-doped", _fit(0.35, 3e-3, 3, T=[300.0, 350.0, 400.0, 500.0, 600.0]))]
    fig = plot_arrhenius(fits, path)
    assert _is_png(path)
    texts = _legend_texts(fig)
    assert sum(t.split(":")[0] in {"undoped", "Ga-doped", "Ta-doped"} for t in texts) == 3
    assert sum(t.startswith("300 K:") for t in texts) == 2  # the Ta fit already covers 300 K
    colours = {tuple(line.get_color()) for line in fig.axes[0].get_lines() if line.get_linestyle() == "-"}
    assert len(colours) >= 3


def test_times_T_fit_and_given_axes(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    fit = _fit(0.25, 2e4, 4, times_T=True, basis="sigma")
    out = plot_arrhenius({"LGPS": fit}, ax=ax)
    assert out is fig
    assert "S/cm" in ax.get_ylabel()
    # The drawn line is sigma (not sigma*T): it passes through predict() at the data temperatures.
    line = next(ln for ln in ax.get_lines() if ln.get_linestyle() == "-")
    x, y = line.get_data()
    assert np.allclose(y, fit.predict(1000.0 / np.asarray(x)), rtol=1e-9)
    path = tmp_path / "sigma.png"
    fig.savefig(path)
    assert _is_png(path)


def test_plot_arrhenius_rejects_other_input():
    with pytest.raises(TypeError, match="ArrheniusFit"):
        plot_arrhenius([1.0, 2.0])


def _msd_curves(with_collective: bool = True):
    t = np.linspace(0.0, 1e-9, 60)
    curves = []
    for T, D in [(400.0, 2e-7), (600.0, 1e-6), (800.0, 3e-6)]:
        tracer = 6.0 * D * 1e16 * t  # cm^2/s -> A^2/s
        curves.append({
            "temperature_K": T,
            "t_s": t,
            "msd_tracer_A2": tracer,
            "msd_tracer_err_A2": 0.05 * tracer + 0.01,
            "msd_collective_A2": 1.4 * tracer if with_collective else None,
            "msd_collective_err_A2": 0.2 * tracer + 0.05 if with_collective else None,
        })
    return curves


@pytest.mark.parametrize("loglog", [False, True])
def test_msd(tmp_path, loglog):
    path = tmp_path / f"msd_{loglog}.png"
    fig = plot_msd(_msd_curves(), path, loglog=loglog)
    assert isinstance(fig, Figure)
    assert _is_png(path)
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == ("log" if loglog else "linear")
    assert "Å" in ax.get_ylabel() and "(s)" in ax.get_xlabel()
    texts = _legend_texts(fig)
    assert texts[:3] == ["400 K", "600 K", "800 K"] and "tracer" in texts and "collective" in texts
    if loglog:  # t = 0 cannot be drawn on a log axis and must have been dropped
        assert ax.get_lines()  # (all() of no lines would be vacuously true)
        assert all(np.all(np.asarray(ln.get_xdata()) > 0) for ln in ax.get_lines())


def test_msd_without_collective_and_bad_input(tmp_path):
    fig = plot_msd(_msd_curves(with_collective=False), tmp_path / "m.png")
    assert "collective" not in _legend_texts(fig)
    with pytest.raises(ValueError, match="temperature_K"):
        plot_msd([{"t_s": [0.0, 1.0], "msd_tracer_A2": [0.0, 1.0]}])
    with pytest.raises(ValueError, match="shape"):
        plot_msd([{"temperature_K": 300, "t_s": [0.0, 1.0], "msd_tracer_A2": [0.0, 1.0, 2.0]}])


def test_module_does_not_use_pyplot():
    # pyplot state (current figure, backend switching) must never leak into library figures.
    tree = ast.parse(inspect.getsource(kmc.analysis.plots))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    assert "matplotlib.backends.backend_agg" in imported  # sanity: the walk sees the imports
    assert not any("pyplot" in name for name in imported)


def test_non_arrhenius_fit_shows_kink(tmp_path):
    T = 1000.0 / np.linspace(1.0, 3.0, 8)
    x, xk = 1.0 / (KB_EV_K * T), 1.0 / (KB_EV_K * 500.0)
    y = 1e-3 * np.exp(-0.25 * x - 0.25 * np.maximum(0.0, x - xk))
    fit = fit_arrhenius(T, y, 0.02 * y)
    assert fit.non_arrhenius
    fig = plot_arrhenius(fit, tmp_path / "kink.png")
    assert _is_png(tmp_path / "kink.png")
    assert "two-segment fit | kink" in _legend_texts(fig)
    notes = [t.get_text() for t in fig.axes[0].texts]
    assert any(n.startswith("kink 500 K") for n in notes), notes
