"""The decode benchmark's own code (not the kernels): byte counts, the float64 result of a GQA case, and
one CLI run (`decode --quick --device cpu`) with its JSON and plots. Under TRITON_INTERPRET=1 our kernels
run in the interpreter on the smallest case (split-K forced, an error check); without it they are
reported unavailable."""

import pytest
import torch
import triton

import reference
from benchmarks.decode.cases import DecodeCase, decode_cases, float64_expected, make_inputs, smallest_cases
from benchmarks.decode.providers import INTERPRETER_SPLITS
from support.benchmark_runs import run_quick_on_cpu

CPU = torch.device("cpu")
PROVIDERS = {"ours", "ours-no-split", "sdpa-default", "sdpa-flash", "sdpa-efficient", "sdpa-cudnn", "sdpa-math",
             "reference"}
OURS = {"ours": INTERPRETER_SPLITS, "ours-no-split": 1}  # the splits each of our providers runs with on a CPU


def test_bytes_moved_count_the_cache_once_per_key_value_head():
    case = DecodeCase(batch=2, heads_q=8, heads_kv=2, n_queries=3, context=100, head_dim=64)
    q_and_out = 2 * (2 * 8 * 3 * 64)
    k_and_v = 2 * (2 * 2 * 100 * 64)
    assert case.bytes_moved(torch.bfloat16) == (q_and_out + k_and_v) * 2
    assert case.bytes_moved(torch.float32) == (q_and_out + k_and_v) * 4


def test_float64_expected_groups_query_heads_without_repeating_the_cache():
    inputs = make_inputs(DecodeCase(2, 6, 2, 3, 40, 16), torch.float32, CPU, seed=1)
    exact = reference.scaled_dot_product_attention(
        inputs.q.double(), inputs.k.double(), inputs.v.double(), enable_gqa=True)
    torch.testing.assert_close(float64_expected(inputs), exact, rtol=1e-12, atol=1e-12)


def test_cpu_cases_cover_gqa_and_several_queries():
    cases = decode_cases(CPU, quick=True)
    assert {(c.heads_q, c.heads_kv) for c in cases} == {(8, 8), (8, 2)}
    assert {c.n_queries for c in cases} == {1, 4}
    assert smallest_cases(cases) == [DecodeCase(1, 8, 2, 1, 256, 64)]


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """(exit code, JSON, screen output, out dir) of one quick CPU run."""
    out = tmp_path_factory.mktemp("decode-out")
    return (*run_quick_on_cpu("decode", out), out)


def test_cli_has_a_row_per_case_and_provider(cpu_run):
    exit_code, results, _, _ = cpu_run
    assert exit_code == 0 and results["benchmark"] == "decode"
    assert results["settings"]["dtype"] == "fp32" and "GB/s" in results["settings"]["measured"]
    rows = results["rows"]
    expected = {(c.batch, c.heads_q, c.heads_kv, c.n_queries, c.context, c.head_dim, p)
                for c in decode_cases(CPU, quick=True) for p in PROVIDERS}
    keys = ("batch", "heads_q", "heads_kv", "n_queries", "context", "head_dim", "provider")
    assert {tuple(r[key] for key in keys) for r in rows} == expected
    assert len(rows) == len(expected)


def test_cli_gbps_is_bytes_over_the_median_time(cpu_run):
    _, results, _, _ = cpu_run
    copy_gbps = results["ceilings"]["copy_gbps"]
    # B1 Hq8/Hkv2 Nq1 ctx256 D64, fp32: q and out 8 x 64 each, K and V 2 x 256 x 64 each, 4 bytes apiece.
    hand_counted = (2 * 8 * 64 + 2 * 2 * 256 * 64) * 4
    small = [r for r in results["rows"]
             if r["available"] and (r["heads_kv"], r["context"], r["n_queries"]) == (2, 256, 1)]
    assert small
    for row in small:
        assert row["gbps"] == pytest.approx(hand_counted / (row["median_ms"] * 1e-3) / 1e9)
    for row in (r for r in results["rows"] if r["available"]):
        assert row["p20_ms"] <= row["median_ms"] <= row["p80_ms"]
        case = DecodeCase(*(row[key] for key in ("batch", "heads_q", "heads_kv", "n_queries", "context", "head_dim")))
        assert row["gbps"] == pytest.approx(case.bytes_moved(torch.float32) / (row["median_ms"] * 1e-3) / 1e9)
        assert row["copy_fraction"] == pytest.approx(row["gbps"] / copy_gbps)
        assert 0 <= row["max_abs_error"] < 1e-5  # float32 against float64
        if row["provider"] == "sdpa-default":
            assert row["speedup_vs_sdpa_default"] == 1.0


def test_cli_runs_ours_in_the_interpreter_on_the_smallest_case_only(cpu_run):
    _, results, screen, _ = cpu_run
    smallest = smallest_cases(decode_cases(CPU, quick=True))[0]
    for row in (r for r in results["rows"] if r["provider"] in OURS):
        is_smallest = (row["heads_kv"], row["context"], row["n_queries"]) == (
            smallest.heads_kv, smallest.context, smallest.n_queries)
        if triton.knobs.runtime.interpret and is_smallest:
            assert row["available"] and row["num_splits"] == OURS[row["provider"]]
        else:
            assert not row["available"] and row["median_ms"] is None
            assert "interpreter" in row["reason"] or "TRITON_INTERPRET=1" in row["reason"]
    assert "Unavailable providers" in screen


def test_cli_writes_one_png_per_batch_heads_and_queries(cpu_run):
    out = cpu_run[3]
    groups = {(c.batch, c.heads_q, c.heads_kv, c.n_queries) for c in decode_cases(CPU, quick=True)}
    pngs = sorted(out.glob("decode_*.png"))
    assert len(pngs) == len(groups)
    assert all(path.read_bytes()[:4] == b"\x89PNG" for path in pngs)
