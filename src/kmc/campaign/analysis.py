"""Results of a campaign: the stored rows as tables, Arrhenius fits per group, exports
(:class:`CampaignAnalysis`, mixed into :class:`kmc.campaign.core.Campaign`)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from kmc.analysis.transport import diffusive_subset
from kmc.campaign.plots import campaign_figures
from kmc.campaign.spec import BASES
from kmc.campaign.store import (
    STORE_NAME,
    Store,
    atomic_write_text,
    atomic_write_with,
)
from kmc.exceptions import ConfigError

#: network facts copied into every row of the results table
SUMMARY_NETWORK_KEYS = ("n_sites", "n_ions", "volume_A3")
#: confidence level of a ±1 standard error interval
ONE_SIGMA = 0.6826894921370859



@dataclass(frozen=True)
class GroupFit:
    """Arrhenius fit of one group: the fit (None if it could not be made) and a note."""

    label: str
    fit: Any            # kmc.analysis.arrhenius.ArrheniusFit or None
    note: str = ""


class CampaignAnalysis:
    """Tables, fits and exports of the points stored in a campaign directory."""

    def _rows(self, out: str | Path | None = None) -> dict[str, dict]:
        d = Path(out) if out is not None else self.out
        if not (d / STORE_NAME).is_file():
            return {}
        with Store(d, readonly=True) as st:
            return {r["key"]: r for r in st.rows([p.key for p in self.points])}

    def results(self, out: str | Path | None = None):
        """One row per (point, temperature) as a :class:`pandas.DataFrame`.

        Columns: ``point`` (1-based), ``key``, the varied keys (as dotted names; lists and tables
        as JSON text), ``group`` (Arrhenius group label), ``seed``, ``status`` (``ok``, ``error``
        or ``pending``), ``temperature_K``, every per-temperature result key (nested dicts
        flattened with dots), ``network.n_sites``/``n_ions``/``volume_A3``, ``version`` and
        ``error``. Pending points get one row per configured temperature with empty results.
        """
        # lazy: pandas costs ~0.5 s; only this table needs it
        import pandas as pd

        rows = self._records(self._rows(out))
        cols = list(dict.fromkeys(k for r in rows for k in r))
        head = ["point", "key", *self.varied_keys, "group", "seed", "status", "temperature_K"]
        tail = ["version", "error"]
        middle = [c for c in cols if c not in head and c not in tail]
        return pd.DataFrame(rows, columns=head + middle + tail)

    def _records(self, stored: dict[str, dict]) -> list[dict]:
        # lazy: kmc.runs.results loads scipy.stats (~0.8 s); `kmc campaign` loads this module
        from kmc.runs.results import flatten

        out = []
        for p in self.points:
            row = stored.get(p.key)
            common = {"point": p.index + 1, "key": p.key}
            for k in self.varied_keys:
                v = p.values.get(k)
                common[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
            common["group"] = self.group_label(p.group)
            common["seed"] = p.seed
            if row is None or row["status"] != "ok":
                status = "pending" if row is None else row["status"]
                for T in p.temperatures:
                    out.append({**common, "status": status, "temperature_K": T,
                                "version": None if row is None else row["version"],
                                "error": None if row is None else row["error"]})
                continue
            res = row["result"]
            net = res.get("network", {}) or {}
            for r in res.get("results", []):
                rec = {**common, "status": "ok"}
                rec.update(flatten(r))
                for k in SUMMARY_NETWORK_KEYS:
                    if k in net:
                        rec[f"network.{k}"] = net[k]
                rec["version"] = row["version"]
                rec["error"] = None
                out.append(rec)
        return out

    def fits(self, out: str | Path | None = None) -> dict[tuple, "GroupFit"]:
        """Arrhenius fit of every group (points that differ only in temperature and seed) over
        the finished runs in the store: ``fit_arrhenius`` of the basis (``sigma``: ``sigma*T``)
        over the temperatures whose MSD (D_J for sigma) is in the diffusive regime
        (:func:`~kmc.analysis.transport.diffusive_subset`, the rule of ``kmc run``), weighted by
        the stored standard errors (unweighted if any is missing)."""
        # lazy: kmc.analysis.arrhenius loads scipy.stats (~0.8 s); `kmc campaign` loads this module
        from kmc.analysis.arrhenius import fit_arrhenius

        value_key, err_key, times_T, basis, _ = BASES[self.basis]
        stored = self._rows(out)
        fits: dict[tuple, GroupFit] = {}
        for group, pts in self.groups().items():
            T, y, e, dropped, missing, early = [], [], [], 0, 0, []
            for p in pts:
                row = stored.get(p.key)
                if row is None or row["status"] != "ok":
                    missing += 1
                    continue
                rs = row["result"].get("results", [])
                keep, left_out = diffusive_subset(self.basis, [r.get("temperature_K") for r in rs], rs)
                early += left_out
                for r in (rs[i] for i in keep):
                    t, v, s = r.get("temperature_K"), r.get(value_key), r.get(err_key)
                    if not (isinstance(v, (int, float)) and v > 0):
                        dropped += 1
                        continue
                    T.append(t)
                    y.append(v)
                    e.append(s)
            notes = []
            if missing:
                notes.append(f"{missing} point(s) not finished")
            if dropped:
                notes.append(f"{dropped} non-positive or missing value(s) dropped")
            if early:
                notes.append(f"left out, not diffusive: {', '.join(f'{t:g}' for t in sorted(early))} K")
            weighted = bool(e) and all(isinstance(s, (int, float)) and s > 0 for s in e)
            if e and not weighted:
                notes.append("unweighted (some standard errors missing)")
            try:
                fit = fit_arrhenius(T, y, e if weighted else None, times_T=times_T, basis=basis)
            except ValueError as exc:
                fits[group] = GroupFit(self.group_label(group), None,
                                       "; ".join([f"no fit: {exc}", *notes]))
                continue
            fits[group] = GroupFit(self.group_label(group), fit, "; ".join(notes))
        return fits

    def analysis(self, out: str | Path | None = None):
        """Arrhenius analysis, one row per group, as a :class:`pandas.DataFrame`: the group's
        varied values, ``Ea_eV``, ``Ea_err_eV`` (1 s.e.), ``<basis>_300K_<unit>`` with its
        interval at the fit's level (95 %: ``_lo``/``_hi``) and its ±1 s.e. interval
        (``_1se_lo``/``_1se_hi``), the fitted range, ``reduced_chi2``, ``non_arrhenius`` and
        ``note``."""
        # lazy: pandas costs ~0.5 s; only this table needs it
        import pandas as pd

        _, _, _, basis, unit = BASES[self.basis]
        rows = []
        for group, gf in self.fits(out).items():
            row: dict[str, Any] = {"group": gf.label}
            for k, v in group:
                v = json.loads(v)
                row[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
            fit = gf.fit
            if fit is not None:
                d = fit.to_dict(unit=unit)
                lo1, hi1 = (float(x) for x in fit.interval(300.0, level=ONE_SIGMA))
                row.update({
                    "n_points": d["n_points"], "T_min_K": d["T_min_K"], "T_max_K": d["T_max_K"],
                    "Ea_eV": d["Ea_eV"], "Ea_err_eV": d["Ea_err_eV"],
                    f"{basis}_300K_{unit}": d[f"{basis}_300K_{unit}"],
                    f"{basis}_300K_lo_{unit}": d[f"{basis}_300K_lo_{unit}"],
                    f"{basis}_300K_hi_{unit}": d[f"{basis}_300K_hi_{unit}"],
                    f"{basis}_300K_1se_lo_{unit}": lo1, f"{basis}_300K_1se_hi_{unit}": hi1,
                    "level": d["level"], "ln_prefactor": d["ln_prefactor"],
                    "ln_prefactor_err": d["ln_prefactor_err"], "reduced_chi2": d["reduced_chi2"],
                    "non_arrhenius": d["non_arrhenius"],
                    "extrapolated_to_300K": d["extrapolated_to_300K"],
                })
            row["note"] = gf.note
            rows.append(row)
        head = ["group", *self.group_keys]
        cols = list(dict.fromkeys(head + [k for r in rows for k in r]))
        return pd.DataFrame(rows, columns=cols)

    # ------------------------------------------------------------------ exports
    def export(self, out: str | Path | None = None, formats: Sequence[str] = ("csv",),
               figures: bool = True) -> list[Path]:
        """Write ``summary.<fmt>`` (and ``arrhenius.<fmt>`` with the Arrhenius analysis) for each
        format in ``formats`` (``"csv"``, ``"parquet"``) plus the figures, each file atomically.
        Returns the paths written."""
        d = Path(out) if out is not None else self.out
        written: list[Path] = []
        tables = {"summary": self.results(d)}
        if self.arrhenius:
            tables["arrhenius"] = self.analysis(d)
        for fmt in formats:
            if fmt not in ("csv", "parquet"):
                raise ConfigError(f"unknown export format {fmt!r}; use csv or parquet.")
            for name, df in tables.items():
                path = d / f"{name}.{fmt}"
                if fmt == "csv":
                    written.append(atomic_write_text(path, df.to_csv(index=False)))
                else:
                    written.append(atomic_write_with(path, lambda p, df=df: _to_parquet(df, p)))
        if figures:
            written.extend(campaign_figures(self, d, tables))
        return written


def _to_parquet(df, path: Path) -> None:
    df = df.copy()
    for c in df.columns:  # parquet needs one type per column
        if df[c].dtype == object:
            kinds = {type(v) for v in df[c] if v is not None and v == v}
            if len(kinds) > 1:
                df[c] = [None if v is None or v != v else str(v) for v in df[c]]
    df.to_parquet(path, engine="pyarrow", index=False)
