#!/usr/bin/env python
"""Mutation check of the core formulas: does the test suite notice when a formula is wrong?

Each mutant is one exact text replacement in one source file of ``src/kmc`` (a named, deliberate
bug: a dropped factor of 2 in D* = slope / (2 d), an unsquared charge in Nernst-Einstein, ...).
For each mutant the script copies the package to a temporary directory, applies the replacement
there (the checkout is never modified), and runs the mutant's chosen fast tests with that copy
first on ``PYTHONPATH`` (so subprocesses such as the ``kmc`` CLI see it too). A mutant is
*killed* when a test fails, and *survives* when they all pass. Before the mutants, the same tests
run on an unmutated copy and must pass (otherwise a "kill" would mean nothing).

Usage (from anywhere; the repository is found from this file's location)::

    python scripts/mutants.py                 # every mutant; table; exit 1 if any survives
    python scripts/mutants.py D_star_no_2 ...  # only these
    python scripts/mutants.py --list           # names, files and the tests each one runs
    python scripts/mutants.py --markdown       # the table as Markdown (for CONTRIBUTING.md)

Exit status: 0 every mutant killed; 1 a mutant survived (or its tests could not run); 2 a setup problem (a mutation's text
is no longer in its file -- update the mutant --, the unmutated tests fail, or the copy is not
what Python imports). Needs only the standard library (and pytest, which runs the tests).

Engine formulas in Cython (``src/kmc/engine/_engine.pyx``) are not mutated here (that needs a
rebuild); the tests compare the engine's every rate with the numpy reference in
``RateModel.reference_rates`` after each hop (``Simulation.check_rates``), and that reference
is mutated below.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "kmc"

T_MSD = "tests/test_msd_estimator.py"
T_ENG = "tests/test_engine.py"
T_ARR = "tests/test_arrhenius.py"
T_EXACT = "tests/test_formulas_exact.py"
T_VAL = "tests/validation/test_exact_results.py"
SINGLE_ION = f"{T_MSD}::test_single_ion_D_is_a2_gamma_in_every_dimensionality"
FFT = f"{T_MSD}::test_fft_msd_equals_the_direct_average_over_all_origins"
CAGED = f"{T_MSD}::test_caged_chain_gives_the_exact_long_time_D_and_flags_a_short_run"
LATTICE_GAS = f"{T_VAL}::test_lattice_gas_jump_diffusivity_and_haven_ratio[0.5]"
CHECK_RATES = f"{T_ENG}::test_incremental_rates_equal_full_recompute"
CHECK_RATES_EXCL = f"{T_ENG}::test_incremental_rates_with_exclusions_blockers_and_site_disorder"
DETAILED_BALANCE = f"{T_ENG}::test_detailed_balance_of_forward_and_backward_rates"
ARR_EXACT = f"{T_ARR}::test_noiseless_recovery_is_exact"


@dataclass(frozen=True)
class Mutant:
    """One named bug: replace ``old`` (which must occur exactly once) by ``new`` in ``path``."""

    name: str
    path: str          # relative to src/kmc
    old: str
    new: str
    tests: tuple[str, ...]
    what: str


TRANSPORT = "analysis/transport.py"
MODEL = "engine/model.py"
ARRHENIUS = "analysis/arrhenius.py"

MUTANTS = [
    # ---------------------------------------------------------------- D* = slope / (2 d), per ion
    Mutant("D_star_no_2", TRANSPORT,
           'vals[f"{q}_cm2_s"] = slope * A2_TO_CM2 / (2.0 * dim)',
           'vals[f"{q}_cm2_s"] = slope * A2_TO_CM2 / dim',
           (SINGLE_ION,), "D = slope / d instead of slope / (2 d)"),
    Mutant("D_star_d_is_3", TRANSPORT,
           'vals[f"{q}_cm2_s"] = slope * A2_TO_CM2 / (2.0 * dim)',
           'vals[f"{q}_cm2_s"] = slope * A2_TO_CM2 / (2.0 * 3)',
           (SINGLE_ION,), "dimensionality ignored (always 3)"),
    Mutant("D_star_not_per_ion", TRANSPORT,
           "tracer[:, a] = acc[lags] / max(n, 1)",
           "tracer[:, a] = acc[lags]",
           (FFT,), "tracer MSD summed over ions, not averaged (N missing)"),
    Mutant("D_unc_not_per_ion", TRANSPORT,
           "d_unc = hop_len2 / (2.0 * dim * max(n, 1) * T_meas) * A2_TO_CM2",
           "d_unc = hop_len2 / (2.0 * dim * T_meas) * A2_TO_CM2",
           (f"{T_EXACT}::test_lattice_gas_correlation_factor_bounds",),
           "uncorrelated D (for f) without N in 2 d N t"),
    Mutant("D_block_not_per_ion", TRANSPORT,
           "scale = A2_TO_CM2 / (2.0 * n * t)",
           "scale = A2_TO_CM2 / (2.0 * t)",
           (f"{T_EXACT}::test_block_estimator_single_ion_and_lattice_gas",),
           "block (tutorial) estimator: 2 t instead of 2 d N t"),
    # ---------------------------------------------------------------- D_J and the Haven ratio
    Mutant("D_J_is_D_star", TRANSPORT,
           'curves = {"D_tracer": tr, "D_jump": co}',
           'curves = {"D_tracer": tr, "D_jump": tr}',
           (LATTICE_GAS,), "D_J from the tracer MSD"),
    Mutant("D_J_not_per_ion", TRANSPORT,
           "axis=1) / max(n, 1)\n    return tracer, collective",
           "axis=1)\n    return tracer, collective",
           (FFT,), "collective MSD not divided by N"),
    Mutant("haven_inverted", TRANSPORT,
           'h, h_err = jackknife_ratio(vals["D_tracer_cm2_s"], vals["D_jump_cm2_s"])',
           'h, h_err = jackknife_ratio(vals["D_jump_cm2_s"], vals["D_tracer_cm2_s"])',
           (LATTICE_GAS,), "H_R = D_J / D* instead of D* / D_J"),
    # ---------------------------------------------------------------- sigma = n q^2 D_J / (kB T)
    Mutant("sigma_q_not_squared", TRANSPORT,
           "ne = density * (charge_e * E_CHARGE_C) ** 2 / (KB_J_K * temperature_K)",
           "ne = density * (charge_e * E_CHARGE_C) / (KB_J_K * temperature_K)",
           (SINGLE_ION,), "Nernst-Einstein with q instead of q^2"),
    Mutant("sigma_no_T", TRANSPORT,
           "ne = density * (charge_e * E_CHARGE_C) ** 2 / (KB_J_K * temperature_K)",
           "ne = density * (charge_e * E_CHARGE_C) ** 2 / KB_J_K",
           (SINGLE_ION,), "Nernst-Einstein without 1/T"),
    Mutant("sigma_density_in_A3", TRANSPORT,
           "density = n / (volume_A3 * A3_TO_CM3)\n    ne =",
           "density = n / volume_A3\n    ne =",
           (SINGLE_ION,), "carrier density per Å^3 instead of per cm^3"),
    # ---------------------------------------------------------------- rate expression
    Mutant("Ea_full_dE", MODEL,
           "return np.maximum(np.maximum(kra + 0.5 * dE, dE), 0.0)",
           "return np.maximum(np.maximum(kra + dE, dE), 0.0)",
           (DETAILED_BALANCE,), "E_a = E_KRA + dE instead of E_KRA + dE/2"),
    Mutant("Ea_no_dE_floor", MODEL,
           "return np.maximum(np.maximum(kra + 0.5 * dE, dE), 0.0)",
           "return np.maximum(kra + 0.5 * dE, 0.0)",
           (f"{T_EXACT}::test_detailed_balance_where_the_barrier_is_clamped",),
           "E_a without the floor dE (uphill hop cheaper than its dE)"),
    Mutant("Ea_no_zero_floor", MODEL,
           "return np.maximum(np.maximum(kra + 0.5 * dE, dE), 0.0)",
           "return np.maximum(kra + 0.5 * dE, dE)",
           (f"{T_EXACT}::test_detailed_balance_where_the_barrier_is_clamped",),
           "E_a may be negative (rate above the attempt frequency)"),
    Mutant("rate_no_nu", MODEL,
           "rate = self.nu_class[hc] * np.exp(-beta * self.barriers(occ))",
           "rate = np.exp(-beta * self.barriers(occ))",
           (CHECK_RATES,), "reference rate without the attempt frequency"),
    Mutant("rate_exp_sign", MODEL,
           "rate = self.nu_class[hc] * np.exp(-beta * self.barriers(occ))",
           "rate = self.nu_class[hc] * np.exp(beta * self.barriers(occ))",
           (CHECK_RATES,), "reference rate exp(+Ea/kT)"),
    Mutant("static_rate_ignores_dE", MODEL,
           "rate0 = self.nu_class[hc] * np.exp(-beta * self.barrier(self.kra_class[hc], dE0))",
           "rate0 = self.nu_class[hc] * np.exp(-beta * self.kra_class[hc])",
           (f"{T_EXACT}::test_detailed_balance_where_the_barrier_is_clamped",),
           "engine's constant-rate table ignores site energies"),
    # ---------------------------------------------------------------- RateModel reference
    Mutant("ref_pair_self_term", MODEL,
           "h[dst] - h[src] - Jsd",
           "h[dst] - h[src]",
           (CHECK_RATES,), "destination field counts the hopping ion itself"),
    Mutant("ref_ignores_exclusions", MODEL,
           "            allowed &= (count[dst] - self._template_src_excluded()[t]) == 0\n",
           "",
           (CHECK_RATES_EXCL,), "hops into excluded sites allowed"),
    Mutant("energy_pairs_double_counted", MODEL,
           "0.5 * np.sum(self.fields(occ)[on])",
           "np.sum(self.fields(occ)[on])",
           (DETAILED_BALANCE,), "configurational energy counts each pair twice"),
    Mutant("blocker_field_sign", MODEL,
           "np.add.at(E, src, J * (occ[nbr] == BLOCKER))",
           "np.add.at(E, src, -J * (occ[nbr] == BLOCKER))",
           (f"{T_EXACT}::test_detailed_balance_next_to_a_blocker",),
           "ion-blocker interaction with the wrong sign"),
    # ---------------------------------------------------------------- Arrhenius slope
    Mutant("arrhenius_x_without_kB", ARRHENIUS,
           "x = 1.0 / (KB_EV_K * T)\n    z = np.log(y * T)",
           "x = 1.0 / T\n    z = np.log(y * T)",
           (ARR_EXACT,), "Ea = -slope of ln y vs 1/T (kB missing)"),
    Mutant("arrhenius_slope_sign", ARRHENIUS,
           "coef = -(w * dx) / Sxx",
           "coef = (w * dx) / Sxx",
           (ARR_EXACT,), "Ea = +slope"),
    Mutant("arrhenius_replicas_x", ARRHENIUS,
           "x = 1.0 / (KB_EV_K * T_arr)",
           "x = 1.0 / T_arr",
           (f"{T_ARR}::test_replica_bootstrap_is_reasonable",),
           "replica bootstrap of Ea: kB missing"),
    Mutant("kB_value", "constants.py",
           "KB_EV_K: float = 8.617333262e-5",
           "KB_EV_K: float = 8.617333262e-4",
           (f"{T_EXACT}::test_constants_are_codata",), "Boltzmann constant off by 10"),
    # ---------------------------------------------------------------- MSD window, local exponent
    Mutant("window_exponent_linear", TRANSPORT,
           "alpha = np.gradient(np.log(msd_mean), np.log(t))",
           "alpha = np.gradient(msd_mean, t)",
           (CAGED,), "local exponent d MSD / d t instead of d ln MSD / d ln t"),
    Mutant("window_exponent_tol", TRANSPORT,
           "EXPONENT_TOL = 0.1",
           "EXPONENT_TOL = 1.0",
           (f"{T_MSD}::test_uniform_motion_has_exponent_two_and_is_never_diffusive",),
           "any exponent within 1 of 1 is 'diffusive'"),
    Mutant("window_starts_at_first_lag", TRANSPORT,
           "return int(idx[0]), end, True",
           "return 0, end, True",
           (f"{T_MSD}::test_caged_chain_window_starts_after_the_cage",),
           "fit window starts at the first lag (short-time hops fitted)"),
    Mutant("reported_exponent_linear", TRANSPORT,
           "alpha = float(_ols_slope(np.log(t[sl]), np.log(mean[sl])[None, :])[0])",
           "alpha = float(_ols_slope(t[sl], mean[sl][None, :])[0])",
           (SINGLE_ION,), "reported exponent: slope of MSD vs t, not of logs"),
    # ---------------------------------------------------------------- campaign store integrity
    Mutant("store_key_not_rederived", "campaign/store.py",
           'if _key_of(r["config_json"]) != r["key"]:',
           "if False:",
           ("tests/test_faults.py::"
            "test_row_filed_under_another_key_with_a_valid_checksum_is_caught_by_its_key",),
           "store read trusts a row's key without deriving it from its config"),
    Mutant("fresh_round_reports_deciders", "runs/replicas.py",
           "        reps = st.fresh\n",
           "        reps = reps\n",
           ("tests/test_transport_analysis.py::"
            "test_fresh_final_round_reports_replicas_that_took_no_part_in_the_decision",),
           "fresh_final_round reports the replicas that decided the stop"),
    # ---------------------------------------------------------------- computed dopant terms (issue 17)
    Mutant("dopant_shells_flattened", "runs/system.py",
           "out += np.where(d > 1e-6, shell_energies(d, table), 0.0)",
           "out += np.where(d > 1e-6, np.mean([j for _, j in table]) * (d <= table[-1][0] + 1e-9), 0.0)",
           ("tests/test_parametrize.py::test_shipped_llzo_model_reproduces_its_training_energies",),
           "a dopant's computed terms applied as one mean shift instead of per distance"),
    Mutant("dopant_exclusion_not_blocked", "runs/system.py",
           "blocked |= _within(net, pos, radius) > 0",
           "blocked |= _within(net, pos, radius) > 99",
           ("tests/test_parametrize.py::test_sites_every_ion_leaves_next_to_a_dopant_are_blocked_by_it",),
           "the sites every ion relaxed away from next to a dopant stay open"),
    Mutant("dopant_stays_counted_as_left", "parametrize/pipeline.py",
           'e["ions_stayed"] += sum(1 for x in sites if x in kept)',
           'e["ions_stayed"] += 0',
           ("tests/test_parametrize.py::test_sites_every_ion_leaves_next_to_a_dopant_are_blocked_by_it",),
           "an ion that stayed next to a dopant is counted as one that left"),
    Mutant("ordering_twin_own_placement", "runs/ordering.py",
           "rep = ReplicaMeasurement(system, T, s, run, disorder_of=placed_by)",
           "rep = ReplicaMeasurement(system, T, s, run, disorder_of=None)",
           ("tests/test_ordering.py::test_computed_garnet_li7_freezes_at_low_t_and_doped_garnet_does_not",),
           "the ordering twin draws its own dopant placement (imposed order counted as chosen)"),
    Mutant("join_counts_shared_configurations_twice", "parametrize/pipeline.py",
           "if key in seen:  # the same arrangement is the same cached relaxation",
           "if False:  # the same arrangement is the same cached relaxation",
           ("tests/test_parametrize.py::test_runs_with_different_dopants_are_fitted_as_one_hamiltonian",),
           "a configuration two joined runs hold enters the fit twice"),
    Mutant("join_counts_shared_bands_twice", "parametrize/pipeline.py",
           'if b.get("band_file") not in have and b.get("ions_rearranged") != 0]',
           'if b.get("ions_rearranged") != 0]',
           ("tests/test_parametrize.py::test_runs_with_different_dopants_are_fitted_as_one_hamiltonian",),
           "an NEB band two joined runs hold counts twice in E_KRA"),
    Mutant("join_not_fitted", "parametrize/pipeline.py",
           "fit = fit_hamiltonian(C, X, np.array(list(all_E.values())), names, seed=settings.seed)",
           "pass",
           ("tests/test_parametrize.py::test_runs_with_different_dopants_are_fitted_as_one_hamiltonian",),
           "the joined runs' configurations are read but not fitted"),
    Mutant("relaxed_back_band_kept", "parametrize/pipeline.py",
           "if flat_band or _relaxes_back(problem, configs[k], res.band_file, settings.site_tolerance_A):",
           "if flat_band:",
           ("tests/test_parametrize.py::test_a_band_whose_ends_relax_into_one_arrangement_is_not_an_event_of_its_class",),
           "a band whose endpoints relax into one arrangement counts as an event of its class"),
    Mutant("joined_relaxed_back_band_pooled", "parametrize/pipeline.py",
           'if b.get("band_file") not in have and b.get("ions_rearranged") != 0]',
           'if b.get("band_file") not in have]',
           ("tests/test_parametrize.py::test_a_band_whose_ends_relax_into_one_arrangement_is_not_an_event_of_its_class",),
           "a joined run's band that relaxes back is pooled into E_KRA"),
    Mutant("non_moving_candidate_kept", "parametrize/pipeline.py",
           "candidates = {hop: [env for env in envs if moves(env)] for hop, envs in candidates.items()}",
           "candidates = {hop: list(envs) for hop, envs in candidates.items()}",
           ("tests/test_parametrize.py::test_a_candidate_whose_ion_already_sits_at_the_destination_is_passed_over",),
           "a candidate whose ion already sits at the destination stops the run"),
    Mutant("join_pooled_evidence_ignores_joined", "parametrize/pipeline.py",
           '+ [(j.label, [e["mapping"] for _, _, e in j.kept]) for j in joined])',
           "+ [])",
           ("tests/test_parametrize.py::test_joined_runs_judge_the_short_pairs_on_every_placement",),
           "the joined runs' placements are left out when exclusions are judged for a join"),
    Mutant("join_excluded_if_any_relaxed_away", "parametrize/pipeline.py",
           'if 0 < pooled[problem.orbit_name(o)]["placed"] == pooled[problem.orbit_name(o)]["relaxed_away"]}',
           'if 0 < pooled[problem.orbit_name(o)]["relaxed_away"]}',
           ("tests/test_parametrize.py::test_joined_runs_judge_the_short_pairs_on_every_placement",),
           "a pooled short orbit counts as excluded when any placed pair relaxed away"),
    Mutant("dopant_tests_not_drawn", "parametrize/pipeline.py",
           "if dist >= problem.exclusion_cutoff_A or tried[o] >= DOPANT_EXCLUSION_MIN_CONFIGS:",
           "if True:",
           ("tests/test_parametrize.py::test_a_short_dopant_orbit_no_round_tried_gets_tests",),
           "a short dopant orbit no round tried gets no tests"),
    Mutant("dopant_test_ion_not_forced", "parametrize/pipeline.py",
           "forced=(site,),", "forced=(),",
           ("tests/test_parametrize.py::test_a_short_dopant_orbit_no_round_tried_gets_tests",),
           "a dopant test places the dopant but no ion next to it"),
    Mutant("knockoff_band_moves_only_the_pusher", "parametrize/pipeline.py",
           "for a, x in zip(movers, path[1:]):", "for a, x in zip(movers[:1], path[1:]):",
           ("tests/test_parametrize.py::test_concerted_knockoff_events_get_their_own_bands_and_run",),
           "a knock-off band's final endpoint moves the pusher but leaves the pushed ion in place"),
    Mutant("knockoffs_not_run_from_the_model_file", "runs/sources.py",
           "if interstitialcy is None and src.framework is not None and src.framework.interstitialcy:",
           "if False:",
           ("tests/test_parametrize.py::test_concerted_knockoff_events_get_their_own_bands_and_run",),
           "a computed model's [network.interstitialcy] is ignored by runs"),
]


@dataclass
class Outcome:
    mutant: Mutant
    status: str       # killed | survived | error
    killer: str
    seconds: float


def copy_package(dest: Path) -> Path:
    """A copy of src/kmc (caches and C sources left out) with the compiled extensions: those
    built in place (editable install), else those of the installed kmc (``pip install .``
    leaves none in src)."""
    target = dest / "kmc"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.c"))
    for pyx in sorted((PACKAGE / "engine").glob("*.pyx")):
        if not list((target / "engine").glob(f"{pyx.stem}.*.so")) + \
                list((target / "engine").glob(f"{pyx.stem}.*.pyd")):
            spec = importlib.util.find_spec(f"kmc.engine.{pyx.stem}")
            if spec is None or not spec.origin:
                raise SystemExit(f"mutants.py: kmc.engine.{pyx.stem} is not built; install kmc "
                                 f"first (pip install -e .).")
            shutil.copy2(spec.origin, target / "engine")
    return target


def run_tests(pythonpath: Path, tests: tuple[str, ...], timeout: float
              ) -> tuple[int, str, float]:
    """pytest on ``tests`` with ``pythonpath`` first; (exit code, output, seconds)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(pythonpath)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
        PYTHONDONTWRITEBYTECODE="1")
    # no hypothesis shrinking (a kill needs one failing example, not the smallest)
    # in one process (-n 0): the project's pytest settings spread tests over cores, and the
    # first failing test id is read from this process's -rf summary
    cmd = [sys.executable, "-m", "pytest", "-n", "0", "-x", "-q", "-rf", "-p", "no:cacheprovider",
           "--hypothesis-profile", "mutants", *tests]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:g} s", time.perf_counter() - t0
    return p.returncode, p.stdout + p.stderr, time.perf_counter() - t0


