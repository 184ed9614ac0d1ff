"""``kmc info``: what a lattice, framework, CIF or config builds, before anything runs.

Sites and hops per class (with lengths and barriers), exclusions, network dimensionality, ions
per cell, the (doped) formula and, with dopants, the percolation of one seeded placement.
"""
from __future__ import annotations

import difflib
import math
import tomllib
import warnings
from pathlib import Path

import numpy as np

from kmc.config import Config
from kmc.exceptions import ConfigError, KMCError
from kmc.system.frameworks import framework_names, is_framework_data, load_framework
from kmc.system.lattices import LATTICES


def parse_dopant_flag(text: str) -> tuple[str, dict]:
    """``El:site:x[:charge]`` -> (element, [dopants] entry)."""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise ConfigError(f"--dopant {text!r} must look like El:site:per_formula_unit[:charge], "
                          f"e.g. Ta:Zr:0.6 or Ga:Li1:0.25.")
    el, site, x = parts[:3]
    try:
        entry = {"site": site, "per_formula_unit": float(x)}
        if len(parts) == 4:
            entry["charge"] = int(parts[3])
    except ValueError:
        raise ConfigError(f"--dopant {text!r}: the content (and charge) must be numbers, e.g. "
                          f"Ta:Zr:0.6.") from None
    return el, entry


