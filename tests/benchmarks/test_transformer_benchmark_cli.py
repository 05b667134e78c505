"""The transformer benchmark's own code: one quick CPU run (`transformer --quick --device cpu`, without
Triton's interpreter) through `python -m benchmarks`' own entry point, and the JSON it writes."""
from pathlib import Path

import pytest
import torch

import kernels.shared.backends
from benchmarks.harness.rows import Row
from benchmarks.transformer import run as transformer
from benchmarks.transformer.cases import ForwardCase, decode_cases, forward_cases
from support.benchmark_runs import run_quick_on_cpu

CPU = torch.device("cpu")
PROVIDERS = {"forward": ["ours", "torch", "reference"], "decode": ["ours", "torch"]}


def run_without_interpreter(out: Path, patch: pytest.MonkeyPatch) -> tuple[int, dict, str]:
    """(exit code, JSON, screen output) of one quick CPU run without the interpreter."""
    patch.delenv("TRITON_INTERPRET", raising=False)
    patch.setattr(kernels.shared.backends, "INTERPRETING", False)
    return run_quick_on_cpu("transformer", out)


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        return run_without_interpreter(tmp_path_factory.mktemp("transformer-out"), patch)


def test_cli_has_a_row_per_part_case_and_provider(cpu_run):
    exit_code, results, screen = cpu_run
    assert exit_code == 0 and results["benchmark"] == "transformer" and not results["interrupted"]
    assert results["settings"]["dtype"] == "fp32" and "interpreter" in results["settings"]["note"]
    assert set(results["settings"]["measured"]) == {"forward", "decode"}
    expected = [("forward", c.label, p) for c in forward_cases(CPU, quick=True) for p in PROVIDERS["forward"]]
    expected += [("decode", c.label, p) for c in decode_cases(CPU, quick=True) for p in PROVIDERS["decode"]]
    labels = {"forward": lambda r: f"{r['batch']}x{r['seq_len']}",
              "decode": lambda r: f"{r['batch']}x{r['context']}+{r['new_tokens']}"}
    assert [(r["part"], labels[r["part"]](r), r["provider"]) for r in results["rows"]] == expected
    assert "Course Transformer forward" in screen and "KV-cached greedy decoding" in screen


def test_cli_reports_ours_unavailable_with_the_reason(cpu_run):
    _, results, screen = cpu_run
    ours = [r for r in results["rows"] if r["provider"] == "ours"]
    assert ours and all(not r["available"] and "TRITON_INTERPRET=1" in r["reason"] for r in ours)
    assert all(r["median_ms"] is None and r["tokens_per_s"] is None for r in ours)
    assert "Unavailable providers" in screen


def test_cli_rates_and_comparisons_of_the_rows_that_ran(cpu_run):
    rows = [r for r in cpu_run[1]["rows"] if r["available"]]
    assert {(r["part"], r["provider"]) for r in rows} == {("forward", "torch"), ("forward", "reference"),
                                                          ("decode", "torch")}
    for row in rows:
        assert row["p20_ms"] <= row["median_ms"] <= row["p80_ms"]
        assert row["tokens_per_s"] == pytest.approx(row["tokens"] / (row["median_ms"] * 1e-3))
        assert row["peak_memory_bytes"] is None  # the CPU allocator keeps no peak
    forward = {r["provider"]: r for r in rows if r["part"] == "forward"}
    assert forward["torch"]["max_abs_diff"] == 0.0
    assert 0 < forward["reference"]["max_abs_diff"] < 1e-4  # same weights, float32, another summation order
    assert forward["torch"]["tokens"] == 2 * forward["torch"]["batch"] * forward["torch"]["seq_len"]
    decode = next(r for r in rows if r["part"] == "decode")
    assert decode["agreement"] == 1.0 and decode["tokens"] == decode["batch"] * decode["new_tokens"]


def test_an_interrupted_run_keeps_the_rows_measured_so_far(tmp_path, monkeypatch):
    finished = Row(ForwardCase(1, 8), "torch", "torch", reason="not timed in this test")

    def forward_then_stop(*args, **kwargs):
        yield finished
        raise KeyboardInterrupt

    def decode(*args, **kwargs):
        yield pytest.fail("decode measured after Ctrl-C")

    monkeypatch.setattr(transformer, "measure_forward", forward_then_stop)
    monkeypatch.setattr(transformer, "measure_decode", decode)
    exit_code, results, screen = run_without_interpreter(tmp_path, monkeypatch)
    assert exit_code == 130 and results["interrupted"] and "interrupted: 1 rows measured" in screen
    assert results["rows"] == [finished.as_record()]
