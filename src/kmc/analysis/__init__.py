"""Analysis: numbers from trajectories, with their uncertainties.

MSD estimator and transport coefficients (:mod:`.transport`), Arrhenius fits
(:mod:`.arrhenius`), the Arrhenius report of a multi-temperature run (:mod:`.report`) and the
figures (:mod:`.plots`). Works on arrays; may import :mod:`kmc.constants`,
:mod:`kmc.exceptions`, :mod:`kmc.config` and :mod:`kmc.engine` (types), never :mod:`kmc.runs`.
"""
