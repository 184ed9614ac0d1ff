"""Does the convergence rule's reported error cover the truth? Measured against an exact result.

On the simple symmetric exclusion process (a simple-cubic lattice gas with site exclusion only,
constant barrier) the collective displacement is a martingale: every hop adds one step of length
a, so MSD_collective(t) = a^2 * E[hops in t] exactly and

    D_J = Gamma * z * a^2 * (N_s - N) / (N_s - 1) / (2 d)        (canonical ensemble, N ions)

with Gamma = nu * exp(-E_b / kT), z = 2d neighbours. This script runs many seeds with
``target_rel_err`` and ``converge_on = ["D_jump"]``, with and without
``fresh_final_round``, and prints sum(z^2)/n of D_J against that value (z from the reported
standard error). Without the fresh round the stop is taken on draws whose error came out small;
with it the reported replicas took no part in the decision. With R replicas the ideal value is
the variance of Student's t with R - 1 degrees of freedom, (R - 1) / (R - 3).

    python scripts/stopping_rule_bias.py --seeds 60
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

import kmc
from kmc.constants import KB_EV_K


def config(seed: int, fresh: bool, args) -> dict:
    return {"lattice": {"builtin": "sc", "supercell": [args.size] * 3},
            "occupancy": {"filling": 0.5},
            "model": {"barrier_eV": 0.25, "attempt_frequency_THz": 10.0},
            "run": {"temperatures_K": [600.0], "hops_per_ion": args.hops, "replicas": args.replicas,
                    "seed": seed, "target_rel_err": args.target, "converge_on": ["D_jump"],
                    "max_hops_per_ion": args.hops * 2 ** 12, "fresh_final_round": fresh,
                    "workers": 1}}


def exact_d_jump_cm2_s(system: kmc.System) -> float:
    """D_J of the exclusion process on ``system`` (canonical ensemble)."""
    built = system.build()
    net, n = built.network, built.n_ions
    a2 = float(np.sum(net.hop_vectors[0] ** 2))  # A^2; every hop of sc has one length
    d = net.dimensionality
    m = system.config.model
    gamma = m.attempt_frequency_THz * 1e12 * math.exp(-m.barrier_eV / (KB_EV_K * 600.0))
    return gamma * 2 * d * a2 * 1e-16 * (net.n_sites - n) / (net.n_sites - 1) / (2 * d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=60)
    ap.add_argument("--size", type=int, default=4, help="sc supercell edge (sites = size^3)")
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--hops", type=float, default=20.0, help="first-round hops per ion")
    ap.add_argument("--target", type=float, default=0.08, help="target_rel_err")
    args = ap.parse_args()
    exact = exact_d_jump_cm2_s(kmc.System.from_config(config(0, False, args)))
    print(f"sc {args.size}^3 half filled, {args.replicas} replicas, target_rel_err {args.target}, "
          f"converge_on D_jump; exact D_J = {exact:.6e} cm2/s")
    ideal = (args.replicas - 1) / (args.replicas - 3) if args.replicas > 3 else math.inf
    for fresh in (False, True):
        t0 = time.time()
        z, rel, dev, stopped = [], [], [], 0
        for seed in range(args.seeds):
            res = kmc.run(config(seed, fresh, args)).to_dict()["results"][0]
            if res["converged"]:
                stopped += 1
            z.append((res["D_jump_cm2_s"] - exact) / res["D_jump_err_cm2_s"])
            rel.append(res["rel_err_D_jump"])
            dev.append(res["D_jump_cm2_s"] / exact - 1.0)
        z = np.array(z)
        # SE of mean(z^2): from the spread of the z^2 values themselves
        m, se = float(np.mean(z ** 2)), float(np.std(z ** 2, ddof=1) / math.sqrt(len(z)))
        dev = np.array(dev)
        print(f"fresh_final_round = {str(fresh).lower():5s}: sum(z^2)/n = {m:.2f} +- {se:.2f} "
              f"(ideal {ideal:.2f}), mean z = {z.mean():+.2f}, D_J / exact - 1 = "
              f"{dev.mean():+.4f} +- {dev.std(ddof=1) / math.sqrt(len(dev)):.4f}, median reported rel err "
              f"{np.median(rel):.3f}, stopped on the target {stopped}/{len(z)}, "
              f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
