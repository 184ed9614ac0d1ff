"""The system: where the mobile ions can sit and hop.

Teaching lattices (:mod:`.lattices`), framework data files (:mod:`.frameworks`, data in
``kmc.system.structures``), the site network with hops, exclusions and interaction shells
(:mod:`.network`) and dopant placement (:mod:`.dopants`). May import only :mod:`kmc.constants`
and :mod:`kmc.exceptions` (and pymatgen/spglib): it knows nothing of configs or runs.
"""
