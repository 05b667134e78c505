"""Tests of the benchmark code itself (not of the kernels): FLOP counts, the CLI's JSON and plots, and
that providers which cannot run are reported with their reason instead of dropped.

Fast on the CPU: the CLI runs twice (`attention` and `backward`, `--quick --device cpu`) without Triton's
interpreter in this process; the forward checks ours in an interpreter child process.
"""

import math
import warnings

import pytest
import torch

import kernels
import reference
from benchmarks.__main__ import main
from benchmarks.attention import accuracy
from benchmarks.attention import providers as providers_module
from benchmarks.attention.calls import timed_call
from benchmarks.attention.cases import ATTENTION_CASES, AttentionCase, MaskKind, attention_cases, make_inputs
from benchmarks.attention.flops import attention_backward_flops, attention_forward_flops
from benchmarks.attention.measure import measure_cases
from benchmarks.attention.modes import Mode
from benchmarks.attention.providers import attention_providers
from benchmarks.attention.summary import summary_lines
from benchmarks.harness.ceilings import Ceilings
from benchmarks.harness.providers import Provider
from benchmarks.harness.rates import tflops_per_second
from benchmarks.harness import timing as timing_method
from benchmarks.harness.timing import Stopwatch, input_sets_needed, rotating
from support.benchmark_runs import run_quick_on_cpu

CPU = torch.device("cpu")
PROVIDERS = {"ours", "sdpa-default", "sdpa-flash", "sdpa-efficient", "sdpa-cudnn", "sdpa-math", "flex", "reference"}
# FlexAttention compiles for seconds per case on the CPU: these CLI runs report it unavailable instead
# (tests/benchmarks/test_benchmark_suite.py runs it).
FLEX_SKIPPED = "not in this test: FlexAttention runs in tests/benchmarks/test_benchmark_suite.py"
TIMED_FIELDS = ("median_ms", "p20_ms", "p80_ms", "tflops", "ceiling_fraction", "speedup_vs_sdpa_default")
MEASURED_FIELDS = (*TIMED_FIELDS, "max_abs_error", "peak_memory_bytes")
SMALLEST_CPU_LENGTH = min(case.seq_len for case in attention_cases(CPU, quick=True))
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


def float64_variants(inputs) -> dict:
    """The case's score-variant keywords, their tensors (slopes, sinks) in float64."""
    return {name: value.double() if torch.is_tensor(value) else value for name, value in inputs.variants.items()}


