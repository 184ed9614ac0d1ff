"""Campaigns: grids of runs over any config key, local or on Dask, in a SQLite store.

:class:`~kmc.campaign.core.Campaign` (spec, executors), the store (:mod:`.store`) and the
campaign figures (:mod:`.plots`). May import everything below it (runs and lower).
"""
