"""A failing CI run can be replayed: the output starts with the run seed, and KERNELS_TEST_SEED set to it
gives a test the same torch seed (so the same random inputs) again, run alone or among others."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = "tests/reference/test_reference.py::"
REPLAYED, OTHER = TESTS + "test_fully_masked_rows_are_zero", TESTS + "test_matches_the_softmax_formula_by_hand"


def torch_seeds(run_seed: str, *test_ids: str) -> list[str]:
    """The torch seed each test printed, in run order, in a pytest run of `test_ids` under `run_seed`."""
    env = {**os.environ, "KERNELS_TEST_SEED": run_seed}
    result = subprocess.run([sys.executable, "-m", "pytest", *test_ids, "-q", "-s", "-p", "no:cacheprovider"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"random inputs from run seed {run_seed} (replay with KERNELS_TEST_SEED={run_seed})" in result.stdout
    return re.findall(rf"torch seed (\d+) \(run seed {run_seed}: replay with KERNELS_TEST_SEED={run_seed}\)",
                      result.stdout)


def test_a_run_seed_replays_a_tests_seed_alone_or_among_others():
    (alone,) = torch_seeds("1234", REPLAYED)
    other, among_others = torch_seeds("1234", OTHER, REPLAYED)
    assert alone == among_others != other
