"""Configuration: TOML <-> frozen dataclasses, validated once at the boundary.

Holds :class:`Config` and its sections (lattice, occupancy, model, run, output, dopants), the
plausibility checks and the bundled examples. May import :mod:`kmc.constants`,
:mod:`kmc.exceptions` and :mod:`kmc.system` (to check names against the lattices and frameworks
that exist); nothing above.
"""
from kmc.config.schema import (
                               ARRHENIUS_BASES,
                               CIF_EXCLUSION_DISTANCE_A,
                               CIF_HOP_CUTOFF_A,
                               CIF_SYMPREC,
                               DEFAULT_MSD_FRAMES,
                               Config,
                               InterstitialcyConfig,
                               LatticeConfig,
                               ModelConfig,
                               OccupancyConfig,
                               OutputConfig,
                               RunConfig,
                               auto_supercell,
                               bundled_examples,
                               check_hop_budget,
                               config_file,
                               resolve_config,
                               validity_notes,
)

__all__ = ["ARRHENIUS_BASES", "CIF_EXCLUSION_DISTANCE_A", "CIF_HOP_CUTOFF_A", "CIF_SYMPREC",
           "DEFAULT_MSD_FRAMES", "Config", "InterstitialcyConfig", "LatticeConfig", "ModelConfig",
           "OccupancyConfig", "OutputConfig", "RunConfig", "auto_supercell", "bundled_examples",
           "check_hop_budget", "config_file", "resolve_config", "validity_notes"]
