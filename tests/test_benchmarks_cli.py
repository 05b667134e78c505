"""Tests of the benchmark code itself (not of the kernels): FLOP counts, the CLI's JSON and plots, and
that providers which cannot run are reported with their reason instead of dropped.

Fast on the CPU: the CLI runs once (`attention --quick --device cpu`) without Triton's interpreter.
"""

import contextlib
import io
import json
import math
import warnings

import pytest
import torch

import kernels
import reference
from benchmarks import accuracy
from benchmarks.__main__ import main
from benchmarks.attention_inputs import AttentionCase, MaskKind, make_inputs
from benchmarks.attention_providers import Provider, attention_providers
from benchmarks.attention_suite import attention_cases, measure_cases
from benchmarks.ceilings import Ceilings
from benchmarks.flops import attention_forward_flops, tflops_per_second
from benchmarks.summary import summary_lines
from benchmarks.timing import Stopwatch, input_sets_needed, rotating

CPU = torch.device("cpu")
PROVIDERS = {"ours", "sdpa-default", "sdpa-flash", "sdpa-efficient", "sdpa-cudnn", "sdpa-math", "reference"}
TIMED_FIELDS = ("median_ms", "p20_ms", "p80_ms", "tflops", "ceiling_fraction", "speedup_vs_sdpa_default")
MEASURED_FIELDS = (*TIMED_FIELDS, "max_abs_error", "peak_memory_bytes")
UNIT_CEILINGS = Ceilings(matmul_tflops=1.0, matmul="unit matmul", copy_gbps=1.0, copy="unit copy")


def test_forward_flops_count_two_matmuls_per_head():
    assert attention_forward_flops(2, 3, 5, 5, 7, causal=False) == 4 * 2 * 3 * 5 * 5 * 7


def test_causal_halves_the_flops_only_when_queries_and_keys_align():
    full = attention_forward_flops(2, 3, 64, 64, 16, causal=False)
    assert attention_forward_flops(2, 3, 64, 64, 16, causal=True) == full // 2
    assert attention_forward_flops(2, 3, 1, 64, 16, causal=True) == 4 * 2 * 3 * 1 * 64 * 16
    assert attention_forward_flops(2, 3, 32, 64, 16, causal=False) == 4 * 2 * 3 * 32 * 64 * 16


def test_tflops_per_second_converts_milliseconds():
    assert tflops_per_second(3 * 10**12, 1500.0) == pytest.approx(2.0)


def test_key_padding_mask_keeps_a_random_prefix_of_at_least_half_the_keys():
    case = AttentionCase(batch=8, heads=2, seq_len=32, head_dim=16, mask=MaskKind.KEY_PADDING)
    inputs = make_inputs(case, torch.float32, CPU, seed=0)
    assert inputs.attn_mask.dtype == torch.bool and inputs.attn_mask.shape == (8, 1, 1, 32)
    lengths = inputs.attn_mask.sum(-1).flatten()
    assert lengths.min() >= 16 and lengths.max() <= 32
    assert torch.equal(inputs.attn_mask, torch.arange(32) < lengths.view(8, 1, 1, 1))
    assert inputs.q.std() > 0.5  # random normal, never zeros


@pytest.mark.parametrize("mask", list(MaskKind))
def test_chunked_float64_reference_equals_the_whole_computation(monkeypatch, mask):
    inputs = make_inputs(AttentionCase(3, 4, 16, 8, mask), torch.float32, CPU, seed=1)
    monkeypatch.setattr(accuracy, "_SCORE_ELEMENTS_PER_CHUNK", 2 * 16 * 16)  # two heads per chunk
    chunked = accuracy.float64_reference(inputs)
    whole = reference.scaled_dot_product_attention(
        inputs.q.double(), inputs.k.double(), inputs.v.double(), inputs.attn_mask, is_causal=inputs.is_causal
    )
    assert chunked.dtype == torch.float64
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)


def test_rotation_cycles_through_the_input_sets():
    seen = []
    call = rotating(seen.append, ["a", "b", "c"])
    for _ in range(4):
        call()
    assert seen == ["a", "b", "c", "a"]
    assert input_sets_needed(1, CPU) == 1  # CPU timing does not rotate


def _run_suite(providers: list[Provider]):
    case = AttentionCase(1, 2, 16, 8, MaskKind.CAUSAL)
    (rows,) = measure_cases([case], providers, torch.float32, Stopwatch(CPU, quick=True), UNIT_CEILINGS)
    return rows


def test_a_provider_that_raises_is_reported_with_its_reason_and_warnings():
    def reject(inputs):
        warnings.warn("this kernel needs head_dim % 128 == 0", stacklevel=2)
        raise RuntimeError("No available kernel.\n(C++ frames follow)")

    sdpa_default = attention_providers(CPU, ["sdpa-default"])
    rows = _run_suite([Provider("rejecting", "rejects every input", reject), *sdpa_default])
    assert [row.provider for row in rows] == ["rejecting", "sdpa-default"]
    rejected, ran = rows
    assert not rejected.available
    assert rejected.reason == "RuntimeError: No available kernel.; this kernel needs head_dim % 128 == 0"
    assert all(rejected.as_record()[field] is None for field in MEASURED_FIELDS)
    assert ran.available and ran.timing.median_ms > 0


