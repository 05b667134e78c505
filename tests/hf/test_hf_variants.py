"""Gemma 2's soft-capping, gpt-oss's sinks and the sliding windows of Mistral and Qwen2 (and of Gemma 2's
and gpt-oss's local layers) through attn_implementation="triton", on the torch backend and in the Triton
kernels: padded batches, greedy generation with the cache, a training step's gradients, packed batches."""
import copy

import pytest
import torch

pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")

import transformers as tf  # noqa: E402

import kernels  # noqa: E402
import kernels.hf  # noqa: E402
import reference  # noqa: E402
from kernels.hf.attention import triton_attention_forward  # noqa: E402
from kernels.sdpa.block_mask import tile_lists  # noqa: E402
from support.devices import DEVICE  # noqa: E402
from support.hf_training import assert_padded_training_step_matches  # noqa: E402

_TINY = dict(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=8, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
             eos_token_id=2, sliding_window=4)  # GQA, and a window shorter than the inputs

VARIANT_MODELS = {
    "gemma2": (lambda: tf.Gemma2Config(**_TINY, attn_logit_softcapping=5.0, final_logit_softcapping=None,
                                       query_pre_attn_scalar=8), "Gemma2ForCausalLM"),
    "gpt_oss": (lambda: tf.GptOssConfig(**_TINY, num_local_experts=4, num_experts_per_tok=2), "GptOssForCausalLM"),
    "mistral": (lambda: tf.MistralConfig(**_TINY), "MistralForCausalLM"),  # every layer windowed
    # the first layer full, the second windowed
    "qwen2": (lambda: tf.Qwen2Config(**_TINY, use_sliding_window=True, max_window_layers=1), "Qwen2ForCausalLM"),
}


def tiny_eager_model(name: str) -> torch.nn.Module:
    make_config, class_name = VARIANT_MODELS[name]
    model_class = getattr(tf, class_name, None)
    if model_class is None:
        pytest.skip(f"transformers {tf.__version__} has no {class_name}")
    torch.manual_seed(0)
    config = make_config()
    config._attn_implementation = "eager"
    model = model_class(config).eval()
    for layer in model.model.layers:  # gpt-oss's sinks start at zero: make them matter
        if getattr(layer.self_attn, "sinks", None) is not None:
            torch.nn.init.normal_(layer.self_attn.sinks)
    return model.to(DEVICE)


