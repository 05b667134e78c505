"""attn_implementation="triton" in Hugging Face transformers (kernels.hf): tiny random models give the
same outputs and the same generated tokens as transformers' own sdpa attention, on the same weights,
and our kernel is what ran."""
import copy

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")
pytest.importorskip("tokenizers", reason="tokenizers is not installed (it comes with transformers)")

import transformers  # noqa: E402
from transformers import AttentionInterface  # noqa: E402
from transformers.masking_utils import AttentionMaskInterface  # noqa: E402

import kernels  # noqa: E402
import kernels.hf  # noqa: E402
from kernels.hf.attention import triton_attention_forward  # noqa: E402
from kernels.testing import check_parity, compare_models  # noqa: E402
from support.devices import DEVICE  # noqa: E402
from support.hf_tiny_models import DECODERS, TINY_MODELS, model_inputs, tiny_tokenizer  # noqa: E402


def skip_unless_it_calls_attention_interface(model_class: type) -> None:
    """Older transformers keep some architectures (BERT, T5 in 4.57) on their own attention classes."""
    if not getattr(model_class, "_can_set_attn_implementation", lambda: True)():
        pytest.skip(f"{model_class.__name__} in transformers {transformers.__version__} does not call "
                    "attention through AttentionInterface")


def tiny_model(name: str, attn_implementation: str = "baseline") -> torch.nn.Module:
    """The model on DEVICE; the "baseline" attention is transformers' sdpa, or eager where the installed
    transformers has no sdpa path for the architecture."""
    model_class = TINY_MODELS[name].model_class
    if attn_implementation == "baseline":
        attn_implementation = "sdpa" if model_class._supports_sdpa else "eager"
    else:
        skip_unless_it_calls_attention_interface(model_class)
    return TINY_MODELS[name].build(attn_implementation).to(DEVICE)


def inputs_for(name: str, padded: bool, **sizes) -> dict:
    return {key: tensor.to(DEVICE) for key, tensor in model_inputs(TINY_MODELS[name].kind, padded, **sizes).items()}


def main_output(output) -> torch.Tensor:
    return output.logits if getattr(output, "logits", None) is not None else output.last_hidden_state


def with_triton(model: torch.nn.Module) -> torch.nn.Module:
    skip_unless_it_calls_attention_interface(type(model))
    twin = copy.deepcopy(model)
    twin.set_attn_implementation("triton")
    return twin