def config_for(source: str, *, supercell=None, dopants=(), mobile=None, hop_cutoff_A=None,
               exclusion_distance_A=None, symprec=None, interstitialcy=None) -> Config:
    """The config ``kmc info`` inspects: a TOML config as it is, or a lattice/framework name, a
    framework (model) file such as ``kmc parametrize`` writes, or a CIF path, with the given
    overrides."""
    p = Path(source)
    lattice: dict = {}
    data: dict = {"lattice": lattice}
    if p.suffix.lower() == ".toml" and _framework_file(p):
        lattice["framework_file"] = str(p.absolute())   # a model: shown like a builtin, flags apply
    elif p.suffix.lower() == ".toml":
        if not p.is_file():
            raise ConfigError(f"no config file at {source!r}; check the path.")
        if any(x is not None for x in (supercell, mobile, hop_cutoff_A, exclusion_distance_A,
                                       symprec, interstitialcy)) or dopants:
            raise ConfigError("with a TOML config, kmc info takes no --supercell/--dopant/... "
                              "flags; put them into the config.")
        return Config.from_file(p)
    elif source in LATTICES or source in framework_names():
        lattice["builtin"] = source
        if source in LATTICES:
            data["occupancy"] = {"vacancies": 1}
    elif p.is_file() or p.suffix.lower() == ".cif":
        if not p.is_file():
            raise ConfigError(f"no CIF file at {source!r}; check the path.")
        lattice["cif"] = str(p.absolute())
    else:
        names = list(LATTICES) + framework_names()

        close = difflib.get_close_matches(source, names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"choose one of {', '.join(names)}."
        raise ConfigError(f"{source!r} is neither a framework, a teaching lattice nor a file; "
                          f"{hint}")
    if supercell is not None:
        lattice["supercell"] = list(supercell)
    for key, v in (("mobile", mobile), ("hop_cutoff_A", hop_cutoff_A),
                   ("exclusion_distance_A", exclusion_distance_A), ("symprec", symprec)):
        if v is not None:
            lattice[key] = v
    if dopants:
        data["dopants"] = dict(parse_dopant_flag(d) for d in dopants)
    if interstitialcy:
        data["model"] = {"interstitialcy": parse_interstitialcy_flag(interstitialcy)}
    return Config.from_dict(data)


def _framework_file(p: Path) -> bool:
    """A readable TOML file holding a framework (model) rather than a run config."""
    try:
        return is_framework_data(tomllib.loads(p.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False   # Config.from_file says what is wrong with it


def parse_interstitialcy_flag(text: str) -> dict:
    """``I1,I2:L1[,L2][:max_angle_deg]`` -> [model.interstitialcy] table."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ConfigError(f"--interstitialcy {text!r} must look like INTERSTITIAL:LATTICE[:ANGLE] "
                          f"with comma-separated site classes, e.g. I:L:5.")
    out = {"interstitial": parts[0].split(","), "lattice": parts[1].split(",")}
    if len(parts) == 3:
        try:
            out["max_angle_deg"] = float(parts[2])
        except ValueError:
            raise ConfigError(f"--interstitialcy {text!r}: the angle must be a number of "
                              f"degrees.") from None
    return out


def _clean(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def system_info(config: Config, from_config: bool = True) -> dict:
    """Everything ``kmc info --json`` prints for ``config`` (``from_config=False``: a bare
    lattice name, whose ion count is not defined)."""
    # lazy: kmc.runs.system loads scipy (~0.4 s); `kmc info` without a source needs none
    from kmc.runs.system import barrier_values, build_model, build_system

    system = build_system(config, with_model=False)
    src, net = system.source, system.network
    barriers = dict(zip(net.event_class_names, barrier_values(config, src).tolist()))
    try:
        build_model(config, src)
        barrier_note = None
    except KMCError as exc:  # e.g. a CIF without barriers: report the classes anyway
        barrier_note = f"a run would stop here: {exc}"
    occ_class = {name: (round(float(np.mean(net.unit_occupancy[net.unit_class == k])), 6)
                        if src.kind != "teaching" else None)
                 for k, name in enumerate(net.class_names)}
    hops = {}
    for k, name in enumerate(net.hop_class_names):
        hops[name] = {"length_A": float(net.hop_class_lengths[k]),
                      "per_cell": int(np.sum(net.hop_class == k)),
                      "default_barrier_eV": _clean(src.default_barrier(name)),
                      "barrier_eV": _clean(barriers.get(name))}
    lat = net.unit_lattice
    abc = np.linalg.norm(lat, axis=1)

    def angle(i, j):
        return float(np.degrees(np.arccos(lat[i] @ lat[j] / (abc[i] * abc[j]))))
    info = {
        "source": src.kind, "name": src.name, "mobile": net.species,
        "description": src.framework.description if src.framework is not None else None,
        "space_group": _space_group(src),
        "cell_A_deg": [float(x) for x in abc] + [angle(1, 2), angle(0, 2), angle(0, 1)],
        "supercell": list(net.supercell), "n_sites": net.n_sites,
        "n_ions": system.n_ions,
        "dimensionality": net.dimensionality,
        "ions_per_cell": system.n_ions / net.n_cells,
        "structure_ions_per_cell": round(float(src.ions_per_cell), 6)
        if src.kind != "teaching" else None,
        "formula": system.formula,
        "mobile_ions_per_formula_unit": system.mobile_per_formula_unit,
        "formula_units_per_cell": src.formula_units_per_cell,
        "sites_per_class": {name: int(np.sum(net.unit_class == k))
                            for k, name in enumerate(net.class_names)},
        "occupancy_per_class": occ_class,
        "hops_per_class": hops,
        "hop_cutoff_A": src.hop_cutoff_A,
        "exclusion_distance_A": src.exclusion_distance_A,
        "exclusion_pairs_per_cell": len(net.exclusions) // 2,
        "interaction_cutoff_A": src.interaction_cutoff_A,
        "interaction_shells_A": [float(x) for x in net.shell_lengths],
    }
    if src.kind == "teaching" and not from_config:
        # a teaching lattice has no intrinsic ion count (kmc info on a config reports its own)
        for key in ("ions_per_cell", "n_ions", "formula", "mobile_ions_per_formula_unit"):
            info[key] = None
    if net.knockoffs is not None:
        info["knockoff_classes"] = {
            name: {"per_cell": int(np.sum(net.knockoffs.klass == k)),
                   "default_barrier_eV": _clean(src.default_barrier(name)),
                   "barrier_eV": _clean(barriers.get(name))}
            for k, name in enumerate(net.knockoffs.names)}
    if barrier_note:
        info["barrier_note"] = barrier_note
    if src.framework is not None and "provenance" in src.framework.data:
        info["provenance"] = src.framework.data["provenance"]
    if system.dopants:
        blocked, _ = system.disorder(np.random.SeedSequence(config.run.seed))
        info["dopants"] = {
            "blocked_per_class": system.blocked_counts,
            "framework_dopants": {d.element: int(sum(d.counts.values()))
                                  for d in system.dopants if not d.on_mobile_sites},
            "energy_shifts": {d.element: {"energy_shift_eV": d.energy_shift_eV,
                                          "shift_radius_A": d.shift_radius_A}
                              for d in system.dopants if d.energy_shift_eV is not None},
            "shells": {d.element: d.shells for d in system.dopants if d.shells},
            "exclusion_radius_A": {d.element: d.exclusion_radius_A for d in system.dopants
                                   if d.exclusion_radius_A},
        }
        info["percolation"] = dict(system.percolation(blocked), seed=config.run.seed)
    else:
        info["percolation"] = system.percolation(np.zeros(net.n_sites, bool))
    return info


def _space_group(src) -> str | None:
    if src.framework is not None:
        return str(src.framework.data["cell"]["space_group"])
    if src.kind == "cif":
        try:
            # lazy: ~0.3 s (spglib, scipy); `kmc info` without a source (the builtins list) needs none
            from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sga = SpacegroupAnalyzer(src.structure, symprec=0.01)
                return f"{sga.get_space_group_symbol()} ({sga.get_space_group_number()})"
        except Exception:
            return None
    return None


def _g(v, fmt=".3g") -> str:
    return "-" if v is None else format(v, fmt)


def info_text(info: dict) -> str:
    """The readable table of ``kmc info``."""
    head = f"{info['name']} ({info['source']})"
    if info.get("description"):
        head += f": {info['description']}"
    a, b, c, al, be, ga = info["cell_A_deg"]
    lines = [head,
             f"  cell {a:.4g} x {b:.4g} x {c:.4g} Å, {al:.4g}/{be:.4g}/{ga:.4g} deg"
             + (f", space group {info['space_group']}" if info.get("space_group") else ""),
             f"  supercell {' x '.join(map(str, info['supercell']))}: {info['n_sites']} "
             f"{info['mobile']} sites"
             + (f", {info['n_ions']} ions" if info["n_ions"] is not None else "")]
    if info["formula"] is not None:
        lines.append(f"  formula {info['formula']} ({_g(info['mobile_ions_per_formula_unit'], '.4g')}"
                     f" {info['mobile']} per formula unit, {_g(info['ions_per_cell'], '.4g')} per "
                     f"cell, Z = {_g(info['formula_units_per_cell'], 'g')})")
    lines.append(f"  network dimensionality {info['dimensionality']}; hop cutoff "
                 f"{info['hop_cutoff_A']:g} Å; exclusion distance {info['exclusion_distance_A']:g} "
                 f"Å ({info['exclusion_pairs_per_cell']} excluded pairs per cell)")
    lines.append("")
    lines.append(f"  {'site class':<16}{'sites/cell':>11}{'occupancy':>11}")
    for name, n in info["sites_per_class"].items():
        lines.append(f"  {name:<16}{n:>11}{_g(info['occupancy_per_class'][name], '.4g'):>11}")
    lines.append("")
    lines.append(f"  {'hop class':<28}{'length (Å)':>11}{'hops/cell':>10}{'default Ea':>11}"
                 f"{'used Ea':>9}")
    for name, h in info["hops_per_class"].items():
        lines.append(f"  {name:<28}{h['length_A']:>11.2f}{h['per_cell']:>10}"
                     f"{_g(h['default_barrier_eV']):>11}{_g(h['barrier_eV']):>9}")
    for name, h in info.get("knockoff_classes", {}).items():
        lines.append(f"  {name:<28}{'':>11}{h['per_cell']:>10}{_g(h['default_barrier_eV']):>11}"
                     f"{_g(h['barrier_eV']):>9}")
    if info.get("barrier_note"):
        lines.append(f"  note: {info['barrier_note']}")
    if "dopants" in info:
        d = info["dopants"]
        parts = [f"{k} blockers on {lab}" for lab, k in d["blocked_per_class"].items()]
        parts += [f"{k} {el} on framework sites" for el, k in d["framework_dopants"].items()]
        lines.append("")
        lines.append("  dopants per supercell: " + (", ".join(parts) or "none"))
        terms = [f"{el} {v['energy_shift_eV']:+g} eV within {v['shift_radius_A']:g} Å"
                 for el, v in d["energy_shifts"].items()]
        terms += [f"{el} " + ", ".join(f"{j:+.3f} eV at {r:g} Å" for r, j in shells if j)
                  for el, shells in d.get("shells", {}).items()]
        terms += [f"{el} blocks the {info['mobile']} sites within {r:g} Å"
                  for el, r in d.get("exclusion_radius_A", {}).items()]
        if terms:
            lines.append("  dopant-ion energy terms: " + "; ".join(terms))
    if info.get("provenance"):
        lines.append("")
        lines.append("  " + provenance_line(info["provenance"]))
    p = info["percolation"]
    lines.append(f"  percolation: {p['spanning_fraction']:.3f} of the free sites in spanning "
                 f"clusters, dimensionality {p['dimensionality']}"
                 + (f" (placement of seed {p['seed']})" if "seed" in p else ""))
    return "\n".join(lines)


def provenance_line(prov: dict) -> str:
    """One line saying how a computed model was made (calculator, cell, configurations, CV error)."""
    calc = prov.get("calculator_details", {}).get("weights") or prov.get("calculator", "?")
    parts = [f"computed with {prov.get('calculator', '?')} ({calc})",
             f"{'x'.join(map(str, prov.get('supercell', [])))} cell of {prov.get('structure', '?')}",
             f"{prov.get('n_configurations_fitted', '?')} of {prov.get('n_configurations', '?')} "
             f"relaxed configurations fitted",
             f"CV RMSE {prov.get('cv_rmse_meV_per_mobile_ion', float('nan')):.2f} meV per mobile ion",
             f"on {str(prov.get('date', '?'))[:10]}"]
    return "; ".join(parts) + (f"; reproduce: {prov['command']}" if prov.get("command") else "")


def builtins_info() -> dict:
    """Every builtin: teaching lattices, frameworks (description) and, for computed frameworks,
    their provenance."""
    frameworks = {}
    for name in framework_names():
        fw = load_framework(name)
        frameworks[name] = {"description": fw.description, "provenance": fw.data.get("provenance")}
    return {"teaching_lattices": list(LATTICES), "frameworks": frameworks}


def builtins_text(listing: dict) -> str:
    """The readable list of ``kmc info`` without a source."""
    lines = ["teaching lattices: " + ", ".join(listing["teaching_lattices"]), "frameworks:"]
    w = 2 + max((len(n) for n in listing["frameworks"]), default=0)
    for name, f in listing["frameworks"].items():
        lines.append(f"  {name:<{w}}{f['description'] or ''}")
        if f["provenance"]:
            lines.append(f"  {'':<{w}}{provenance_line(f['provenance'])}")
    lines.append("kmc info NAME describes one (sites, hops, barriers); kmc info CIF or CONFIG.toml too.")
    return "\n".join(lines)
