"""`python -m benchmarks parity --model`: a saved Hugging Face model, sdpa against ours, per layer."""
import json

import pytest

pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")

from benchmarks.__main__ import main  # noqa: E402
from support.hf_tiny_models import TINY_MODELS, tiny_tokenizer  # noqa: E402


@pytest.mark.parametrize("name, with_tokenizer", [("bert", True), ("llama", False)])
def test_a_saved_model_passes_layer_by_layer(name, with_tokenizer, tmp_path, device):
    model_dir = tmp_path / name
    TINY_MODELS[name].build().save_pretrained(model_dir)
    if with_tokenizer:
        tiny_tokenizer().save_pretrained(model_dir)
    exit_code = main(["parity", "--model", str(model_dir), "--device", device, "--out", str(tmp_path / "out")])
    record = json.loads((tmp_path / "out" / "parity-model.json").read_text())
    assert exit_code == 0 and record["passed"] and record["first_divergence"] is None
    compared = [layer["output"] for layer in record["layers"]]
    assert any("attn" in output or "attention" in output for output in compared), "no attention output compared"
    assert all(layer["max_abs_error"] <= 1e-3 for layer in record["layers"])


def test_a_zero_threshold_reports_the_first_divergent_layer(tmp_path, device):
    model_dir = tmp_path / "bert"
    TINY_MODELS["bert"].build().save_pretrained(model_dir)
    exit_code = main(["parity", "--model", str(model_dir), "--threshold", "0", "--device", device,
                      "--out", str(tmp_path / "out")])
    record = json.loads((tmp_path / "out" / "parity-model.json").read_text())
    assert exit_code == 1 and not record["passed"]
    assert record["first_divergence"] is not None


def test_a_model_that_is_not_available_offline_is_a_clear_error(tmp_path, device, capsys):
    exit_code = main(["parity", "--model", "no-such-org/no-such-model", "--device", device,
                      "--out", str(tmp_path)])
    assert exit_code == 2
    assert "cannot load 'no-such-org/no-such-model' offline" in capsys.readouterr().out


def test_kernels_testing_runs_the_same_check_without_writing(tmp_path, device, capsys, monkeypatch):
    """`python -m kernels.testing --model PATH`: the same verdict and exit codes, printed only."""
    from kernels.testing.__main__ import main as testing_main

    model_dir = tmp_path / "bert"
    TINY_MODELS["bert"].build().save_pretrained(model_dir)
    monkeypatch.chdir(tmp_path)
    assert testing_main(["--model", str(model_dir), "--device", device]) == 0
    assert "every layer within max |ours - sdpa| 0.001" in capsys.readouterr().out
    assert testing_main(["--model", "no-such-org/no-such-model", "--device", device]) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bert"]  # nothing written