def run(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return main_output(model(**inputs))


# --- registration -------------------------------------------------------------------------------------

def test_import_registers_attention_and_mask_function_idempotently():
    assert kernels.hf.is_registered("triton")
    assert kernels.hf.register() == "triton"  # again: a no-op
    assert AttentionInterface._global_mapping["triton"] is triton_attention_forward
    assert "triton" in AttentionMaskInterface._global_mapping


def test_register_refuses_to_replace_another_function():
    AttentionInterface.register("taken_by_someone_else", lambda *args, **kwargs: None)
    try:
        with pytest.raises(ValueError, match="already holds"):
            kernels.hf.register("taken_by_someone_else")
        assert "taken_by_someone_else" not in AttentionMaskInterface._global_mapping
    finally:
        del AttentionInterface._global_mapping["taken_by_someone_else"]


def test_a_model_that_computes_attention_itself_is_refused():
    """transformers 5.x accepts attn_implementation="triton" for MPT, builds its mask with our mask
    function and then computes the attention in MPT's own modules, which would read that boolean mask
    as their own: refused at the first forward, naming the model type and what to load instead."""
    config = transformers.MptConfig(vocab_size=50, d_model=32, n_layers=1, n_heads=4)
    model = transformers.MptForCausalLM._from_config(config, attn_implementation="triton")
    with pytest.raises(ValueError, match="cannot run mpt: its attention modules compute the attention themselves"):
        model(torch.randint(0, 50, (1, 7)), attention_mask=torch.ones(1, 7, dtype=torch.long))


def test_transformers_drops_the_padding_mask_for_a_name_without_a_mask_function():
    """Why kernels.hf registers a mask function too: without one, the attention sees no mask at all."""
    seen_masks = {}

    def spy(name):
        def attention(module, query, key, value, attention_mask, **kwargs):
            seen_masks[name] = attention_mask
            return triton_attention_forward(module, query, key, value, attention_mask, **kwargs)
        return attention

    AttentionInterface.register("attention_only", spy("attention_only"))
    AttentionInterface.register("with_mask", spy("with_mask"))
    AttentionMaskInterface.register("with_mask", kernels.hf.triton_mask)
    try:
        model = tiny_model("llama")
        inputs = inputs_for("llama", padded=True)  # sequence 0: 4 pad tokens on the left
        for name in ("attention_only", "with_mask"):
            model.set_attn_implementation(name)
            run(model, inputs)
    finally:
        for interface, name in ((AttentionInterface, "attention_only"), (AttentionInterface, "with_mask"),
                                (AttentionMaskInterface, "with_mask")):
            del interface._global_mapping[name]
    assert seen_masks["attention_only"] is None
    assert seen_masks["with_mask"] is not None and not seen_masks["with_mask"][0, 0, -1, :4].any()


@pytest.mark.parametrize("name", ["bert", "bart"])
def test_encoder_padding_mask_reaches_the_kernel_as_a_key_padding_view(name):
    """A bidirectional mask depends on the key alone: it arrives as a stride-0 view over the queries, so
    the kernel reads O(B * Nk) mask bytes and skips padded key tiles (attended_key_range finds a span)."""
    from kernels.sdpa.triton.common import attended_key_range

    seen_masks = []

    def spy(module, query, key, value, attention_mask, **kwargs):
        if not getattr(module, "is_causal", False):
            seen_masks.append((attention_mask, query.size(1)))
        return triton_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("spy_triton", spy)
    AttentionMaskInterface.register("spy_triton", kernels.hf.triton_mask)
    try:
        model = tiny_model(name)
        skip_unless_it_calls_attention_interface(type(model))
        model.set_attn_implementation("spy_triton")
        inputs = inputs_for(name, padded=True)
        run(model, inputs)
    finally:
        for interface in (AttentionInterface, AttentionMaskInterface):
            del interface._global_mapping["spy_triton"]
    assert seen_masks
    for mask, heads in seen_masks:
        assert mask.dtype == torch.bool and mask.stride(2) == 0
        broadcast = mask.expand(mask.size(0), heads, mask.size(2), mask.size(3))
        assert attended_key_range(broadcast) is not None
    padding = inputs["attention_mask"].bool()
    encoder_mask = seen_masks[0][0]
    assert torch.equal(encoder_mask[:, 0, -1, :], padding)


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_padded_causal_prefill_runs_as_causal_plus_key_padding(name, monkeypatch):
    """A padded decoder prefill reaches the kernel as is_causal with a (B, 1, 1, Nk) key-padding view (tiles
    above the diagonal and padded tiles skipped), not as a materialised (B, 1, N, N) mask."""
    from kernels.sdpa import custom_ops as attention_ops
    from kernels.sdpa.triton.common import attended_key_range

    launches = []
    real = attention_ops.attention_forward_body  # what an inference call runs (runs_without_dispatcher)

    def spy(query, key, value, mask, is_causal, *args):
        launches.append((is_causal, mask is not None and attended_key_range(mask) is not None))
        return real(query, key, value, mask, is_causal, *args)

    monkeypatch.setattr(attention_ops, "attention_forward_body", spy)
    model = with_triton(tiny_model(name))
    run(model, inputs_for(name, padded=True))
    assert launches and all(launch == (True, True) for launch in launches), launches


# --- whole models against transformers' sdpa (or eager) on the same weights ---------------------------

@pytest.mark.parametrize("padded", [False, True], ids=["plain", "padded"])
@pytest.mark.parametrize("name", list(TINY_MODELS))
def test_forward_matches_sdpa(name, padded):
    baseline = tiny_model(name)
    triton = with_triton(baseline)
    inputs = inputs_for(name, padded)
    with kernels.record_backends() as ran:
        actual = run(triton, inputs)
    assert "triton" in ran and set(ran) == {"triton"}
    exact = run(copy.deepcopy(baseline).double(), inputs)
    result = check_parity(actual, exact, run(baseline, inputs))
    assert result.passed, f"{result!r}\n{compare_models(baseline, triton, inputs)}"


@pytest.mark.parametrize("name", ["bart", "t5"])
def test_padded_decoder_inputs_match_sdpa(name):
    """A right-padded decoder_attention_mask: the decoder's causal self-attention with padding (BART: one
    causal + key-padding kernel call; T5: causality made explicit to carry the position bias)."""
    baseline = tiny_model(name)
    triton = with_triton(baseline)
    inputs = inputs_for(name, padded=True)
    decoder_mask = torch.ones_like(inputs["decoder_input_ids"])
    decoder_mask[1, -2:] = 0
    inputs["decoder_attention_mask"] = decoder_mask
    with kernels.record_backends() as ran:
        actual = run(triton, inputs)
    assert set(ran) == {"triton"}
    real = decoder_mask.bool()[..., None].expand_as(actual)  # padded decoder positions are not compared
    exact = run(copy.deepcopy(baseline).double(), inputs)
    result = check_parity(actual[real], exact[real], run(baseline, inputs)[real])
    assert result.passed, repr(result)


@pytest.mark.parametrize("name", ["llama", "t5"])
def test_bfloat16_forward_matches_sdpa(name):
    baseline = tiny_model(name).to(torch.bfloat16)
    triton = with_triton(baseline)
    inputs = inputs_for(name, padded=True)
    with kernels.record_backends() as ran:
        actual = run(triton, inputs)
    assert "triton" in ran and actual.dtype == torch.bfloat16
    exact = run(copy.deepcopy(baseline).double(), inputs)
    result = check_parity(actual, exact, run(baseline, inputs))
    assert result.passed, repr(result)


def greedy(model, inputs, **settings):
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False, pad_token_id=0,
                         return_dict_in_generate=True, output_logits=True, **settings)
    return out.sequences, torch.stack(out.logits)


