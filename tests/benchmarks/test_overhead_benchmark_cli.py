"""The overhead benchmark's own code: one quick run of `python -m benchmarks overhead` in a child
process without TRITON_INTERPRET (the Triton path's host time is measured on the kernels a GPU would
launch, see benchmarks/overhead/host_only.py), and the same command in this interpreter session, which
must skip the Triton path and say why. Timings are checked for shape and consistency, never for speed."""
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.overhead.cases import TORCH_VARIANTS, triton_path_cases
from benchmarks.overhead.triton_path import LEVELS, PARTS
from support.benchmark_runs import run_quick_on_cpu

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_measures_every_path_and_level(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-m", "benchmarks", "overhead", "--quick", "--out", str(tmp_path)],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    rows = json.loads((tmp_path / "overhead.json").read_text())["rows"]
    unavailable = [(row["path"], row["provider"], row["reason"]) for row in rows if not row["available"]]
    assert not unavailable

    torch_rows = [row for row in rows if row["path"] == "torch path"]
    assert {row["variant"] for row in torch_rows} == set(TORCH_VARIANTS)
    for row in torch_rows:
        if row["provider"] == "ours":  # the median difference over paired rounds, and that over SDPA's median
            sdpa = next(other for other in torch_rows if other["variant"] == row["variant"]
                        and other["provider"] == "sdpa")
            assert row["added_p20_us"] <= row["added_us"] <= row["added_p80_us"]
            assert row["added_fraction"] == row["added_us"] / sdpa["median_us"]
    assert {row["provider"] for row in rows if row["path"] == "module"} == {"torch_module", "ours_module"}

    for case in triton_path_cases(quick=True):
        levels = {row["provider"]: row for row in rows
                  if (row["path"], row["n_keys"], row["variant"]) == (case.path, case.shape[4], case.variant)}
        assert set(levels) == {*LEVELS, *PARTS}
        for outer, inner in zip(LEVELS, LEVELS[1:]):
            assert levels[outer]["own_us"] == levels[outer]["median_us"] - levels[inner]["median_us"]
        assert all(row["median_us"] > 0 for row in levels.values())


def test_the_interpreter_session_skips_the_triton_path_and_says_why(tmp_path):
    code, results, screen = run_quick_on_cpu("overhead", tmp_path)
    assert code == 0
    assert "without TRITON_INTERPRET" in results["settings"]["triton_path_skipped"]
    assert "calling thread's CPU time" in results["settings"]["timing"]  # a busy machine's preemptions left out
    assert {row["path"] for row in results["rows"]} == {"torch path", "module"}
    assert "skipping the Triton path" in screen