def imported_from(pythonpath: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(pythonpath), PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([sys.executable, "-c", "import kmc; print(kmc.__file__)"], env=env,
                       capture_output=True, text=True, cwd=REPO)
    return p.stdout.strip()


def run_mutant(m: Mutant, timeout: float) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="kmc-mutant-") as tmp:
        root = copy_package(Path(tmp))
        f = root / m.path
        text = f.read_text(encoding="utf-8")
        f.write_text(text.replace(m.old, m.new), encoding="utf-8")
        code, out, secs = run_tests(Path(tmp), m.tests, timeout)
    if code == 1:
        failed = re.findall(r"^FAILED (\S+)", out, re.M)
        return Outcome(m, "killed", failed[0] if failed else "(a test failed)", secs)
    if code == 0:
        return Outcome(m, "survived", "", secs)
    return Outcome(m, "error", out.strip().splitlines()[-1] if out.strip() else f"exit {code}",
                   secs)


def check_texts(mutants: list[Mutant]) -> list[str]:
    """Problems: a mutation whose text is not in its file exactly once."""
    bad = []
    for m in mutants:
        n = (PACKAGE / m.path).read_text(encoding="utf-8").count(m.old)
        if n != 1:
            bad.append(f"{m.name}: the text to mutate occurs {n} times in src/kmc/{m.path} "
                       f"(expected once); update the mutant in scripts/mutants.py.")
    return bad


