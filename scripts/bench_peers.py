"""kmc against peer lattice-kMC codes on the same lattice and filling: hops per second.

    python scripts/bench_peers.py                  # sc 10^3 and 16^3, half-filled (several minutes)
    python scripts/bench_peers.py --sizes 10 --seconds 3

Installs the peers from the package index into throwaway virtual environments under --venv-dir
(one per peer: kmcpy's numba refuses the old `coverage` that lattice_mc's dependencies pin) and
times each peer there in a subprocess; kmc runs in this interpreter through its public API.

Systems: simple cubic L^3 with periodic boundaries, half-filled, nearest-neighbour hops, attempt
frequency 1e13 Hz, 298 K (lattice_mc's fixed temperature):
  - "no interaction": every possible hop has rate 1e13 Hz (barrier 0);
  - "nn J=0.05 eV": nearest-neighbour pair energy J, Metropolis rates 1e13 * min(1, exp(-dE/kT)).
    lattice_mc's nn_energy model; kmc with E_KRA = 0 gives exactly these rates, because
    max(E_KRA + dE/2, dE, 0) = max(dE, 0).
Each code runs one timed stretch of at least --seconds wall-clock seconds after a short warm-up
(set-up and JIT compilation excluded). lattice_mc and kmcpy are driven through their own hop loops
(lattice_mc: Simulation.run; kmcpy: KMC.propose + KMC.update, the loop of KMC.run without its
tracker). kmcpy runs only without interactions: its barrier models have no pair-energy dE.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

MARKER = ".kmc-bench-peers"
T_K = 298.0
NU_HZ = 1e13
J_EV = 0.05

LATTICE_MC_DRIVER = textwrap.dedent("""
    import json, sys, time, random
    import importlib.metadata
    import numpy as np
    from lattice_mc import init_lattice, simulation
    L, J, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    random.seed(1); np.random.seed(1)
    sim = simulation.Simulation()
    sim.lattice = init_lattice.cubic_lattice(L, L, L, 1.0)
    sim.set_number_of_atoms(L ** 3 // 2)
    if J:
        sim.set_nn_energy(J)
        sim.setup_lookup_table()

    def run(n):
        sim.set_number_of_jumps(n)
        t = time.perf_counter()
        sim.run()
        return time.perf_counter() - t

    probe = run(20)                                 # warm-up, and the rate estimate
    n = max(20, int(seconds / probe * 20))
    dt = run(n)
    print(json.dumps({"version": importlib.metadata.version("lattice_mc"), "sites": L ** 3,
                      "ions": L ** 3 // 2, "hops": n, "seconds": dt}))
""")

KMCPY_DRIVER = textwrap.dedent("""
    import json, logging, sys, time, types
    import numpy as np
    logging.disable(logging.CRITICAL)
    import kmcpy
    from kmcpy.event import Event, EventLib
    from kmcpy.models import LocalBarrierModel
    from kmcpy.simulator.kmc import KMC
    from kmcpy.simulator.state import State
    from pymatgen.core import Lattice, Structure
    L, seconds = int(sys.argv[1]), float(sys.argv[2])
    site = lambda i, j, k: ((i % L) * L + (j % L)) * L + (k % L)
    lib = EventLib()
    for i in range(L):
        for j in range(L):
            for k in range(L):
                for a, b, c in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
                    lib.add_event(Event((site(i, j, k), site(i + a, j + b, k + c)), ()))
    lib.generate_event_dependencies()
    occ = np.ones(L ** 3, dtype=int)                # kmcpy's hop codes: 0 = ion, 1 = vacancy
    occ[np.random.default_rng(1).choice(L ** 3, L ** 3 // 2, replace=False)] = 0
    state = State(occ.tolist())
    frac = [[i / L, j / L, k / L] for i in range(L) for j in range(L) for k in range(L)]
    structure = Structure(Lattice.cubic(L), ["Li"] * L ** 3, frac)
    config = types.SimpleNamespace(runtime_config=types.SimpleNamespace(
        temperature=__T__, attempt_frequency=__NU__))
    kmc = KMC(structure, LocalBarrierModel.constant_barrier(0.0), lib, config,
              simulation_state=state)
    kmc.rng = np.random.default_rng(2)

    def run(n):
        t = time.perf_counter()
        for _ in range(n):
            event, dt = kmc.propose(lib.events)
            kmc.update(event, dt)
        return time.perf_counter() - t

    run(5)                                          # numba compilation
    probe = run(20)
    n = max(20, int(seconds / probe * 20))
    dt = run(n)
    print(json.dumps({"version": kmcpy.__version__, "sites": L ** 3, "ions": L ** 3 // 2,
                      "hops": n, "seconds": dt}))
""").replace("__T__", repr(T_K)).replace("__NU__", repr(NU_HZ))


def make_venv(root: Path, name: str, package: str) -> tuple[Path | None, str]:
    """A fresh virtual environment with ``package`` installed: (python, "") or (None, reason)."""
    env = root / name
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    python = env / "bin" / "python"
    out = subprocess.run([str(python), "-m", "pip", "install", "-q", package],
                         capture_output=True, text=True)
    if out.returncode:
        lines = [x for x in out.stderr.splitlines() if x.strip() and "is ignored" not in x]
        return None, f"pip install {package} failed: {lines[-1] if lines else out.returncode}"
    return python, ""


def run_driver(python: Path, source: str, args: list) -> tuple[dict | None, str]:
    """Run a timing driver in a peer's environment: (result, "") or (None, reason)."""
    script = python.parent.parent / "driver.py"
    script.write_text(source)
    out = subprocess.run([str(python), str(script), *map(str, args)], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": ""})
    if out.returncode:
        lines = [x for x in out.stderr.splitlines() if x.strip()]
        return None, lines[-1] if lines else f"exit code {out.returncode}"
    return json.loads(out.stdout.strip().splitlines()[-1]), ""


def time_kmc(L: int, J: float, seconds: float) -> dict:
    """The same system through kmc's public API, timed the same way."""
    import numpy as np
    from bench_engine import sc_model  # scripts/ is on sys.path when run as a script

    import kmc
    from kmc.engine.simulation import Simulation

    model = sc_model(L, 0.0, J)               # E_KRA = 0: Metropolis rates, 1e13 Hz = NU_HZ
    n_ions = model.network.n_sites // 2
    sim = Simulation(model, T_K, n_ions=n_ions, seed=1)
    sim.run(20_000)                                  # warm-up
    t = time.perf_counter()
    probe = sim.run(200_000) / (time.perf_counter() - t)
    n = int(probe * seconds)
    t = time.perf_counter()
    sim.run(n)
    dt = time.perf_counter() - t
    assert np.count_nonzero(sim.occupancy == 1) == n_ions
    return {"version": kmc.__version__, "sites": model.network.n_sites, "ions": n_ions,
            "hops": n, "seconds": dt}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 16],
                    help="edge L of the simple cubic L^3 supercell (default: 10 16)")
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="minimum timed wall-clock seconds per code and system (default: 5)")
    ap.add_argument("--venv-dir", default=str(Path(tempfile.gettempdir()) / "kmc-peersvenv"),
                    help="throwaway directory for the peers' environments (recreated; default "
                         "in the system's temporary directory)")
    args = ap.parse_args()

    root = Path(args.venv_dir)
    if root.exists():
        if not (root / MARKER).exists():
            print(f"bench_peers: {root} exists and was not made by this script; choose another "
                  f"--venv-dir.", file=sys.stderr)
            return 2
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).write_text("throwaway environments of scripts/bench_peers.py\n")

    print(f"# kmc vs peers  {time.strftime('%Y-%m-%d')}  {cpu_name()}  "
          f"{os.cpu_count()} cores  python {platform.python_version()}", flush=True)
    peers = {}
    for name, package, driver in (("lattice_mc", "lattice_mc", LATTICE_MC_DRIVER),
                                  ("kmcpy", "kmcpy", KMCPY_DRIVER)):
        print(f"# installing {package} into {root / name} ...", flush=True)
        python, why = make_venv(root, name, package)
        peers[name] = (python, driver, why)

    rows = []
    notes = []
    for L in args.sizes:
        for J in (0.0, J_EV):
            system = "no interaction" if not J else f"nn J={J:g} eV"
            lattice = f"sc {L}^3, {system}"
            ref = time_kmc(L, J, args.seconds)
            rows.append(("kmc", ref, lattice, ref))
            for name, (python, driver, why) in peers.items():
                if python is None:
                    notes.append(f"{name}: not runnable here: {why}")
                    continue
                if name == "kmcpy" and J:
                    continue  # no pair-energy model in kmcpy's barrier models (see docstring)
                drv_args = [L, J, args.seconds] if name == "lattice_mc" else [L, args.seconds]
                res, why = run_driver(python, driver, drv_args)
                if res is None:
                    notes.append(f"{name}: not runnable here: {why}")
                    peers[name] = (None, driver, why)
                    continue
                rows.append((name, res, lattice, ref))
            print(f"# done: {lattice}", flush=True)

    head = (f"| {'code':10s} | {'version':7s} | {'lattice':28s} | {'sites':>5s} | {'ions':>5s} | "
            f"{'hops':>9s} | {'seconds':>7s} | {'hops/s':>9s} | {'kmc / code':>10s} |")
    print(head)
    print("|" + "|".join("-" * (len(c) + 0) for c in head.split("|")[1:-1]) + "|")
    for name, r, lattice, ref in rows:
        rate = r["hops"] / r["seconds"]
        ratio = (ref["hops"] / ref["seconds"]) / rate
        print(f"| {name:10s} | {r['version']:7s} | {lattice:28s} | {r['sites']:5d} | "
              f"{r['ions']:5d} | {r['hops']:9d} | {r['seconds']:7.2f} | {rate:9.3g} | "
              f"{ratio:10.3g} |")
    for note in dict.fromkeys(notes):
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
