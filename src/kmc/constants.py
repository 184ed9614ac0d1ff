"""Physical constants and unit conversions, each defined once (SI 2019 exact values).

Imports nothing from kmc; every layer may import it.
"""
from __future__ import annotations

import numpy as np

#: Boltzmann constant, eV/K (exact in SI 2019: 1.380649e-23 J/K / 1.602176634e-19 C)
KB_EV_K: float = 8.617333262e-5
#: Boltzmann constant, J/K (exact, SI 2019)
KB_J_K: float = 1.380649e-23
#: elementary charge, C (exact, SI 2019)
E_CHARGE_C: float = 1.602176634e-19
A_TO_CM = 1e-8
A2_TO_CM2 = 1e-16
A3_TO_CM3 = 1e-24


def beta_per_eV(temperature_K):
    """1 / (kB T) in 1/eV, for a temperature or an array of temperatures in K."""
    if np.ndim(temperature_K) == 0:
        return 1.0 / (KB_EV_K * float(temperature_K))
    return 1.0 / (KB_EV_K * np.asarray(temperature_K, dtype=float))