def table(outcomes: list[Outcome], markdown: bool) -> str:
    rows = [(o.mutant.name, o.mutant.what, o.status, o.killer or "-", f"{o.seconds:.0f}")
            for o in outcomes]
    head = ("mutant", "the bug", "result", "killed by", "s")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(f"`{c}`" if i in (0, 3) and c != "-" else c
                                    for i, c in enumerate(r)) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*r) for r in rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="mutants to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip running the tests on the unmutated copy first")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant")
    args = ap.parse_args(argv)
    by_name = {m.name: m for m in MUTANTS}
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        print(f"mutants.py: unknown mutant {unknown[0]!r}; see --list.", file=sys.stderr)
        return 2
    chosen = [by_name[n] for n in args.names] if args.names else MUTANTS
    if args.list:
        for m in chosen:
            print(f"{m.name}: src/kmc/{m.path}: {m.what}\n    tests: {' '.join(m.tests)}")
        return 0
    problems = check_texts(chosen)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
    with tempfile.TemporaryDirectory(prefix="kmc-mutant-") as tmp:
        copy_package(Path(tmp))
        where = imported_from(Path(tmp))
        if not where.startswith(tmp):
            print(f"mutants.py: `import kmc` loads {where}, not the temporary copy; "
                  f"is kmc installed in a way that overrides PYTHONPATH?", file=sys.stderr)
            return 2
        if not args.no_baseline:
            code, out, secs = run_tests(Path(tmp), tests, args.timeout)
            print(f"baseline (unmutated, {len(tests)} tests): exit {code}, {secs:.0f} s",
                  flush=True)
            if code != 0:
                print(out[-3000:], file=sys.stderr)
                print("mutants.py: the tests fail without any mutation; fix that first.",
                      file=sys.stderr)
                return 2
    outcomes = []
    for m in chosen:
        o = run_mutant(m, args.timeout)
        outcomes.append(o)
        print(f"{m.name}: {o.status} ({o.seconds:.0f} s) {o.killer}", flush=True)
    print()
    print(table(outcomes, args.markdown))
    survived = [o.mutant.name for o in outcomes if o.status != "killed"]
    print(f"\n{len(outcomes) - len(survived)} of {len(outcomes)} mutants killed"
          + (f"; not killed: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
