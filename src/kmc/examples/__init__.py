"""Built-in example configurations, shipped as ``kmc.examples``."""
