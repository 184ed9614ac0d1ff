"""Result files of ``kmc run --out DIR``: ``result.json``, ``results.csv``, ``arrhenius.png``
(two or more temperatures), ``msd.csv`` (the replica-mean MSD curves on the lag grid), ``msd.png``
and ``msd_loglog.png`` (log-log, with the D* fit windows shaded).

All files are first written to hidden temporary files in ``DIR`` and renamed into place only
when every one of them has been produced, so a failed run leaves no partial or mixed set.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from kmc.analysis.plots import plot_arrhenius, plot_msd
from kmc.files import TMP_PREFIX
from kmc.runs.results import RunResult, result_columns

#: legend labels of the plotted basis
_LABELS = {"D_tracer": "$D^*$", "D_jump": "$D_J$", "sigma_T": r"$\sigma$ (fit of $\sigma T$)"}


def csv_text(result: RunResult) -> str:
    """``results.csv``: one row per temperature, one column per (flattened) result key."""
    rows = result.to_rows()
    cols = result_columns(rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow(["" if r.get(c) is None or (isinstance(r.get(c), float) and not
                                                 math.isfinite(r[c])) else repr(r[c])
                    if isinstance(r.get(c), float) else r[c] for c in cols])
    return buf.getvalue()


def msd_csv_text(result: RunResult) -> str:
    """``msd.csv``: one row per temperature and lag: time, tracer and collective MSD (total and
    per axis, Å^2), their replica standard errors, and whether the lag is inside the D* and D_J
    fit windows."""
    cols = ["temperature_K", "t_s", "msd_tracer_A2", "msd_tracer_err_A2", "msd_collective_A2",
            "msd_collective_err_A2", "msd_tracer_xx_A2", "msd_tracer_yy_A2", "msd_tracer_zz_A2",
            "msd_collective_xx_A2", "msd_collective_yy_A2", "msd_collective_zz_A2",
            "in_fit_D_tracer", "in_fit_D_jump"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for c in result.msd:
        t = c["t_s"]
        fit = c.get("fit", {})
        for j in range(len(t)):
            row = [c["temperature_K"], t[j], c["msd_tracer_A2"][j],
                   c["msd_tracer_err_A2"][j] if "msd_tracer_err_A2" in c else "",
                   c["msd_collective_A2"][j],
                   c["msd_collective_err_A2"][j] if "msd_collective_err_A2" in c else ""]
            for key in ("msd_tracer_axes_A2", "msd_collective_axes_A2"):
                row.extend(c[key][j] if key in c else ["", "", ""])
            for q in ("D_tracer", "D_jump"):
                f = fit.get(q)
                row.append("" if f is None else int(f["start_s"] <= t[j] <= f["end_s"]))
            w.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v
                        for v in row])
    return buf.getvalue()


def _sci(v) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def _annotate(fig, arr: dict) -> None:
    """Fit quality, the curvature test and sigma(300 K) in a corner box of the Arrhenius plot."""
    ax = fig.axes[0]
    d = arr["non_arrhenius_detail"]
    lines = []
    if not (arr["basis"] == "sigma_T" and arr["extrapolated_to_300K"]):  # else in the legend
        lo, hi = arr["sigma_300K_ci_S_cm"]
        lines.append(rf"$\sigma$(300 K) = {_sci(arr['sigma_300K_S_cm'])} S/cm "
                     rf"[{_sci(lo)}, {_sci(hi)}] ({arr['level']:.0%} CI"
                     + (r", $\sigma T$ fit)" if arr["basis"] != "sigma_T" else ")"))
    chi = arr["reduced_chi2"]
    lines.append(f"{arr['n_points']} temperatures, " + (rf"$\chi^2_\nu$ = {chi:.2f}"
                                                          if chi is not None and chi == chi
                                                          else "unweighted"))
    p = d.get("curvature_p_value")
    if arr["non_arrhenius"]:
        lines.append(f"NON-ARRHENIUS (curvature p = {p:.2g}), kink near "
                     f"{d.get('kink_T_K', float('nan')):.0f} K")
    elif p is not None and p == p:
        lines.append(f"no significant curvature (p = {p:.2g})")
    else:
        lines.append("curvature not tested (< 4 temperatures)")
    ax.text(0.02, 0.03, "\n".join(lines), transform=ax.transAxes, fontsize="small",
            va="bottom", ha="left",
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"})


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp(d: Path, name: str, pending: list[Path]) -> Path:
    p = Path(name)
    # the kmc.campaign.store temporary-file prefix (with our pid): a file left by a killed run is removed by
    # kmc.campaign.store.clean_stale_temps when the next run starts in the same directory
    fd, tmp = tempfile.mkstemp(dir=d, prefix=f"{TMP_PREFIX}{os.getpid()}-{p.stem}.",
                               suffix=p.suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
    pending.append(Path(tmp))  # recorded before anything can fail, so it is always cleaned up
    return Path(tmp)


def write_outputs(result: RunResult, out_dir: str | Path, *, loglog: bool = False) -> list[Path]:
    """Write the result files into ``out_dir`` (all or nothing); returns the paths written.

    ``arrhenius.png`` needs an Arrhenius fit (two or more temperatures); without one any
    ``arrhenius.png`` left from an earlier run in ``out_dir`` is removed, so the directory never
    shows a figure that does not belong to its ``result.json``.
    """
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    pending: list[Path] = []
    staged: dict[str, Path] = {}
    try:
        tmp = staged["result.json"] = _temp(d, "result.json", pending)
        tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
        tmp = staged["results.csv"] = _temp(d, "results.csv", pending)
        tmp.write_text(csv_text(result), encoding="utf-8")
        basis = result.arrhenius["basis"] if result.arrhenius is not None else None
        if basis is not None and basis in result.fits:
            tmp = staged["arrhenius.png"] = _temp(d, "arrhenius.png", pending)
            fig = plot_arrhenius(result.fits[basis], None, label=_LABELS.get(basis))
            _annotate(fig, result.arrhenius)
            fig.savefig(tmp, dpi=150, bbox_inches="tight")
        tmp = staged["msd.csv"] = _temp(d, "msd.csv", pending)
        tmp.write_text(msd_csv_text(result), encoding="utf-8")
        tmp = staged["msd.png"] = _temp(d, "msd.png", pending)
        plot_msd(result.msd, tmp, loglog=loglog)
        tmp = staged["msd_loglog.png"] = _temp(d, "msd_loglog.png", pending)
        plot_msd(result.msd, tmp, loglog=True)
    except BaseException:
        for tmp in pending:
            tmp.unlink(missing_ok=True)
        raise
    try:
        for tmp in staged.values():  # on disk before any rename: never a renamed empty file
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
    except BaseException:
        for tmp in pending:
            tmp.unlink(missing_ok=True)
        raise
    written = []
    for name, tmp in staged.items():
        os.replace(tmp, d / name)
        written.append(d / name)
    if "arrhenius.png" not in staged:
        (d / "arrhenius.png").unlink(missing_ok=True)
    return written
