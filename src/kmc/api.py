"""The Python front door, mirroring the command line: build a :class:`System` from a config or a
structure, then :func:`run` it.

>>> import kmc
>>> system = kmc.System.from_config("quickstart")             # a bundled example, a path or a dict
>>> result = kmc.run(system, hops_per_ion=20, replicas=2)      # a kmc.runs.results.RunResult
>>> result.to_dict()["results"][0]["correlation_factor"] > 0   # what result.json holds
True

A thin layer over :class:`kmc.config.Config`, :func:`kmc.runs.system.build_system` and
:func:`kmc.runs.runner.run_config`: every argument is validated as the same TOML key would be, and
the result is the one ``kmc run`` writes.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from pymatgen.core import Structure

from kmc.config import Config, OutputConfig, RunConfig
from kmc.exceptions import ConfigError, ResultWarning, StructureError
from kmc.runs.runner import run_config
from kmc.runs.system import System as SystemBuild
from kmc.runs.system import build_system, network_info

__all__ = ["System", "run"]


def _to_structure(structure: Any):
    """A pymatgen Structure from a Structure or an ASE Atoms object."""
    if isinstance(structure, Structure):
        return structure
    try:
        # lazy: ase (~10 ms) only for an ASE Atoms input
        from ase import Atoms

        is_atoms = isinstance(structure, Atoms)
    except ImportError:  # ase is a dependency, but keep the message useful without it
        is_atoms = False
    if is_atoms:
        # lazy: pymatgen.io.ase loads ase.io and scipy (~0.2 s)
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_structure(structure)
    raise StructureError(f"cannot read a structure from a {type(structure).__name__}; pass a "
                         f"pymatgen Structure, an ASE Atoms object or the path of a CIF/POSCAR "
                         f"file.")


class System:
    """What will be simulated: a validated :class:`~kmc.config.Config` (and, for a structure
    given in memory, that structure), built into the site network and rate model on first use.

    Make one with :meth:`from_config` or :meth:`from_structure`; run it with :func:`run`.

    Attributes
    ----------
    config : kmc.config.Config
        The full configuration (``to_dict()`` is what ``result.json`` records).
    structure : pymatgen.core.Structure or None
        The structure given to :meth:`from_structure` (None for a config or a file).
    """

    def __init__(self, config: Config, structure=None) -> None:
        if not isinstance(config, Config):
            raise ConfigError(f"System needs a kmc.config.Config, got a {type(config).__name__}; "
                              f"use System.from_config(...) or System.from_structure(...).")
        self.config = config
        self.structure = structure
        self._built: SystemBuild | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: str | os.PathLike | dict | Config) -> "System":
        """A system from a TOML file, a bundled name, a config dict or a Config.

        Parameters
        ----------
        config : str, path, dict or Config
            A path to a TOML config; a bundled example (``"quickstart"``) or framework
            (``"llzo-cubic"``) name, resolved as ``kmc run`` does; the nested dict of a TOML
            config; or a :class:`~kmc.config.Config`.
        """
        if isinstance(config, Config):
            return cls(config)
        if isinstance(config, dict):
            return cls(Config.from_dict(config))
        if isinstance(config, (str, os.PathLike)):
            return cls(Config.from_file(config if isinstance(config, str) else Path(config)))
        raise ConfigError(f"cannot make a config from a {type(config).__name__}; pass a TOML "
                          f"path, a bundled name, a dict or a kmc.config.Config.")

    @classmethod
    def from_structure(
        cls,
        structure: Any,
        mobile: str = "Li",
        *,
        hop_cutoff_A: float | None = None,
        exclusion_distance_A: float | None = None,
        interaction_cutoff_A: float | None = None,
        supercell: Sequence[int] | None = None,
        symprec: float | None = None,
        vacancies: int | None = None,
        filling: float | None = None,
        ions: int | None = None,
        barrier_eV: float | dict | None = None,
        attempt_frequency_THz: float | None = None,
        model: dict | None = None,
    ) -> "System":
        """A system from a crystal structure (the ``[lattice] cif`` route without a file).

        Every site holding ``mobile`` (fully or partly) becomes a network site; site classes
        are the structure's site labels where they name the symmetry orbits, else the orbits;
        an immobile species sharing a mobile site blocks that fraction of the class's sites.

        Parameters
        ----------
        structure : pymatgen.core.Structure, ase.Atoms, str or path
            The unit cell (a pymatgen Structure may be disordered), or a CIF/POSCAR file.
        mobile : str
            Element of the mobile ion.
        hop_cutoff_A, exclusion_distance_A, interaction_cutoff_A, supercell, symprec
            The ``[lattice]`` keys of the same names (defaults: 3.0 Å, 0 Å, the range of the
            interaction tables, at least 20 Å along every axis, 0.01).
        vacancies, filling, ions : optional
            At most one: the ``[occupancy]`` (default: the structure's own ion count).
        barrier_eV : float or dict, optional
            E_KRA for every hop class, or one per class (``"Li1-Li2@2.86"``: see
            ``System.network.hop_class_names``); required unless ``model`` holds it.
        attempt_frequency_THz : float, optional
            Attempt frequency (default 10 THz).
        model : dict, optional
            A whole ``[model]`` table (site energies, interactions, field, ...).

        Raises
        ------
        kmc.exceptions.ConfigError, kmc.exceptions.StructureError
            One sentence naming the bad value and the fix.
        """
        lattice: dict[str, Any] = {"mobile": mobile}
        for key, value in (("hop_cutoff_A", hop_cutoff_A),
                           ("exclusion_distance_A", exclusion_distance_A),
                           ("interaction_cutoff_A", interaction_cutoff_A),
                           ("symprec", symprec)):
            if value is not None:
                lattice[key] = value
        if supercell is not None:
            lattice["supercell"] = list(supercell)
        occupancy = {k: v for k, v in (("vacancies", vacancies), ("filling", filling),
                                       ("ions", ions)) if v is not None}
        model_table: dict[str, Any] = dict(model or {})
        arguments: tuple[tuple[str, Any], ...] = (("barrier_eV", barrier_eV),
                                                  ("attempt_frequency_THz", attempt_frequency_THz))
        for key, value in arguments:
            if value is None:
                continue
            if key in model_table:
                raise ConfigError(f"{key} is given both as an argument and in model; give it "
                                  f"once.")
            model_table[key] = value
        data = {"lattice": lattice, "occupancy": occupancy, "model": model_table}
        if isinstance(structure, (str, os.PathLike)):
            lattice["cif"] = str(Path(structure).expanduser().absolute())
            return cls(Config.from_dict(data))
        st = _to_structure(structure)
        if not any(el.symbol == mobile for el in st.composition.elements):
            have = ", ".join(sorted({el.symbol for el in st.composition.elements}))
            raise StructureError(f"the structure {st.composition.reduced_formula} contains no "
                                 f"{mobile} (it has {have}); pass mobile= its mobile species.")
        name = f"<structure {st.composition.reduced_formula}>"
        return cls(Config.from_dict(data, structure_name=name), st)

    # ------------------------------------------------------------------ what it builds
    def build(self) -> "SystemBuild":
        """The built :class:`kmc.runs.system.System` (network, rate model, ion count, blockers);
        built once, on first use."""
        if self._built is None:
            self._built = build_system(self.config, structure=self.structure)
        return self._built

    @property
    def network(self):
        """The :class:`~kmc.system.network.SiteNetwork` (site and hop classes, dimensionality)."""
        return self.build().network

    @property
    def n_ions(self) -> int:
        """Mobile ions in the supercell."""
        return self.build().n_ions

    @property
    def formula(self) -> str | None:
        """Formula per formula unit, e.g. ``"Li3N"``."""
        return self.build().formula

    def summary(self) -> dict:
        """The ``network`` object a result will carry (sites, hops, cutoffs, ions, blockers)."""
        return network_info(self.build())

    def with_run(self, **run: Any) -> "System":
        """A copy with ``[run]`` values replaced (validated as in a TOML file), sharing the
        built network and model (they do not depend on ``[run]``)."""
        cfg = self.config
        data = cfg.to_dict()
        new_run = RunConfig.parse({**data.get("run", {}), **run})
        output = OutputConfig.parse(data["output"], new_run.temperatures_K) \
            if cfg.output is not None else None
        out = System(replace(cfg, run=new_run, output=output), self.structure)
        out._built = self._built
        return out

    def __repr__(self) -> str:
        lc = self.config.lattice
        return f"kmc.System({lc.source_name!r}, {self.config.run.temperatures_K} K)"


def run(system: System | Config | dict | str | os.PathLike, *,
        temperatures_K: float | Sequence[float] | None = None,
        hops_per_ion: float | None = None, replicas: int | None = None,
        seed: int | None = None, workers: int | None = None, progress: bool = False):
    """Run a system (or anything :meth:`System.from_config` takes), as ``kmc run`` does.

    Parameters
    ----------
    system : System, Config, dict, str or path
        What to run.
    temperatures_K, hops_per_ion, replicas, seed : optional
        Replace the ``[run]`` values of the same names.
    workers : int, optional
        Threads advancing the replicas of all temperatures concurrently (default ``[run]
        workers``, else every core); the result is bit-identical for any value. For many
        configs in parallel use :class:`kmc.campaign.core.Campaign`.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    kmc.runs.results.RunResult
        ``to_dict()`` is exactly what ``result.json`` holds; ``to_dataframe()`` one row per
        temperature.

    Warns
    -----
    kmc.exceptions.ResultWarning
        Once per entry of ``result.warnings``: a quantity measured outside the diffusive regime
        (with what to raise), or no error bars from one replica.
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ConfigError(f"workers must be a whole number of at least 1 (threads advancing the "
                          f"replicas), got {workers!r}.")
    if not isinstance(system, System):
        system = System.from_config(system)
    overrides: dict[str, Any] = {}
    if temperatures_K is not None:
        if hasattr(temperatures_K, "tolist"):  # a numpy array or scalar
            temperatures_K = temperatures_K.tolist()
        overrides["temperatures_K"] = list(temperatures_K) \
            if isinstance(temperatures_K, (list, tuple)) else temperatures_K
    for key, value in (("hops_per_ion", hops_per_ion), ("replicas", replicas), ("seed", seed)):
        if value is not None:
            overrides[key] = value
    if overrides:
        system = system.with_run(**overrides)
    result = run_config(system.config, progress=progress, system=system.build(), workers=workers)
    for message in result.warnings:  # a script sees what `kmc run` prints on stderr
        warnings.warn(message, ResultWarning, stacklevel=2)
    return result