def padded_inputs() -> dict:
    input_ids = torch.randint(3, 100, (2, 12), device=DEVICE)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :4] = 0  # left padding, as for generation
    return {"input_ids": input_ids.masked_fill(attention_mask == 0, 0), "attention_mask": attention_mask}


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("name", list(VARIANT_MODELS))
def test_variant_models_match_eager(name, backend):
    eager = tiny_eager_model(name)
    ours = copy.deepcopy(eager)
    ours.set_attn_implementation("triton")
    inputs = padded_inputs()
    with torch.no_grad():
        expected = eager(**inputs).logits
        with kernels.use_backend(backend), kernels.record_backends() as ran:
            got = ours(**inputs).logits
    assert ran == [backend] * 2  # one call per layer, none silently elsewhere
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("flash_kwargs", [False, True], ids=["position_ids", "cu_seq_lens"])
@pytest.mark.parametrize("name", list(VARIANT_MODELS))
def test_packed_variant_models_match_eager(name, flash_kwargs, backend):
    """A padding-free batch (DataCollatorWithFlattening) of sequences longer than the sliding window.
    With FlashAttention's cu_seq_lens kwargs, soft-capping or sinks and the sliding layers' window apply
    within each sequence: eager run one sequence at a time. With position_ids alone, the packing is
    what the model's masks say (gpt-oss builds its full-attention mask without position_ids, so its
    eager attends across the packed sequences there): eager on the same packed batch."""
    eager = tiny_eager_model(name)
    ours = copy.deepcopy(eager)
    ours.set_attn_implementation("triton")
    ids = [torch.randint(3, 100, (length,)).tolist() for length in (7, 1, 9)]
    batch = tf.DataCollatorWithFlattening(return_flash_attn_kwargs=flash_kwargs)([{"input_ids": each} for each in ids])
    batch = {key: value.to(DEVICE) if isinstance(value, torch.Tensor) else value for key, value in batch.items()
             if key != "labels"}
    with torch.no_grad():
        if flash_kwargs:
            expected = torch.cat([eager(input_ids=torch.tensor([each], device=DEVICE)).logits[0] for each in ids])
        else:
            expected = eager(**batch, use_cache=False).logits[0]
        with kernels.use_backend(backend), kernels.record_backends() as ran:
            got = ours(**batch, use_cache=False).logits[0]
    assert ran == [backend] * 2
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("name", list(VARIANT_MODELS))
def test_variant_models_generate_and_train_like_eager(name, backend):
    """Greedy generation from left-padded prompts longer than the window, with the cache (prefill, then
    one query per step), gives eager's tokens; a training step on the padded batch gives eager's loss
    and gradients, the sinks' included."""
    eager = tiny_eager_model(name)
    ours = copy.deepcopy(eager)
    ours.set_attn_implementation("triton")
    inputs = padded_inputs()
    settings = dict(max_new_tokens=4, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        expected = eager.generate(**inputs, **settings)
        with kernels.use_backend(backend), kernels.record_backends() as ran:
            got = ours.generate(**inputs, **settings)
    assert set(ran) == {backend} and len(ran) == 2 * 4  # two layers, a prefill and three decode steps
    assert torch.equal(got, expected)
    assert_padded_training_step_matches(eager, ours, inputs, backend)


@pytest.mark.parametrize("argument, option", [("softcap", "softcap"), ("s_aux", "sinks"), ("sinks", "sinks")])
def test_variant_arguments_reach_kernels_attention(argument, option):
    """With a padded causal mask and GQA, against the reference (the tiny models above cover transformers'
    own masks, the flagged key-padding one of a padded prefill included)."""
    q = torch.randn(2, 4, 6, 8, device=DEVICE)
    k, v = torch.randn(2, 2, 6, 8, device=DEVICE), torch.randn(2, 2, 6, 8, device=DEVICE)
    value = 3.0 if option == "softcap" else torch.randn(4, device=DEVICE)
    keep = torch.ones(2, 1, 6, 6, dtype=torch.bool, device=DEVICE).tril()
    keep[0, ..., :2] = False

    class Layer(torch.nn.Module):
        is_causal = True

    with kernels.use_backend("torch"):
        out, weights = triton_attention_forward(Layer().eval(), q, k, v, keep, scaling=0.3, **{argument: value})
    expected = reference.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=0.3, enable_gqa=True,
                                                      **{option: value})
    assert weights is None
    torch.testing.assert_close(out, expected.transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_a_padded_sliding_window_batch_skips_the_tiles_outside_the_window(monkeypatch):
    """transformers hands a padded Mistral batch to the attention as a dense (B, 1, N, N) mask with the
    window in it: the kernels' block map (kernels/sdpa/block_mask.py) lists only the tiles near the
    diagonal, so the window's work scales with the band, and the logits are eager's."""
    config = tf.MistralConfig(**{**_TINY, "num_hidden_layers": 1, "sliding_window": 40,
                                 "max_position_embeddings": 512})
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    eager = tf.MistralForCausalLM(config).eval().to(DEVICE)
    ours = copy.deepcopy(eager)
    ours.set_attn_implementation("triton")
    input_ids = torch.randint(3, 100, (1, 300), device=DEVICE)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :5] = 0
    inputs = {"input_ids": input_ids.masked_fill(attention_mask == 0, 0), "attention_mask": attention_mask}
    from kernels.sdpa.triton import common
    built = []
    monkeypatch.setattr(common, "tile_lists", lambda *args, **kwargs: built.append(tile_lists(*args, **kwargs))
                        or built[-1])
    with torch.no_grad(), kernels.use_backend("triton"), kernels.record_backends() as ran:
        got = ours(**inputs).logits
    assert ran == ["triton"]
    # 3 x 3 map tiles; a 40-key window reaches back one tile at most: query tile 2 lists key tiles 1 and 2
    assert built and built[0][0, 0, :, 1].tolist() == [1, 2, 2]
    real = attention_mask.bool()
    torch.testing.assert_close(got[real], eager(**inputs).logits[real], atol=1e-5, rtol=1e-5)