def test_a_silent_fallback_to_another_kernels_backend_is_reported():
    def torch_instead(x):
        return kernels.attention(x.q, x.k, x.v, is_causal=x.is_causal, backend="torch")

    (row,) = _run_suite([Provider("ours", "claims triton", torch_instead, kernels_backend="triton")])
    assert not row.available
    assert "['torch'] ran" in row.reason


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """One `attention --quick --device cpu` run: (exit code, its JSON, its screen output, out dir)."""
    out = tmp_path_factory.mktemp("bench-out")
    screen = io.StringIO()
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(screen):
        env.delenv("TRITON_INTERPRET", raising=False)  # no interpreter kernels in this test file
        exit_code = main(["attention", "--quick", "--device", "cpu", "--out", str(out)])
    return exit_code, json.loads((out / "attention.json").read_text()), screen.getvalue(), out


def test_cli_run_succeeds_and_says_what_it_measured_where(cpu_run):
    exit_code, results, screen, _ = cpu_run
    assert exit_code == 0
    assert results["benchmark"] == "attention"
    environment = results["environment"]
    for key in ("card", "device", "date", "python", "torch", "triton", "git_commit"):
        assert key in environment
    assert environment["device"] == "cpu" and environment["card"].startswith("CPU")
    assert environment["card"] in screen
    settings = results["settings"]
    assert settings["dtype"] == "fp32" and settings["quick"] is True
    assert "FLOPs" in settings["measured"] and "Timer" in settings["timing"]
    assert set(settings["providers"]) == PROVIDERS


def test_cli_ceilings_are_finite_and_positive(cpu_run):
    ceilings = cpu_run[1]["ceilings"]
    for key in ("matmul_tflops", "copy_gbps"):
        assert math.isfinite(ceilings[key]) and ceilings[key] > 0
    assert "fp32" in ceilings["matmul"]


def test_cli_has_a_row_for_every_case_and_provider(cpu_run):
    rows = cpu_run[1]["rows"]
    cases = attention_cases(CPU, quick=True)
    pairs = {(r["batch"], r["heads"], r["seq_len"], r["head_dim"], r["mask"], r["provider"]) for r in rows}
    expected = {(c.batch, c.heads, c.seq_len, c.head_dim, c.mask.value, p) for c in cases for p in PROVIDERS}
    assert len(rows) == len(expected) and pairs == expected


def test_cli_rows_that_ran_have_finite_positive_numbers(cpu_run):
    ran = [r for r in cpu_run[1]["rows"] if r["available"]]
    assert {r["provider"] for r in ran} >= {"sdpa-default", "sdpa-math", "reference"}
    for row in ran:
        for field in TIMED_FIELDS:
            assert math.isfinite(row[field]) and row[field] > 0, (row["provider"], field)
        assert row["p20_ms"] <= row["median_ms"] <= row["p80_ms"]
        assert row["tflops"] == pytest.approx(row["flops"] / (row["median_ms"] * 1e-3) / 1e12)
        assert 0 <= row["max_abs_error"] < 1e-4  # fp32 against float64 on the same inputs
        assert row["peak_memory_bytes"] is None  # no allocator statistics on the CPU
        if row["provider"] == "sdpa-default":
            assert row["speedup_vs_sdpa_default"] == 1.0


def test_cli_counts_half_the_flops_for_causal_rows(cpu_run):
    flops = {(r["seq_len"], r["mask"]): r["flops"] for r in cpu_run[1]["rows"]}
    for (seq_len, mask), count in flops.items():
        if mask == "causal":
            assert count * 2 == flops[seq_len, "none"]


def test_cli_reports_unavailable_providers_with_their_reason(cpu_run):
    _, results, screen, _ = cpu_run
    unavailable = [r for r in results["rows"] if not r["available"]]
    ours = [r for r in results["rows"] if r["provider"] == "ours"]
    assert ours and all(r in unavailable for r in ours)  # CPU without the interpreter
    assert "TRITON_INTERPRET=1" in ours[0]["reason"]
    assert "Unavailable providers" in screen
    for row in unavailable:
        assert row["reason"]
        assert all(row[field] is None for field in MEASURED_FIELDS)
        assert row["label"] in screen


def test_cli_writes_one_png_per_head_dim_and_mask(cpu_run):
    out = cpu_run[3]
    for mask in MaskKind:
        assert (out / f"attention_d64_{mask.value}.png").read_bytes()[:4] == b"\x89PNG"


def test_summary_has_one_line_per_case(cpu_run):
    lines = summary_lines(cpu_run[1])
    assert len(lines) == len(attention_cases(CPU, quick=True))
    assert all(line[1] == "unavailable" for line in lines)  # ours, without the interpreter


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is missing")
def test_cli_refuses_cuda_without_a_cuda_device(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["attention", "--device", "cuda"])
    assert exit_info.value.code == 2
    assert "no CUDA device" in capsys.readouterr().err
