"""`python -m benchmarks context-parallel --quick --device cpu` end to end: two gloo processes, every
method and layout, the bytes each rank sent equal to the formulas and the results to one device."""
import json

from benchmarks.__main__ import main


def test_context_parallel_benchmark_on_the_cpu(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # the spawned ranks run the torch chunk math: fast
    assert main(["context-parallel", "--quick", "--device", "cpu", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "context_parallel.json").read_text())
    cases = report["cases"]
    assert {(c["case"]["method"], c["case"]["layout"]) for c in cases} == {
        (m, l) for m in ("ring", "allgather", "ulysses") for l in ("contiguous", "zigzag")}
    for case in cases:
        assert case["bytes_match"], case
        assert max(case["max_abs_error"].values()) < 1e-4, case
    assert "ring" in capsys.readouterr().out
