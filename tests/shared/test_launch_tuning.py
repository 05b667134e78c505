"""kernels/shared/triton/launch_tuning.py: the autotuner that remembers each launch key's config, and
the heuristics that build one dict, on a toy kernel whose output shows the config and heuristics it ran."""
import pytest
import torch
import triton
import triton.language as tl
from triton.runtime.autotuner import Autotuner

from kernels.shared.triton.launch_tuning import autotune, heuristics
from support.devices import DEVICE

# Timings the test makes up per (dtype, tile), so that each dtype has its own winner.
FAKE_MS = {(torch.float32, 16): 2.0, (torch.float32, 32): 1.0, (torch.float16, 16): 1.0, (torch.float16, 32): 2.0}


def _keep_all(configs, named_args, **kwargs):
    return configs


@autotune(configs=[triton.Config({"BLOCK": 16}), triton.Config({"BLOCK": 32})], key=["n_bucket"],
          prune_configs_by={"early_config_prune": _keep_all})
@heuristics({"EVEN": lambda args: args["n"] % args["BLOCK"] == 0,
             "EVEN_TWICE": lambda args: args["EVEN"] and args["n"] % (2 * args["BLOCK"]) == 0})
@triton.jit
def _tagged_copy(x_ptr, out_ptr, n, n_bucket, BLOCK: tl.constexpr, EVEN: tl.constexpr, EVEN_TWICE: tl.constexpr):
    """out (float32) = x + the tile + 1000 EVEN + 10000 EVEN_TWICE."""
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offsets, mask=offsets < n)
    tag = BLOCK + 1000 * EVEN + 10000 * EVEN_TWICE
    tl.store(out_ptr + offsets, x.to(tl.float32) + tag, mask=offsets < n)


@pytest.fixture
def triton_runs(monkeypatch):
    """How often Triton's own Autotuner.run ran, with the made-up timings instead of a GPU's."""
    runs = []
    real_run = Autotuner.run

    def counted_run(autotuner, *args, **kwargs):
        runs.append(args[0].dtype)
        return real_run(autotuner, *args, **kwargs)

    def fake_bench(autotuner, *args, config, **kwargs):
        return [FAKE_MS[(args[0].dtype, config.kwargs["BLOCK"])]]

    monkeypatch.setattr(Autotuner, "run", counted_run)
    monkeypatch.setattr(Autotuner, "_bench", fake_bench)
    _tagged_copy.cache.clear()
    _tagged_copy.launch_configs.clear()
    return runs


def _launch(n, dtype, n_bucket=1):
    x = torch.randn(n, device=DEVICE).to(dtype)
    out = torch.full((n,), float("nan"), device=DEVICE)
    _tagged_copy[lambda meta: (triton.cdiv(n, meta["BLOCK"]),)](x, out, n, n_bucket)
    return (out - x.float()).round().unique().tolist()  # the tag, the same in every element


def test_a_launch_key_seen_before_skips_tritons_run_and_gets_the_same_config(triton_runs):
    assert _launch(100, torch.float32) == [32]  # tuned: 32 is float32's faster tile; 100 divides neither
    assert triton_runs == [torch.float32]
    assert _launch(96, torch.float32) == [32 + 1000]  # remembered: Triton's run not asked again
    assert triton_runs == [torch.float32]
    assert _launch(128, torch.float32) == [32 + 1000 + 10000]  # heuristics see the earlier heuristic's value


def test_the_dtype_and_the_tuning_key_are_part_of_the_launch_key(triton_runs):
    assert _launch(100, torch.float32) == [32]
    assert _launch(100, torch.float16) == [16]  # a dtype not seen: tuned again, with its own winner
    assert _launch(100, torch.float32, n_bucket=2) == [32]
    assert triton_runs == [torch.float32, torch.float16, torch.float32]
    assert _launch(64, torch.float16) == [16 + 1000 + 10000]
    assert len(triton_runs) == 3


@autotune(configs=[triton.Config({"BLOCK": 16})], key=[], prune_configs_by={"early_config_prune": _keep_all})
@triton.jit
def _misnamed(x, n, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    tl.store(x + offsets, tl.load(x + offsets, mask=offsets < n), mask=offsets < n)


def test_a_tensor_argument_not_named_as_a_pointer_is_refused():
    """Its dtype would be missing from the launch key, which reads the dtypes of *_ptr arguments only."""
    with pytest.raises(TypeError, match=r"tensor arguments \['x'\] are not named \*_ptr"):
        _misnamed[(1,)](torch.randn(4, device=DEVICE), 4)
