"""Runs: a config turned into replicas, results and files.

Building the system from a config (:mod:`.sources`), the replica runner (:mod:`.runner`),
plain-data checkpoints (:mod:`.checkpoint`), trajectories (:mod:`.trajectory`), ``--out`` files
(:mod:`.output`) and provenance (:mod:`.provenance`). Named ``runs`` because ``kmc.run`` is the
public function. May import everything below it: constants, exceptions, files, system, config,
engine, analysis.
"""
