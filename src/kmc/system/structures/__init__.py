"""Framework data (one TOML per framework, with citations), shipped as ``kmc.system.structures``."""