@pytest.mark.parametrize("mask", list(MaskKind))
def test_chunked_float64_reference_equals_the_whole_computation(monkeypatch, mask):
    inputs = make_inputs(AttentionCase(3, 4, 16, 8, mask), torch.float32, CPU, seed=1)
    monkeypatch.setattr(accuracy, "_SCORE_ELEMENTS_PER_CHUNK", 2 * 16 * 16)  # two heads per chunk
    chunked = accuracy.float64_reference(inputs)
    whole = reference.scaled_dot_product_attention(
        inputs.q.double(), inputs.k.double(), inputs.v.double(), inputs.attn_mask, is_causal=inputs.is_causal,
        **float64_variants(inputs)
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
    return quick_cpu_run("attention", tmp_path_factory.mktemp("bench-out"))


def quick_cpu_run(command: str, out) -> tuple:
    """(exit code, its JSON, its screen output, out dir) of `COMMAND --quick --device cpu`, FlexAttention
    reported unavailable and no interpreter kernels in this process (as on a newcomer's CPU)."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("TRITON_INTERPRET", raising=False)
        env.setattr(providers_module, "flex_unavailable_reason", lambda device: FLEX_SKIPPED)
        return (*run_quick_on_cpu(command, out), out)


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
    assert "FLOPs" in settings["measured"] and "threads, the ceilings alike" in settings["timing"]
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
    ran = [r for r in cpu_run[1]["rows"] if r["available"] and r["provider"] != "ours"]  # ours: checked, not timed
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
    ours = [r for r in results["rows"] if r["provider"] == "ours" and r["seq_len"] > SMALLEST_CPU_LENGTH]
    assert ours and all(r in unavailable and "smallest shape only" in r["reason"] for r in ours)
    assert "Unavailable providers" in screen
    for row in unavailable:
        assert row["reason"]
        assert all(row[field] is None for field in MEASURED_FIELDS)
        assert row["label"] in screen


def test_cli_writes_one_png_per_head_dim_and_mask(cpu_run):
    out = cpu_run[3]
    for mask in ATTENTION_CASES.masks:
        assert (out / f"attention_d64_{mask.value}.png").read_bytes()[:4] == b"\x89PNG"


def test_summary_has_one_line_per_case(cpu_run):
    lines = summary_lines(cpu_run[1])
    assert len(lines) == len(attention_cases(CPU, quick=True))
    assert {line[1] for line in lines} == {"not timed", "unavailable"}  # ours: checked on the smallest shape only


def test_cli_on_a_cpu_checks_ours_in_the_interpreter_on_the_smallest_shape_untimed(cpu_run):
    _, results, screen, _ = cpu_run
    ours = [r for r in results["rows"] if r["provider"] == "ours" and r["seq_len"] == SMALLEST_CPU_LENGTH]
    assert {r["mask"] for r in ours} == {mask.value for mask in ATTENTION_CASES.masks}
    for row in ours:
        assert row["available"] and "interpreter" in row["label"]
        assert 0 <= row["max_abs_error"] < 1e-4  # fp32 against float64 on the same inputs
        assert all(row[field] is None for field in (*TIMED_FIELDS, "samples", "peak_memory_bytes"))
    assert "correctness, not speed" in screen and ours[0]["label"] in screen


def test_cli_on_a_cpu_says_first_what_to_run_on_a_gpu(cpu_run):
    screen = cpu_run[2]
    header = screen[:screen.index("Measured ceilings")]
    assert "on a GPU: run `python -m benchmarks attention` on a machine with CUDA" in header


def test_cli_rows_and_ceilings_report_their_samples_and_whether_they_can_be_ranked(cpu_run):
    _, results, screen, _ = cpu_run
    timed = [r for r in results["rows"] if r["median_ms"] is not None]
    ceilings = [results["ceilings"]["matmul_timing"], results["ceilings"]["copy_timing"]]
    for record in timed + ceilings:
        assert record["samples"] >= timing_method.MIN_SAMPLES_TO_RANK
        spread = (record["p80_ms"] - record["p20_ms"]) / record["median_ms"]
        if "too_noisy_to_rank" in record:  # a row's record (a ceiling's is the Timing itself)
            assert record["too_noisy_to_rank"] == (spread > timing_method.RANKABLE_SPREAD)
    assert f"n={timed[0]['samples']}" in screen


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is missing")
def test_cli_refuses_cuda_without_a_cuda_device(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["attention", "--device", "cuda"])
    assert exit_info.value.code == 2
    assert "no CUDA device" in capsys.readouterr().err


# --- the backward command: `backward --quick --device cpu`, modes backward and fwd+bwd ---------------

GRADIENT_MODES = ("backward", "fwd+bwd")


@pytest.mark.parametrize("causal", [False, True])
def test_backward_flops_are_two_and_a_half_forwards_and_fwd_bwd_three_and_a_half(causal):
    forward = attention_forward_flops(2, 3, 64, 64, 16, causal)
    assert attention_backward_flops(2, 3, 64, 64, 16, causal) == 2.5 * forward
    case = AttentionCase(2, 3, 64, 16, MaskKind.CAUSAL if causal else MaskKind.NONE)
    assert Mode.FORWARD.flops(case) == forward
    assert Mode.BACKWARD.flops(case) == 2.5 * forward
    assert Mode.FORWARD_BACKWARD.flops(case) == 3.5 * forward


def test_causal_halves_the_backward_flops_only_when_queries_and_keys_align():
    full = attention_backward_flops(2, 3, 64, 64, 16, causal=False)
    assert full == 2.5 * 4 * 2 * 3 * 64 * 64 * 16
    assert attention_backward_flops(2, 3, 64, 64, 16, causal=True) == full // 2
    assert attention_backward_flops(2, 3, 32, 64, 16, causal=True) == 2.5 * 4 * 2 * 3 * 32 * 64 * 16


@pytest.mark.parametrize("mask", list(MaskKind))
def test_chunked_float64_gradients_equal_autograd_through_the_whole_reference(monkeypatch, mask):
    inputs = make_inputs(AttentionCase(3, 4, 16, 8, mask), torch.float32, CPU, seed=1, gradients=True)
    monkeypatch.setattr(accuracy, "_SCORE_ELEMENTS_PER_CHUNK", 2 * 16 * 16)  # two heads per chunk
    chunked = accuracy.float64_reference_gradients(inputs)
    leaves = [t.detach().double().requires_grad_() for t in inputs.leaves]
    out = reference.scaled_dot_product_attention(*leaves, inputs.attn_mask, is_causal=inputs.is_causal,
                                                 **float64_variants(inputs))
    whole = torch.autograd.grad(out, leaves, inputs.dout.double())
    for got, want in zip(chunked, whole, strict=True):
        assert got.dtype == torch.float64 and got.abs().max() > 0
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def _counting_sdpa() -> tuple[Provider, list[int]]:
    forwards = []

    def call(x):
        forwards.append(1)
        return torch.nn.functional.scaled_dot_product_attention(x.q, x.k, x.v, is_causal=x.is_causal)

    return Provider("counting", "counts its forwards", call), forwards


def test_the_timed_backward_repeats_the_gradient_without_the_forward():
    inputs = make_inputs(AttentionCase(1, 2, 16, 8, MaskKind.NONE), torch.float32, CPU, seed=0, gradients=True)
    provider, forwards = _counting_sdpa()
    backward = timed_call(Mode.BACKWARD, provider, inputs)
    assert len(forwards) == 1  # built before timing
    first, second = backward(), backward()  # retain_graph: the same graph runs twice
    assert len(forwards) == 1
    both = timed_call(Mode.FORWARD_BACKWARD, provider, inputs)()
    assert len(forwards) == 2
    for a, b, c in zip(first, second, both, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert not timed_call(Mode.FORWARD, provider, inputs)().requires_grad  # the forward builds no graph


class _NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("this backend has no backward for this input")


def test_a_provider_whose_backward_raises_is_reported_in_the_gradient_modes_only():
    def forward_only(x):
        return _NoBackward.apply(torch.nn.functional.scaled_dot_product_attention(x.q, x.k, x.v))

    case = AttentionCase(1, 2, 16, 8, MaskKind.NONE)
    providers = [Provider("forward-only", "no backward", forward_only), *attention_providers(CPU, ["sdpa-default"])]
    modes = (Mode.FORWARD, Mode.BACKWARD, Mode.FORWARD_BACKWARD)
    stopwatch = Stopwatch(CPU, quick=True)
    by_mode = {
        rows[0].case.mode: rows
        for rows in measure_cases([case], providers, torch.float32, stopwatch, UNIT_CEILINGS, modes=modes)
    }
    assert list(by_mode) == list(modes)
    assert by_mode[Mode.FORWARD][0].available and set(by_mode[Mode.FORWARD][0]["max_abs_errors"]) == {"out"}
    for mode in (Mode.BACKWARD, Mode.FORWARD_BACKWARD):
        broken, sdpa = by_mode[mode]
        assert broken.reason == "RuntimeError: this backend has no backward for this input"
        assert broken.as_record()["mode"] == mode.value
        assert sdpa.available and set(sdpa["max_abs_errors"]) == {"dq", "dk", "dv"}
        assert sdpa["speedup_vs_sdpa_default"] == 1.0


@pytest.fixture(scope="module")
def backward_run(tmp_path_factory):
    """One `backward --quick --device cpu` run: (exit code, its JSON, its screen output, out dir)."""
    return quick_cpu_run("backward", tmp_path_factory.mktemp("backward-out"))


def test_backward_cli_says_what_it_measured(backward_run):
    exit_code, results, screen, _ = backward_run
    assert exit_code == 0 and results["benchmark"] == "backward" and results["interrupted"] is False
    assert results["environment"]["card"] in screen
    settings = results["settings"]
    assert settings["modes"] == list(GRADIENT_MODES)
    assert "retain_graph=True" in settings["measured"] and "2.5x" in settings["measured"]
    assert set(settings["providers"]) == PROVIDERS
    assert all(math.isfinite(results["ceilings"][key]) for key in ("matmul_tflops", "copy_gbps"))


def test_backward_cli_has_a_row_for_every_case_mode_and_provider_with_its_flops(backward_run):
    rows = backward_run[1]["rows"]
    cases = attention_cases(CPU, quick=True, gradients=True)
    assert max(c.seq_len for c in cases) < max(c.seq_len for c in attention_cases(CPU, quick=True))
    keys = [(r["seq_len"], r["mask"], r["mode"], r["provider"]) for r in rows]
    expected = {(c.seq_len, c.mask.value, m, p) for c in cases for m in GRADIENT_MODES for p in PROVIDERS}
    assert len(keys) == len(expected) and set(keys) == expected
    for row in rows:
        forward = attention_forward_flops(row["batch"], row["heads"], row["seq_len"], row["seq_len"],
                                          row["head_dim"], row["causal"])
        assert row["flops"] == {"backward": 2.5, "fwd+bwd": 3.5}[row["mode"]] * forward


def test_backward_cli_rows_that_ran_have_gradient_errors_and_finite_numbers(backward_run):
    ran = [r for r in backward_run[1]["rows"] if r["available"]]
    assert {(r["provider"], r["mode"]) for r in ran} >= {
        (p, m) for p in ("sdpa-default", "sdpa-math", "reference") for m in GRADIENT_MODES
    }
    for row in ran:
        for field in TIMED_FIELDS:
            assert math.isfinite(row[field]) and row[field] > 0, (row["provider"], row["mode"], field)
        assert row["tflops"] == pytest.approx(row["flops"] / (row["median_ms"] * 1e-3) / 1e12)
        errors = row["max_abs_errors"]
        assert set(errors) == {"dq", "dk", "dv"}
        assert row["max_abs_error"] == max(errors.values()) and 0 < row["max_abs_error"] < 1e-4
        if row["provider"] == "sdpa-default":
            assert row["speedup_vs_sdpa_default"] == 1.0  # each mode against SDPA in the same mode


def test_backward_cli_reports_unavailable_providers_with_their_reason(backward_run):
    _, results, screen, _ = backward_run
    unavailable = [r for r in results["rows"] if not r["available"]]
    assert {r["provider"] for r in unavailable} >= {"ours", "sdpa-efficient", "sdpa-cudnn"}  # on a CPU
    assert all("TRITON_INTERPRET=1" in r["reason"] for r in unavailable if r["provider"] == "ours")
    assert "Unavailable providers" in screen
    for row in unavailable:
        assert row["reason"] and row["label"] in screen
        assert all(row[field] is None for field in (*MEASURED_FIELDS, "max_abs_errors"))


def test_backward_cli_writes_one_png_per_head_dim_mask_and_mode(backward_run):
    out = backward_run[3]
    pngs = sorted(path.name for path in out.glob("*.png"))
    expected = (f"backward_d64_{m.value}_{t}.png" for m in ATTENTION_CASES.masks for t in ("bwd", "fwd-bwd"))
    assert pngs == sorted(expected)
    assert all((out / name).read_bytes()[:4] == b"\x89PNG" for name in pngs)


def test_summary_has_one_line_per_case_and_mode(backward_run):
    lines = summary_lines(backward_run[1])
    assert len(lines) == 2 * len(attention_cases(CPU, quick=True, gradients=True))
    assert {line[0].rsplit(" ", 1)[1] for line in lines} == set(GRADIENT_MODES)
