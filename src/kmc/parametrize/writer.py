"""model.toml (the schema of ``src/kmc/system/structures/*.toml``) and data.json of a computed model.

What the rate model supports and how the fitted Hamiltonian maps onto it (also written into the
file's ``[hamiltonian]`` table):

* site energies per site class: one to one (the first class is the reference, 0 eV);
* mobile-mobile pair terms: the engine takes one term per distance shell, so orbits of equal
  length (0.01 Å) are merged with their multiplicity-weighted mean; the largest difference merged
  away is recorded (``shell_merge_max_diff_eV``);
* computed hard exclusions: the model takes one exclusion distance, set half-way between the
  longest excluded orbit and the next orbit; an allowed orbit shorter than an excluded one cannot
  be represented and is listed in ``exclusion_mapping_note``;
* dopants, per species in ``[dopant_terms]``, taken by a config's ``[dopants]`` entry of that
  element and host unless it gives its own ``energy_shift_eV``: their dopant-mobile terms per
  distance (``shells``, orbits of equal length merged as above; ``mobile_blocker`` stays empty,
  since the engine's one table would give one species' terms to every blocker), and, when ions
  placed next to it all relaxed away, the ``exclusion_radius_A`` within which it blocks sites.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Lattice

from kmc.exceptions import ConfigError, StructureError
from kmc.system.frameworks import framework_from_dict, load_framework
from kmc.system.network import SiteNetwork

__all__ = ["model_toml", "write_model_dir", "check_out_dir"]


def _q(x: Any) -> str:
    """A TOML value."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return repr(x) if math.isfinite(x) else ('"nan"' if x != x else '"inf"')
    if isinstance(x, str):
        return json.dumps(x)
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_q(v) for v in x) + "]"
    if isinstance(x, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_q(v)}" for k, v in x.items()) + " }"
    return json.dumps(str(x))


def _shells(items: list[tuple[float, float, int]]) -> tuple[list[list[float]], float]:
    """(distance, J, multiplicity) -> [[r_max, J], ...] per 0.01 Å shell and the largest spread merged."""
    by: dict[float, list[tuple[float, int]]] = {}
    for d, j, m in items:
        by.setdefault(round(d, 2), []).append((j, m))
    out, spread = [], 0.0
    for d in sorted(by):
        js = np.array([j for j, _ in by[d]])
        ms = np.array([m for _, m in by[d]], float)
        out.append([d, round(float((js * ms).sum() / ms.sum()), 6)])
        spread = max(spread, float(js.max() - js.min()))
    return out, spread


def _exclusion_distance(longest_excluded: float, others: list[float]) -> float:
    """Half-way between the longest excluded distance and the next longer one (0.05 Å beyond it
    when there is none): the one distance the model excludes within."""
    nxt = [d for d in others if d > longest_excluded]
    return round((longest_excluded + min(nxt)) / 2, 3) if nxt else round(longest_excluded + 0.05, 3)


