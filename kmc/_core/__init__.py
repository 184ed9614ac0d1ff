"""Cython core: the sum tree and the kMC engine (the only compiled code)."""
