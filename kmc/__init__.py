"""kmc: rejection-free kinetic Monte Carlo of ion hopping in solid electrolytes."""
__version__ = "0.1.0"