def model_toml(problem, data: dict, fit, excluded: set[int]) -> str:
    """The text of model.toml (see the module docstring for the mapping)."""
    net = problem.network
    lat = Lattice(net.unit_lattice)
    terms = {n: v for n, v in zip(fit.names, fit.values_eV)}
    errs = {n: e for n, e in zip(fit.names, fit.errors_eV)}
    classes = problem.class_names
    prov = data["calculator"]
    # pair shells
    items, zero = [], []
    for o, (a, b, d) in enumerate(problem.orbits):
        name = problem.orbit_name(o)
        m = int((problem.pair_orbit == o).sum())
        if o in excluded or f"pair:{name}" not in terms:
            zero.append((d, 0.0, m))
        else:
            items.append((d, float(terms[f"pair:{name}"]), m))
    mm, spread = _shells(items + [z for z in zero if round(z[0], 2) not in {round(i[0], 2) for i in items}])
    # exclusions
    ex_d = sorted(problem.orbits[o][2] for o in excluded)
    note = ""
    excl = 0.0
    if ex_d:
        longer = sorted({problem.orbits[o][2] for o in range(len(problem.orbits))} - set(ex_d))
        excl = _exclusion_distance(ex_d[-1], longer)
        allowed_shorter = [problem.orbit_name(o) for o in range(len(problem.orbits))
                           if o not in excluded and problem.orbits[o][2] < ex_d[-1]]
        if allowed_shorter:
            note = (f"orbits {', '.join(allowed_shorter)} did not relax away but are shorter than an excluded "
                    f"orbit; the single exclusion distance {excl} Å excludes them too")
    inter_cut = max([r for r, _ in mm], default=0.0)
    # dopants
    shifts: dict[str, dict] = {}
    dop_excluded = set(data.get("computed_dopant_exclusions", []))
    for spec in problem.dopants:
        orbs = [o for o in range(len(problem.dopant_orbits)) if problem.dopant_orbits[o][0] == spec.element]
        gone = sorted(problem.dopant_orbits[o][3] for o in orbs if problem.dopant_orbit_name(o) in dop_excluded)
        rows = [(problem.dopant_orbits[o][3], float(terms.get(f"dopant:{problem.dopant_orbit_name(o)}", 0.0)), 1)
                for o in orbs if problem.dopant_orbit_name(o) not in dop_excluded]
        entry: dict[str, Any] = {}
        if gone:   # the mobile sites within the radius are blocked next to this dopant
            entry["exclusion_radius_A"] = _exclusion_distance(gone[-1], [d for d, _, _ in rows])
        which = problem.dopant_candidates[spec.element][0]
        if rows:
            # per species and per distance (the engine's mobile_blocker table would give one
            # species' terms to every blocker; a flat shift would average the distances away)
            entry["shells"], _ = _shells(rows)
        if entry:
            shifts[spec.element] = {"site": problem.mobile if which == "mobile" else spec.host, **entry}
    L = []
    w = L.append
    name = data.get("name") or f"{Path(problem.source).stem}-computed"
    w(f"# Computed by `kmc parametrize` on {data['date']} with {prov.get('calculator')} "
      f"({prov.get('weights', '')}); every number below is a fit or an NEB result, see [provenance]")
    w(f"# and data.json (all configurations, energies, the fit and the NEB bands). Parent structure: "
      f"{problem.source} ({problem.space_group}); written in P1 with every atom of the cell.")
    w(f"name = {_q(name)}")
    calc = prov.get("calculator")
    w(f"description = {_q(f'{problem.formula_unit} ({problem.space_group}): lattice model computed with {calc}')}")
    w(f"formula_unit = {_q(problem.formula_unit)}")
    w(f"formula_units_per_cell = {int(round(problem.z_per_cell))}")
    w(f"mobile_species = {_q(problem.mobile)}")
    w("")
    w("[cell]")
    w('space_group = "P1"')
    w(f"parent_space_group = {_q(problem.space_group)}")
    for k, v in zip(("a_A", "b_A", "c_A", "alpha_deg", "beta_deg", "gamma_deg"), (*lat.abc, *lat.angles)):
        w(f"{k} = {round(float(v), 6)}")
    for sp, f, lab in zip(problem.unit_host_species, problem.unit_host_frac, problem.unit_host_labels):
        w("")
        w("[[sites]]")
        w(f"label = {_q(lab)}")
        w(f"species = {_q(sp)}")
        w(f"frac = {_q([round(float(x), 6) for x in f])}")
        w("occupancy = 1.0")
        w('role = "framework"')
    for f, c, occ in zip(net.unit_frac, net.unit_class, net.unit_occupancy):
        w("")
        w("[[sites]]")
        w(f"label = {_q(classes[c])}")
        w(f"species = {_q(problem.mobile)}")
        w(f"frac = {_q([round(float(x), 6) for x in f])}")
        w(f"occupancy = {round(float(occ), 8)}")
        w('role = "mobile"')
    w("")
    w("[network]")
    w(f"hop_cutoff_A = {problem.hop_cutoff_A}  # every hop class below has an NEB barrier")
    w(f"exclusion_distance_A = {excl}  # computed: orbits {', '.join(data['computed_exclusions']) or '(none)'} relax away")
    w(f"interaction_cutoff_A = {round(inter_cut + 0.01, 3) if inter_cut else 0.0}")
    ko = data.get("interstitialcy")
    if ko:   # concerted events computed: every run of this model includes them
        w("")
        w("[network.interstitialcy]  # knock-off events (two ions move together), each class with NEB barriers below")
        for key in ("interstitial", "lattice", "max_angle_deg"):
            w(f"{key} = {_q(ko[key])}")
    w("")
    w("[model]")
    w(f"attempt_frequency_THz = {round(data['attempt_frequency_THz'], 4)}  # computed: harmonic frequency along "
      "the hop at the initial site, mean over hop classes")
    w("")
    w("[model.site_energies_eV]  # fitted; the first class is the reference")
    w(f"{_q(classes[0])} = 0.0")
    for c in classes[1:]:
        v = terms.get(f"site:{c}")
        w(f"{_q(c)} = {round(float(v), 6) if v is not None else 0.0}  # "
          + (f"± {errs[f'site:{c}']:.4f}" if v is not None else "undetermined by the sampled configurations"))
    w("")
    w("[model.barriers_eV]  # E_KRA, mean over NEB environments (± standard deviation)")
    for hc, v in data["neb"].items():
        w(f"{_q(hc)} = {round(v['E_KRA_mean_eV'], 6)}  # ± {v['E_KRA_std_eV']:.4f}, {v['n_environments']} environments")
    w("")
    w("[model.interactions_eV]  # per distance shell: [r_max_A, J_eV] (see [hamiltonian] for the per-orbit fit)")
    w(f"mobile_mobile = {_q(mm)}")
    w("mobile_blocker = []  # dopants on mobile sites: per species in [dopant_terms]")
    parent = _parent_framework(problem)
    if parent is not None and parent.experiment:
        # facts of the material, not of the model: carried over so the model file stands alone
        w("")
        w(f"[experiment]  # copied from the parent data file {problem.framework_name!r}, where each value is cited")
        for k, v in parent.experiment.items():
            w(f"{k} = {_q(v)}")
    if problem.dopants:
        w("")
        w("[dopant_sites]" + (f"  # as in {problem.framework_name!r}, plus the hosts of the fitted dopants"
                              if parent is not None and parent.dopant_sites else ""))
        # the parent's hosts stay (a config may dope La without fitted terms), the fitted ones join
        hosts: dict[str, list[str]] = {el: list(labs) for el, labs in
                                       (parent.dopant_sites if parent is not None else {}).items()}
        for spec in problem.dopants:
            which = problem.dopant_candidates[spec.element][0]
            if which == "mobile":
                hosts.setdefault(problem.mobile, sorted(set(classes)))
            else:
                el = spec.host if spec.host in problem.unit_host_species else \
                    problem.unit_host_species[problem.unit_host_labels.index(spec.host)]
                hosts.setdefault(el, sorted({lab for s, lab in zip(problem.unit_host_species,
                                                                    problem.unit_host_labels) if s == el}))
        for el, labs in hosts.items():
            w(f"{el} = {_q(labs)}")
    elif parent is not None and parent.dopant_sites:
        w("")
        w(f"[dopant_sites]  # copied from {problem.framework_name!r} (charge bookkeeping; no dopant terms were fitted)")
        for el, labs in parent.dopant_sites.items():
            w(f"{el} = {_q(list(labs))}")
    if shifts:
        w("")
        w("[dopant_terms]  # computed dopant-mobile terms, taken by a config's [dopants] entry of this "
          "element on this host that gives no energy_shift_eV of its own")
        for el, v in shifts.items():
            w(f"{el} = {_q(v)}")
    w("")
    w("[hamiltonian]  # the fitted lattice Hamiltonian per orbit (eV) and how it maps onto [model]")
    w(f"terms = {_q({n: [round(float(terms[n]), 6), round(float(errs[n]), 6)] for n in fit.names})}  # [value, bootstrap error]")
    w(f"undetermined = {_q(fit.undetermined)}")
    w(f"computed_exclusions = {_q(data['computed_exclusions'])}")
    w(f"computed_dopant_exclusions = {_q(data.get('computed_dopant_exclusions', []))}")
    w(f"shell_merge_max_diff_eV = {round(spread, 6)}")
    w(f"exclusion_mapping_note = {_q(note)}")
    w("")
    w("[provenance]")
    w(f"calculator = {_q(prov.get('calculator'))}")
    w(f"calculator_details = {_q({k: str(v) for k, v in prov.items()})}")
    w(f"structure = {_q(problem.source)}")
    w(f"supercell = {_q(list(net.supercell))}")
    w(f"cell_atoms = {len(problem.host_positions) + problem.n_nominal}")
    w(f"n_configurations = {len(data['configurations'])}")
    w(f"n_configurations_fitted = {data['fit']['n_configurations']}")
    if data.get("joined"):  # fitted together with other runs' configurations
        w(f"joined = {_q([{k: j[k] for k in ('source', 'sha256', 'configurations', 'fitted', 'command')} for j in data['joined']])}")
    w(f"cv_rmse_meV_per_cell = {round(1000 * data['fit']['cv_rmse_eV_per_cell'], 4)}")
    w(f"cv_rmse_meV_per_mobile_ion = {round(data['fit']['cv_rmse_meV_per_mobile_ion'], 4)}")
    w(f"neb_environments = {_q({k: v['n_environments'] for k, v in data['neb'].items()})}")
    w(f"neb_E_KRA_spread_eV = {_q({k: [round(v['E_KRA_min_eV'], 4), round(v['E_KRA_max_eV'], 4)] for k, v in data['neb'].items()})}")
    w(f"attempt_frequency_per_hop_THz = {_q({k: round(v['attempt_frequency_THz'], 4) for k, v in data['neb'].items()})}")
    hc = data.get("hop_energy_check", {})
    if hc.get("n_mapped"):  # held out: the bands' relaxed endpoints mapped onto the lattice
        w(f"hop_energy_check_eV = {_q({k: (round(v, 4) if isinstance(v, float) else v) for k, v in hc.items()})}"
          "  # Hamiltonian minus NEB energy change between the mapped relaxed endpoints (bands not fitted)")
    w(f"command = {_q(data['command'])}")
    w(f"date = {_q(data['date'])}")
    w(f"wall_s = {round(data['wall_s'], 1)}")
    text = "\n".join(L) + "\n"
    _self_check(text, problem)
    return text


