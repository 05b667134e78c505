"""The positional benchmark's own code (not the kernels): cases, byte counts, and one CLI run
(`positional --quick --device cpu`, without Triton's interpreter) with its JSON and plots."""
import math

import pytest
import torch

import kernels.shared.backends
from benchmarks.positional.cases import Op, PositionalCase, positional_cases, smallest_cases
from benchmarks.positional.precision import WINDOW_STARTS
from support.benchmark_runs import run_quick_on_cpu

CPU = torch.device("cpu")
PROVIDERS = {"encode": {"ours", "reference-table", "torch-eager"}, "embed": {"ours", "torch-eager"}}
BASELINES = {"encode": {"reference-table", "torch-eager"}, "embed": {"torch-eager"}}


def test_bytes_moved_are_one_read_and_one_write():
    assert PositionalCase(Op.ENCODE, 2, 3, 8).bytes_moved(torch.bfloat16) == 2 * (2 * 3 * 8 * 2)
    assert PositionalCase(Op.EMBED, 2, 3, 8, 100).bytes_moved(torch.float32) == 2 * (2 * 3 * 8 * 4) + 2 * 3 * 8


def test_smallest_case_of_each_op():
    cases = positional_cases(CPU, quick=False)
    smallest = {(c.op, c.batch, c.seq_len, c.d_model) for c in smallest_cases(cases)}
    assert smallest == {(Op.ENCODE, 2, 128, 64), (Op.EMBED, 2, 128, 64)}


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """(exit code, JSON, screen output, out dir) of one quick CPU run without the interpreter."""
    out = tmp_path_factory.mktemp("positional-out")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TRITON_INTERPRET", raising=False)
        patch.setattr(kernels.shared.backends, "INTERPRETING", False)
        return (*run_quick_on_cpu("positional", out), out)


def test_cli_has_a_row_per_case_and_provider(cpu_run):
    exit_code, results, _, _ = cpu_run
    assert exit_code == 0 and results["benchmark"] == "positional"
    assert results["settings"]["dtype"] == "fp32" and "GB/s" in results["settings"]["measured"]
    rows = results["rows"]
    expected = {(c.op.value, c.batch, c.seq_len, c.d_model, p)
                for c in positional_cases(CPU, quick=True) for p in PROVIDERS[c.op.value]}
    assert {(r["op"], r["batch"], r["seq_len"], r["d_model"], r["provider"]) for r in rows} == expected
    assert len(rows) == len(expected)


def test_cli_rates_and_errors_of_the_rows_that_ran(cpu_run):
    _, results, _, _ = cpu_run
    copy_gbps = results["ceilings"]["copy_gbps"]
    for row in (r for r in results["rows"] if r["available"]):
        assert row["p20_ms"] <= row["median_ms"] <= row["p80_ms"]
        case = PositionalCase(Op(row["op"]), row["batch"], row["seq_len"], row["d_model"], row["vocab_size"])
        assert row["gbps"] == pytest.approx(case.bytes_moved(torch.float32) / (row["median_ms"] * 1e-3) / 1e9)
        assert row["copy_fraction"] == pytest.approx(row["gbps"] / copy_gbps)
        assert 0 <= row["max_abs_error"] < 1e-4  # float32 against float64 at positions below 256
        assert set(row["speedups"]) == BASELINES[row["op"]]
        if row["provider"] in row["speedups"]:
            assert row["speedups"][row["provider"]] == 1.0


def test_cli_reports_ours_unavailable_with_the_reason(cpu_run):
    _, results, screen, _ = cpu_run
    ours = [r for r in results["rows"] if r["provider"] == "ours"]
    assert ours and not any(r["available"] for r in ours)
    assert all("TRITON_INTERPRET=1" in r["reason"] and r["median_ms"] is None for r in ours)
    assert "Unavailable providers" in screen


def test_cli_measures_the_table_error_at_large_positions(cpu_run):
    windows = cpu_run[1]["precision"]["windows"]
    assert [w["first_position"] for w in windows] == list(WINDOW_STARTS)
    assert all(w["ours"] is None for w in windows)  # no interpreter in this run
    errors = [w["float32_table"] for w in windows]
    assert all(math.isfinite(e) for e in errors) and errors[-1] > 100 * errors[0]  # grows with the position


def test_cli_writes_one_png_per_op(cpu_run):
    out = cpu_run[3]
    for op in Op:
        assert (out / f"positional_{op.value}.png").read_bytes()[:4] == b"\x89PNG"
