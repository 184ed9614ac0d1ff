"""`kmc validate`: the one-command proof that an install reproduces exact results.

The quick suite must pass (exit 0, full table) and finish within its time budget, and it must be
able to fail: a sabotaged rate model, a wrong exact value and a standard error too large to mean
anything each make a check (and the command) fail. The correlation factors are compared with the
exact value of the simulated periodic box (:func:`kmc.validate.single_vacancy_f_exact`), with the
infinite-lattice value reported beside it.
"""
import json
import math
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from kmc import validate
from kmc.cli.main import main
from kmc.engine.model import RateModel

REFERENCE = Path(__file__).parent / "data" / "correlation_factors.toml"  # copy of the project reference set


@pytest.fixture(scope="module")
def quick_run():
    """`kmc validate --quick --json` once for the module (about 30 s on this VM)."""
    import contextlib
    import io

    buf = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        code = main(["validate", "--quick", "--json"])
    return code, json.loads(buf.getvalue()), time.perf_counter() - t0


def test_quick_validate_passes_with_every_check_sharp(quick_run):
    code, data, wall = quick_run
    assert code == 0, [c for c in data["checks"] if not c["passed"]]
    assert data["passed"] and data["mode"] == "quick"
    names = {c["name"] for c in data["checks"]}
    for needed in ("f square", "f honeycomb", "f sc", "f bcc", "f fcc", "f ring N=16",
                   "D one ion sc", "mean wait", "wait KS", "D_J gas c=0.5", "occupation B",
                   "Arrhenius Ea"):
        assert needed in names
    for c in data["checks"]:
        if c["p_value"] is None:
            assert abs(c["deviation_se"]) < validate.SE_TOLERANCE
            assert 0 < c["se"] <= c["max_se"], c          # the comparison is meaningful
            assert c["max_se"] <= 0.15 * abs(c["exact"]) or c["name"] == "Arrhenius Ea"
    f_checks = [c for c in data["checks"] if c["infinite"] is not None]
    assert {c["name"] for c in f_checks} == {f"f {lat}" for lat in
                                             ("square", "triangular", "honeycomb", "sc", "bcc", "fcc")}
    for c in f_checks:
        lat = c["name"].split()[1]
        assert c["infinite"] == validate.EXACT_CORRELATION_FACTORS[lat]
        # the target is the exact f of the simulated box: one vacancy in N >= 1152 sites lies
        # above the infinite lattice by an O(1/N) excess (+0.07..+0.23 % here, docs/validation.md)
        assert c["exact"] == validate.single_vacancy_f_exact(
            validate.vacancy_network(lat, validate.VACANCY_SUPERCELL[lat]))
        assert 0 < c["exact"] - c["infinite"] < 0.005 * c["infinite"]
    # wall time is reported, not asserted (speed is benchmarked, not tested: it depends on load)
    print(f"kmc validate --quick: {wall:.0f} s wall")


def test_table_output(capsys):
    code = main(["validate", "--quick", "--only", "arrhenius,ring"])
    out = capsys.readouterr().out
    assert code == 0
    assert "model" in out and "exact" in out and "dev (SE)" in out and "infinite lattice" in out
    assert "Arrhenius Ea" in out and "f ring N=16" in out
    assert "2 of 2 checks passed" in out


def test_sabotaged_rate_model_fails(monkeypatch, capsys):
    """Attempt frequencies 25 % too high in the engine's model: D and the waiting times are off
    while the exact values are not, so `kmc validate` must exit non-zero."""
    original = RateModel.__post_init__

    def sabotaged(self):
        original(self)
        self.nu_class = self.nu_class * 1.25
    monkeypatch.setattr(RateModel, "__post_init__", sabotaged)
    code = main(["validate", "--quick", "--only", "one-ion"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out and "FAILED: D one ion sc, mean wait" in out


@pytest.mark.parametrize("shift_se", [5.0, -5.0])
def test_box_value_shifted_by_five_se_fails(quick_run, monkeypatch, shift_se):
    """The f check compares with the box value: moving that value by 5 SE (1 % for sc 12^3;
    the box's own excess over the infinite lattice is 0.08 %) makes the same seeded run fail."""
    ref = next(c for c in quick_run[1]["checks"] if c["name"] == "f sc")
    true_box = validate.single_vacancy_f_exact
    monkeypatch.setattr(validate, "single_vacancy_f_exact",
                        lambda net: true_box(net) + shift_se * ref["se"])
    check = validate.check_correlation_factor("sc", 24, 100, 0.015)   # the quick plan's f sc
    assert (check.model, check.se) == (ref["model"], ref["se"])       # the same seeded run
    assert check.sharp and not check.passed
    assert check.deviation_se == pytest.approx(ref["deviation_se"] - shift_se, abs=1e-9)
    assert "FAIL" in validate.format_row(check)


def test_blunt_and_distribution_checks():
    blunt = validate.Check("x", "", model=1.0, se=0.5, exact=1.0, max_se=0.1)
    assert not blunt.passed and not blunt.sharp          # right answer, useless error bar
    ok = validate.Check("x", "", model=1.02, se=0.01, exact=1.0, max_se=0.1)
    assert ok.passed and math.isclose(ok.deviation_se, 2.0)
    far = validate.Check("x", "", model=1.05, se=0.01, exact=1.0, max_se=0.1)
    assert not far.passed and far.sharp
    assert not validate.Check("ks", "", 0.1, float("nan"), 0.0, float("nan"), p_value=1e-5).passed
    assert validate.Check("ks", "", 0.01, float("nan"), 0.0, float("nan"), p_value=0.3).passed
    assert "BLUNT" in validate.format_row(blunt) and "FAIL" in validate.format_row(far)
    f = validate.Check("f sc", "", model=0.6537, se=0.001, exact=0.653654, max_se=0.01,
                       infinite=0.653108838)
    assert validate.format_row(f).split()[-1] == "0.653109"   # the infinite lattice, beside
    assert validate.format_row(ok).split()[-1] == "ok"


def test_unknown_group_is_a_one_sentence_error(capsys):
    assert main(["validate", "--only", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown check group 'bogus'" in err and "Traceback" not in err


def test_exact_values_match_the_shared_reference():
    ref = tomllib.loads(REFERENCE.read_text())["exact"]
    names = {"sc": "simple_cubic"}
    for lat, f in validate.EXACT_CORRELATION_FACTORS.items():
        assert f == pytest.approx(ref[names.get(lat, lat)], abs=2e-9)


def test_ring_formula_limits():
    # a single hop moves one ion by one site: f = 1 exactly
    assert validate.ring_f_exact(16, 1) == pytest.approx(1.0)
    # long windows: f -> 1/(N - 1)
    assert validate.ring_f_exact(200, 4 * 199 ** 2) * 199 == pytest.approx(1.0, rel=0.1)


def test_two_class_occupation_limits():
    # dE = 0: half of the ions on B on average
    assert validate.exact_two_class_occupation(38, 64, 0.0, 600.0) * 64 == pytest.approx(19.0)
    # very large dE: B empty while A has room
    assert validate.exact_two_class_occupation(38, 64, 5.0, 600.0) < 1e-12
    # Boltzmann limit of a dilute gas: n_B / n_A = exp(-dE/kT)
    from kmc.constants import KB_EV_K

    frac_b = validate.exact_two_class_occupation(1, 64, 0.05, 600.0)
    assert frac_b * 64 == pytest.approx(np.exp(-0.05 / (KB_EV_K * 600)) /
                                        (1 + np.exp(-0.05 / (KB_EV_K * 600))))