@pytest.mark.parametrize("name", DECODERS)
def test_greedy_generate_matches_sdpa(name):
    baseline = tiny_model(name)
    triton = with_triton(baseline)
    inputs = inputs_for(name, padded=True, length=8)
    inputs.pop("decoder_input_ids", None)
    expected_ids, expected_logits = greedy(baseline, inputs)
    with kernels.record_backends() as ran:
        ids, logits = greedy(triton, inputs)
    assert "triton" in ran
    assert ids.tolist() == expected_ids.tolist()
    torch.testing.assert_close(logits, expected_logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("padded", [False, True], ids=["plain", "padded"])
def test_generate_with_a_static_cache_matches_sdpa(padded):
    """A prefill into a longer, empty static cache: more keys than queries, the cache's end unwritten."""
    baseline = tiny_model("llama")
    triton = with_triton(baseline)
    inputs = inputs_for("llama", padded=padded, length=8)
    expected_ids, expected_logits = greedy(baseline, inputs, cache_implementation="static")
    with kernels.record_backends() as ran:
        ids, logits = greedy(triton, inputs, cache_implementation="static")
    assert "triton" in ran
    assert ids.tolist() == expected_ids.tolist()
    torch.testing.assert_close(logits, expected_logits, atol=1e-4, rtol=1e-4)


def test_training_gradients_match_sdpa():
    baseline = tiny_model("llama")
    triton = with_triton(baseline)
    inputs = inputs_for("llama", padded=True)
    grads = []
    for model in (baseline, triton):
        model.zero_grad()
        model(**inputs, labels=inputs["input_ids"]).loss.backward()
        grads.append({name: p.grad for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_t5_training_gradients_match_eager_including_the_position_bias():
    """T5's relative position bias reaches the kernel inside a float mask that requires grad (with
    finfo.min on the padded keys, and causality in the decoder): its embedding weights get eager's gradients."""
    eager = tiny_model("t5", "eager")
    triton = with_triton(eager)
    inputs = inputs_for("t5", padded=True)
    labels = inputs.pop("decoder_input_ids")
    grads = []
    for model in (eager, triton):
        model.zero_grad()
        with kernels.record_backends() as ran:
            model(**inputs, labels=labels).loss.backward()
        assert set(ran) == ({"triton"} if model is triton else set())
        grads.append({name: p.grad for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert sum("relative_attention_bias" in name for name in grads[0]) == 2  # the encoder's and the decoder's
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)


# --- the ways to ask for it ------------------------------------------------------------------------------

def test_from_pretrained_from_config_and_constructor(tmp_path):
    baseline = tiny_model("llama")
    baseline.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="triton")
    config = copy.deepcopy(baseline.config)
    from_config = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="triton")
    constructed = tiny_model("llama", "triton")  # config._attn_implementation = "triton", then Model(config)
    inputs = inputs_for("llama", padded=True)
    for model in (loaded, from_config, constructed):
        assert model.config._attn_implementation == "triton"
        with kernels.record_backends() as ran:
            run(model.to(DEVICE).eval(), inputs)
        assert "triton" in ran
    assert baseline.config._attn_implementation != "triton"
    torch.testing.assert_close(run(loaded, inputs), run(baseline, inputs), atol=1e-5, rtol=1e-5)


def test_text_generation_pipeline(tmp_path):
    tiny_model("gpt2").save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    prompt = "the kernel reads the"
    texts = {}
    for implementation in ("sdpa", "triton"):
        generator = transformers.pipeline(
            "text-generation", model=str(tmp_path), device=DEVICE,
            model_kwargs={"attn_implementation": implementation},
        )
        assert generator.model.config._attn_implementation == implementation
        with kernels.record_backends() as ran:
            texts[implementation] = generator(prompt, max_new_tokens=4, do_sample=False)[0]["generated_text"]
        assert ("triton" in ran) == (implementation == "triton")
    assert texts["triton"] == texts["sdpa"]


# --- the attention function on its own -------------------------------------------------------------------

class Layer(torch.nn.Module):
    """Stands in for a model's attention module: what the function reads from it."""

    def __init__(self, is_causal=True, training=False):
        super().__init__()
        self.is_causal = is_causal
        self.train(training)


def qkv(n_queries, n_keys, heads=4, kv_heads=4, batch=2, head_dim=16):
    return (torch.randn(batch, heads, n_queries, head_dim, device=DEVICE),
            torch.randn(batch, kv_heads, n_keys, head_dim, device=DEVICE),
            torch.randn(batch, kv_heads, n_keys, head_dim, device=DEVICE))


def sdpa_layout(out):  # (B, H, N, D) -> the (B, N, H, D) transformers expects
    return out.transpose(1, 2)


def test_decode_step_attends_to_every_cached_key():
    q, k, v = qkv(1, 9)
    out, weights = triton_attention_forward(Layer(is_causal=True), q, k, v, None, scaling=0.3)
    assert weights is None and out.shape == (2, 1, 4, 16)
    torch.testing.assert_close(out, sdpa_layout(F.scaled_dot_product_attention(q, k, v, scale=0.3)))


def test_causal_queries_are_the_last_positions_when_keys_outnumber_them():
    q, k, v = qkv(3, 8)
    out, _ = triton_attention_forward(Layer(is_causal=True), q, k, v, None)
    bottom_right = torch.ones(3, 8, dtype=torch.bool, device=DEVICE).tril(5)
    torch.testing.assert_close(out, sdpa_layout(F.scaled_dot_product_attention(q, k, v, attn_mask=bottom_right)))


@pytest.mark.parametrize("is_causal", [None, False, True])
def test_is_causal_argument_overrides_the_module_as_in_sdpa(is_causal):
    q, k, v = qkv(6, 6)
    out, _ = triton_attention_forward(Layer(is_causal=True), q, k, v, None, is_causal=is_causal)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal is not False)
    torch.testing.assert_close(out, sdpa_layout(expected))


def test_a_mask_turns_causal_off_and_fully_masked_rows_give_zeros():
    q, k, v = qkv(5, 5)
    keep = torch.ones(2, 1, 5, 5, dtype=torch.bool, device=DEVICE).tril()
    keep[0, :, :, :2] = False  # left padding: the first two queries of sequence 0 see no key
    out, _ = triton_attention_forward(Layer(is_causal=True), q, k, v, keep)
    torch.testing.assert_close(out, sdpa_layout(F.scaled_dot_product_attention(q, k, v, attn_mask=keep)))
    assert (out[0, :2] == 0).all()


def test_grouped_query_attention_does_not_repeat_keys(monkeypatch):
    q, k, v = qkv(5, 5, heads=4, kv_heads=1)
    seen = []
    real = kernels.hf.attention.attention
    monkeypatch.setattr(kernels.hf.attention, "attention",
                        lambda q, k, *args, **kw: seen.append((k.shape, kw["enable_gqa"])) or real(q, k, *args, **kw))
    out, _ = triton_attention_forward(Layer(), q, k, v, None)
    assert seen == [(k.shape, True)]
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(out, sdpa_layout(expected))


@pytest.mark.parametrize("mask_kind", ["none_causal", "bool", "additive"])
def test_position_bias_is_added_where_the_mask_attends(mask_kind):
    """T5's position bias arrives apart from the mask; a masked-out score gets finfo.min, as in transformers."""
    q, k, v = qkv(5, 5)
    bias = torch.randn(1, 4, 5, 5, device=DEVICE)
    keep = torch.rand(2, 1, 5, 5, device=DEVICE) > 0.3
    lowest = torch.finfo(torch.float32).min
    mask = {"none_causal": None, "bool": keep, "additive": torch.where(keep, 0.0, lowest)}[mask_kind]
    if mask_kind == "none_causal":
        keep = torch.ones(5, 5, dtype=torch.bool, device=DEVICE).tril()
    out, _ = triton_attention_forward(Layer(is_causal=True), q, k, v, mask, scaling=1.0, position_bias=bias)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.where(keep, bias, lowest), scale=1.0)
    torch.testing.assert_close(out, sdpa_layout(expected))