def _parent_framework(problem):
    """The builtin framework the problem was built from (None for a CIF or POSCAR)."""
    return load_framework(problem.framework_name) if problem.framework_name else None


def _self_check(text: str, problem) -> None:
    """The written model must load and give every hop class of its network a barrier."""
    fw = framework_from_dict(tomllib.loads(text))
    net = SiteNetwork.from_sites(fw.structure.lattice.matrix, fw.mobile_frac, fw.mobile_labels,
                                 fw.mobile_occupancy, fw.mobile, problem.network.supercell, fw.hop_cutoff_A, 0.0, 0.0)
    if fw.interstitialcy:
        net = net.with_interstitialcy(fw.interstitialcy["interstitial"], fw.interstitialcy["lattice"],
                                      fw.interstitialcy["max_angle_deg"])
    missing = [h for h in net.event_class_names if fw.barrier_for(h) is None]
    if missing:
        raise StructureError(f"no NEB barrier for the event class {missing[0]} (no sampled configuration held "
                             "the ions and the free site it needs); raise --configs or allow vacancies.")


def check_out_dir(out: Path) -> None:
    """``out`` must not hold a model already and its parent must be writable."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {str(out)!r} exists and is not an empty directory; choose a new directory "
                          "(the model is written there complete or not at all).")
    parent = out.resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ConfigError(f"cannot write into {str(parent)!r}; choose a writable --out directory.")


def write_model_dir(out: Path, model_text: str, data: dict) -> Path:
    """Write model.toml and data.json into a temporary sibling directory, then rename it to ``out``."""
    check_out_dir(out)
    parent = out.resolve().parent
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}."))
    try:
        (tmp / "model.toml").write_text(model_text, encoding="utf-8")
        (tmp / "data.json").write_text(json.dumps(data, indent=1, default=float), encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
