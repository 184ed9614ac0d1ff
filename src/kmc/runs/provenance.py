"""Provenance of a result: which kmc, which model data, which settings and which platform.

:func:`run_provenance` is the ``provenance`` object of ``result.json`` (and of every campaign
row). It holds no time stamp and no host name, so the same config and seed still give the same
result file on the same platform.
"""
from __future__ import annotations

import hashlib
import platform
import sys
import warnings
from dataclasses import fields
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from pymatgen.io.cif import CifWriter

from kmc import __version__
from kmc.config.keys import canonical_json
from kmc.system.frameworks import framework_file

if TYPE_CHECKING:  # annotations only: provenance imports nothing heavy at run time
    from kmc.config import Config
    from kmc.runs.sources import Source
    from kmc.runs.system import System

#: packages whose versions can change a result (engine build, analysis, structure handling)
PACKAGES = ("numpy", "scipy", "pymatgen", "spglib", "ase", "Cython")


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def model_source(source: "Source | None") -> dict:
    """Where the sites and the default model came from (a :class:`kmc.runs.sources.Source`): kind and
    name; for a data file or CIF its file name and the sha256 of the bytes actually read; for a
    framework also the data file's ``[provenance]`` table if it has one, the files of its
    ``[based_on]`` builtins and its start structure; for a structure given
    in memory the sha256 of its CIF rendering and that CIF text itself."""
    if source is None:
        return {}
    out = {"kind": source.kind, "name": source.name}
    if source.kind == "framework":
        f = Path(source.path) if source.path else framework_file(source.name)
        out.update(file=f.name, sha256=sha256_hex(f.read_bytes()))
        fw = source.framework
        if fw is not None and "provenance" in fw.data:
            out["provenance"] = fw.data["provenance"]
        if fw is not None and "based_on" in fw.data:   # a builtin made of other builtins' files
            out["based_on"] = {role: {"name": base, "file": framework_file(base).name,
                                      "sha256": sha256_hex(framework_file(base).read_bytes())}
                               for role, base in fw.data["based_on"].items()}
        if fw is not None and fw.start_structure:
            start = Path(fw.start_structure)
            out["start_structure"] = {"file": start.name, "sha256": sha256_hex(start.read_bytes())}
    elif source.kind == "cif":
        p = Path(source.name)
        if p.is_file():
            out.update(name=p.name, file=p.name, sha256=sha256_hex(p.read_bytes()))
        elif source.structure is not None:  # given in memory: record the structure itself

            with warnings.catch_warnings():  # pymatgen's notes on repeated labels: not ours
                warnings.simplefilter("ignore")
                text = str(CifWriter(source.structure))
            out.update(kind="structure", sha256=sha256_hex(text.encode("utf-8")), cif=text)
    return out


def platform_info() -> dict:
    """Python, the packages in :data:`PACKAGES` and the operating system."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "implementation": sys.implementation.name,
            "packages": versions, "os": platform.system(), "os_release": platform.release(),
            "machine": platform.machine()}


#: ``[run]`` fields that do not decide how D*, D_J, f and their errors are estimated: the
#: temperatures and seed (recorded elsewhere in the provenance), an ignored legacy key, a debug
#: check and the execution setting
NOT_ESTIMATOR = ("temperatures_K", "seed", "msd_points", "check_rates", "workers")


def estimator_settings(config: "Config") -> dict:
    """The ``[run]`` values that decide how D*, D_J, f and their errors are estimated: every
    field of :class:`kmc.config.RunConfig` but :data:`NOT_ESTIMATOR` (a new field is recorded
    without touching this function)."""
    run = config.run
    out = {"estimator": "MSD slope over all overlapping time origins, diffusive window",
           "error": "standard error over replicas"}
    for f in fields(run):
        if f.name not in NOT_ESTIMATOR:
            v = getattr(run, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def run_provenance(config: "Config", system: "System") -> dict:
    """The ``provenance`` object of a result: kmc version, model source, the full config and
    its sha256 (canonical JSON), the seed, the estimator settings and the platform."""
    cfg = config.to_dict()
    canonical = canonical_json(cfg)
    return {"kmc_version": __version__,
            "model_source": model_source(getattr(system, "source", None)),
            "config": cfg, "config_sha256": sha256_hex(canonical.encode("ascii")),
            "seed": config.run.seed, "estimator": estimator_settings(config),
            "platform": platform_info()}
