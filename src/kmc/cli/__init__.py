"""The ``kmc`` command line: one module per command group (:mod:`.main` holds ``kmc run``,
``kmc info`` and the dispatcher; :mod:`.campaign`, :mod:`.teaching`, :mod:`.parametrize`).
The top layer: may import anything; nothing imports it. ``python -m kmc`` runs it.
"""