def test_dropout_only_in_training():
    q, k, v = qkv(4, 4)
    torch.manual_seed(1)
    train_out, _ = triton_attention_forward(Layer(training=True), q, k, v, None, dropout=0.5)
    torch.manual_seed(1)
    expected = kernels.attention(q, k, v, dropout_p=0.5, is_causal=True)
    torch.testing.assert_close(train_out, sdpa_layout(expected))
    eval_out, _ = triton_attention_forward(Layer(training=False), q, k, v, None, dropout=0.5)
    torch.testing.assert_close(eval_out, sdpa_layout(F.scaled_dot_product_attention(q, k, v, is_causal=True)))


@pytest.mark.parametrize("name", list(TINY_MODELS))
def test_output_attentions_raises_for_every_architecture(name):
    """Promised in the README: a ValueError naming eager, never an empty or None `attentions`
    (GPT-2 drops output_attentions before its attention function and records the weights instead)."""
    inputs = inputs_for(name, False)
    with pytest.raises(ValueError, match="output_attentions=True cannot be honoured; use attn_implementation='eager'"):
        run(with_triton(tiny_model(name)), {**inputs, "output_attentions": True})


@pytest.mark.parametrize("argument, value, message", [
    ("head_mask", torch.ones(4, device=DEVICE), "does not support a head mask"),
    ("output_attentions", True, "output_attentions=True cannot be honoured"),
])
def test_unsupported_arguments_raise(argument, value, message):
    q, k, v = qkv(3, 3)
    with pytest.raises(ValueError, match=message):
        triton_attention_forward(Layer(), q, k, v, None, **{argument: value})
