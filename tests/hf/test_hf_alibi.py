"""BLOOM's ALiBi attention through kernels.hf.patch_alibi_attention, on the torch backend and in the Triton
kernels, against transformers' eager BLOOM: padded batches (the in-kernel slopes, and the model's bias
in the mask for a mask with a gap), greedy generation with the cache, a training step's gradients."""
import copy

import pytest
import torch

pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")

import transformers as tf  # noqa: E402
from transformers.models.bloom import modeling_bloom  # noqa: E402
from transformers.models.bloom.modeling_bloom import BloomAttention, build_alibi_tensor  # noqa: E402

import kernels  # noqa: E402
import kernels.hf  # noqa: E402
from kernels.hf import alibi  # noqa: E402
from support.devices import DEVICE  # noqa: E402
from support.hf_training import assert_padded_training_step_matches  # noqa: E402

HEADS = 5  # not a power of two: the slopes of the extra head come from the second sequence
# transformers 5.x builds BLOOM's mask through the mask interface (triton_mask: bool, the slopes apply);
# 4.x builds a float mask of its own, which always goes with the model's bias
SLOPES = "slopes" if hasattr(modeling_bloom, "create_causal_mask") else "bias"


def tiny_eager_bloom() -> torch.nn.Module:
    torch.manual_seed(0)
    config = tf.BloomConfig(vocab_size=100, hidden_size=8 * HEADS, n_layer=2, n_head=HEADS, pad_token_id=0,
                            bos_token_id=1, eos_token_id=2, initializer_range=0.2)  # logits far from uniform
    config._attn_implementation = "eager"
    return tf.BloomForCausalLM(config).eval().to(DEVICE)


def padded_inputs(gap: bool = False) -> dict:
    """Row 0 left-padded (as for generation), row 1 right-padded; with `gap`, row 1 has a pad between real
    tokens instead, which BLOOM's positions skip."""
    input_ids = torch.randint(3, 100, (2, 11), device=DEVICE)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :4] = 0
    attention_mask[1, 6 if gap else 9:][:2] = 0
    return {"input_ids": input_ids.masked_fill(attention_mask == 0, 0), "attention_mask": attention_mask}


@pytest.fixture
def paths(monkeypatch) -> list[str]:
    """How each layer's call reached the kernels: "slopes" (alibi_slopes) or "bias" (the model's tensor)."""
    taken, forward = [], alibi.triton_attention_forward

    def recording(*args, **kwargs):
        taken.append("slopes" if kwargs.get("alibi_slopes") is not None else "bias")
        return forward(*args, **kwargs)

    monkeypatch.setattr(alibi, "triton_attention_forward", recording)
    return taken


def test_alibi_slopes_are_bloom_slopes():
    for heads in (1, 4, HEADS, 12, 40):
        expected = build_alibi_tensor(torch.ones(1, 2), heads, torch.float32)[:, 0, 1]  # slope * position 1
        assert torch.equal(kernels.hf.alibi_slopes(heads), expected)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("gap", [False, True], ids=["padded", "gap"])
def test_bloom_matches_eager(gap, backend, paths):
    eager = tiny_eager_bloom()
    ours = copy.deepcopy(eager)
    kernels.hf.patch_alibi_attention(ours)
    inputs = padded_inputs(gap)
    with torch.no_grad():
        expected = eager(**inputs).logits
        with kernels.use_backend(backend), kernels.record_backends() as ran:
            got = ours(**inputs).logits
    assert ran == [backend] * 2 and paths == ["bias" if gap else SLOPES] * 2
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_bloom_generates_and_trains_like_eager(backend, paths):
    """Greedy generation from left-padded prompts with the cache (prefill, then one query per step: the
    negated slopes) gives eager's tokens; a training step on the padded batch gives eager's loss and
    gradients."""
    eager = tiny_eager_bloom()
    ours = copy.deepcopy(eager)
    kernels.hf.patch_alibi_attention(ours)
    inputs = padded_inputs()
    inputs["attention_mask"][1, 9:] = 1  # generation pads on the left only
    settings = dict(max_new_tokens=4, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        expected = eager.generate(**inputs, **settings)
        with kernels.use_backend(backend), kernels.record_backends() as ran:
            got = ours.generate(**inputs, **settings)
    assert ran == [backend] * 2 * 4 and paths == [SLOPES] * 2 * 4  # two layers, a prefill and three steps
    assert torch.equal(got, expected)
    assert_padded_training_step_matches(eager, ours, inputs, backend)


def test_patch_is_scoped_and_refuses_other_models():
    model = tiny_eager_bloom()
    with kernels.hf.patch_alibi_attention(model) as patched:
        assert patched is model and model.config._attn_implementation == "triton_alibi"
        assert all(type(layer.self_attention) is alibi.TritonBloomAttention for layer in model.transformer.h)
        with pytest.raises(ValueError, match="model .* is patched already"):
            kernels.hf.patch_alibi_attention(model)
    assert model.config._attn_implementation == "eager"
    assert all(type(layer.self_attention) is BloomAttention for layer in model.transformer.h)
    if SLOPES == "slopes":  # BLOOM's masks come from the mask interface: an unpatched BLOOM is refused there
        model.config._attn_implementation = kernels.hf.ATTENTION_NAME  # as from_pretrained(attn_implementation=...)
        with pytest.raises(ValueError, match="cannot run bloom: .* call kernels.hf.patch_alibi_attention"):
            model(torch.ones(1, 3, dtype=torch.long, device=DEVICE))
        model.config._attn_implementation = "eager"

    llama = tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                               num_attention_heads=2))
    with pytest.raises(ValueError, match="model .* has no BloomAttention"):
        kernels.hf.patch_alibi_attention(llama)
    model.config.update(dict(pretraining_tp=2, slow_but_exact=True))
    with pytest.raises(ValueError, match="slow_but_exact"):
        kernels.hf.patch_alibi_attention(model)
