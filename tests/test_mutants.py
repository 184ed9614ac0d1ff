"""scripts/mutants.py works: cheap mutants are killed (exit 0), a harmless one survives (exit 1),
a stale one is a setup error (exit 2), and the checkout is never modified. The full run (every
mutant, about 2 minutes) is documented in CONTRIBUTING.md."""
import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "mutants.py"


def load_script():
    spec = importlib.util.spec_from_file_location("kmc_mutants_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module      # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def source_digest() -> str:
    h = hashlib.sha256()
    for p in sorted((REPO / "src" / "kmc").rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()


def test_cheap_mutants_are_killed_and_the_checkout_is_untouched():
    before = source_digest()
    p = subprocess.run([sys.executable, str(SCRIPT), "--no-baseline", "kB_value", "rate_no_nu",
                        "D_star_no_2"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "3 of 3 mutants killed" in p.stdout
    assert source_digest() == before


def test_a_mutant_no_test_can_see_survives_and_a_stale_one_is_refused(capsys):
    mutants = load_script()
    harmless = mutants.Mutant("comment_only", "constants.py", "#: elementary charge, C",
                              "#: the elementary charge, C",
                              ("tests/test_formulas_exact.py::test_constants_are_codata",),
                              "a comment changed")
    outcome = mutants.run_mutant(harmless, timeout=300)
    assert outcome.status == "survived", outcome
    stale = mutants.Mutant("stale", "constants.py", "no such text", "x", (), "")
    assert mutants.check_texts([stale]) and not mutants.check_texts(mutants.MUTANTS)
    mutants.MUTANTS.extend([harmless, stale])
    try:
        assert mutants.main(["--no-baseline", "comment_only"]) == 1
        assert mutants.main(["--no-baseline", "stale"]) == 2
    finally:
        del mutants.MUTANTS[-2:]
    assert "survived" in capsys.readouterr().out
