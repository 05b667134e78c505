"""kernels.models: the three families on the fused kernels against the float64 reference, masks,
the KV cache's logits, one shared block class, state_dicts and clear errors on bad input."""
import copy
import dataclasses

import pytest
import torch

import kernels
import kernels.models.attention as attention_module
from kernels.models import Block, DecoderOnlyLM, EncoderClassifier, EncoderDecoderModel, ModelConfig
from kernels.models.attention import Attention
from kernels.testing import assert_parity
from support.devices import DEVICE

CONFIG = ModelConfig(vocab_size=50, d_model=32, n_heads=2, n_encoder_layers=2, n_decoder_layers=2,
                     dim_feedforward=48, dropout=0.0, max_seq_len=40, n_classes=3, tie_embeddings=False)
FAMILIES = (EncoderDecoderModel, EncoderClassifier, DecoderOnlyLM)


def build(family, config=CONFIG):
    return family(config).to(DEVICE).eval()


def token_ids(batch, length):
    return torch.randint(3, CONFIG.vocab_size, (batch, length), device=DEVICE)  # 0 = pad, 1 = bos


def run(model, inputs):
    return model(*inputs) if isinstance(inputs, tuple) else model(**inputs)


def family_inputs(family):
    source, padding = token_ids(2, 9), torch.ones(2, 9, dtype=torch.bool, device=DEVICE)
    padding[1, 6:] = False
    if family is EncoderDecoderModel:
        return dict(input_ids=source, decoder_input_ids=token_ids(2, 7), attention_mask=padding)
    if family is DecoderOnlyLM:
        padding[1] = padding[1].flip(0)  # a left-padded prompt
    return dict(input_ids=source, attention_mask=padding)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.__name__)
def test_forward_matches_the_float64_reference(family, norm_first):
    config = dataclasses.replace(CONFIG, norm_first=norm_first, activation="gelu" if norm_first else "relu")
    model, inputs = build(family, config), family_inputs(family)
    with torch.no_grad():
        with kernels.record_backends() as ran:
            out = run(model, inputs)
        with kernels.use_backend("reference"):
            exact = run(copy.deepcopy(model).double(), inputs)
        with kernels.use_backend("torch"):
            baseline = run(model, inputs)  # plain PyTorch in float32: the error the pass rule allows for
    attention_calls = {EncoderDecoderModel: 2 + 2 * 2, EncoderClassifier: 2, DecoderOnlyLM: 2}[family]
    embeddings = 2 if family is EncoderDecoderModel else 1
    assert ran == ["triton"] * (attention_calls + embeddings)
    assert torch.isfinite(out).all()
    assert_parity(out, exact, baseline)


def test_the_families_share_one_block_and_one_attention_class():
    models = [build(family) for family in FAMILIES]
    blocks = [module for model in models for module in model.modules() if isinstance(module, Block)]
    assert len(blocks) == 2 + 2 + 2 + 2 and {type(block) for block in blocks} == {Block}
    attention_types = {type(m) for model in models for m in model.modules() if "attention" in type(m).__name__.lower()}
    assert attention_types == {Attention}
    decoder_blocks = models[0].decoder.blocks
    assert all(block.cross_attention is not None for block in decoder_blocks)
    assert all(block.cross_attention is None for block in [*models[0].encoder.blocks, *models[2].decoder.blocks])


def test_classifier_padded_batch_equals_each_row_alone():
    model = build(EncoderClassifier)
    lengths = (9, 4, 6)
    rows = [token_ids(1, n) for n in lengths]
    batch = torch.zeros(3, 9, dtype=torch.long, device=DEVICE)  # padded with pad_token_id 0
    mask = torch.zeros(3, 9, dtype=torch.int64, device=DEVICE)  # 1 = real, as Hugging Face
    for i, (row, n) in enumerate(zip(rows, lengths)):
        batch[i, :n], mask[i, :n] = row[0], 1
    with torch.no_grad():
        together = model(batch, attention_mask=mask)
        alone = torch.cat([model(row) for row in rows])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        ignoring_padding = model(batch)
    assert not torch.allclose(ignoring_padding[1:], alone[1:], atol=1e-3)  # the mask really matters


def test_decoder_left_padding_gives_each_row_its_unpadded_logits():
    model = build(DecoderOnlyLM)
    short, long = token_ids(1, 5), token_ids(1, 8)
    batch = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long, device=DEVICE), short], 1), long])
    mask = torch.ones(2, 8, dtype=torch.bool, device=DEVICE)
    mask[0, :3] = False
    with torch.no_grad():
        together = model(batch, attention_mask=mask)
        torch.testing.assert_close(together[0, 3:], model(short)[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(together[1], model(long)[0], atol=1e-5, rtol=1e-5)


def test_encoder_decoder_source_padding_matches_the_unpadded_source():
    model = build(EncoderDecoderModel)
    source, target = token_ids(1, 6), token_ids(2, 5)
    padded = torch.cat([source, torch.zeros(1, 4, dtype=torch.long, device=DEVICE)], 1).expand(2, 10)
    mask = torch.tensor([[1] * 6 + [0] * 4] * 2, device=DEVICE)
    with torch.no_grad():
        together = model(padded, target, attention_mask=mask)
        alone = model(source.expand(2, 6), target)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", [DecoderOnlyLM, EncoderDecoderModel], ids=lambda f: f.__name__)
def test_cached_steps_give_the_full_forward_logits(family):
    """Prefill 5 tokens, then 3 at once (a bottom-right causal mask over the cache), then 1 at a time."""
    model, tokens = build(family), token_ids(2, 11)
    with torch.no_grad():
        if family is DecoderOnlyLM:
            full, cache = model(tokens), model.new_cache(2, max_len=11)

            def step(chunk):
                return model(chunk, cache=cache)
        else:
            source = token_ids(2, 7)
            memory, cache = model.encode(source), model.new_cache(2, memory_len=7, max_len=11)
            full = model.decode(tokens, memory)

            def step(chunk):
                return model.decode(chunk, memory, cache=cache)
        pieces = [step(tokens[:, :5]), step(tokens[:, 5:8])] + [step(tokens[:, i:i + 1]) for i in range(8, 11)]
    assert cache.length == 11
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


def test_a_cropped_cache_decodes_the_same_logits_again():
    model, tokens = build(DecoderOnlyLM), token_ids(2, 8)
    cache = model.new_cache(2, max_len=8)
    with torch.no_grad():
        model(tokens[:, :5], cache=cache)
        first = model(tokens[:, 5:], cache=cache)
        cache.crop(5)
        again = model(tokens[:, 5:], cache=cache)
    assert cache.length == 8
    torch.testing.assert_close(again, first, atol=0, rtol=0)
    with pytest.raises(ValueError, match=r"length must be an int in \[0, 8\]"):
        cache.crop(9)


def test_a_decoding_step_reads_keys_from_the_cache_buffer_without_copying(monkeypatch):
    model, tokens = build(DecoderOnlyLM), token_ids(1, 6)
    cache = model.new_cache(1, max_len=8)
    seen = []

    def spy(q, k, v, **kwargs):
        seen.append((k.untyped_storage().data_ptr(), v.untyped_storage().data_ptr(), k.size(2)))
        return kernels.attention(q, k, v, **kwargs)

    with torch.no_grad():
        model(tokens, cache=cache)
        monkeypatch.setattr(attention_module, "attention", spy)
        model(token_ids(1, 1), cache=cache)
    buffers = [(b.self_attention.k.untyped_storage().data_ptr(), b.self_attention.v.untyped_storage().data_ptr())
               for b in cache.blocks]
    assert [(k, v) for k, v, _ in seen] == buffers and all(n == 7 for *_, n in seen)


def test_state_dict_round_trip_keeps_outputs_and_tied_weights():
    config = dataclasses.replace(CONFIG, tie_embeddings=True)
    original, copy_ = build(DecoderOnlyLM, config), build(DecoderOnlyLM, config)
    assert copy_.lm_head.weight is copy_.embedding.weight
    copy_.load_state_dict(original.state_dict())
    assert copy_.lm_head.weight is copy_.embedding.weight
    tokens = token_ids(2, 6)
    with torch.no_grad():
        torch.testing.assert_close(copy_(tokens), original(tokens), atol=0, rtol=0)


def test_training_mode_applies_dropout_and_backpropagates():
    config = dataclasses.replace(CONFIG, dropout=0.2)
    model = build(EncoderClassifier, config).train()
    tokens = token_ids(2, 5)
    first, second = model(tokens), model(tokens)
    assert not torch.equal(first, second)
    first.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("changes, error, message", [
    (dict(d_model=30, n_heads=4), ValueError, "divisible by n_heads"),
    (dict(activation="swish"), ValueError, "activation"),
    (dict(dropout=1.0), ValueError, "dropout"),
    (dict(pad_token_id=50), ValueError, "pad_token_id"),
    (dict(vocab_size=0), ValueError, "vocab_size"),
    (dict(n_classes=1), ValueError, "n_classes"),
    (dict(d_model=1024, n_heads=2), ValueError, "head_dim"),
])
def test_bad_config_is_named(changes, error, message):
    with pytest.raises(error, match=message):
        dataclasses.replace(CONFIG, **changes)


def test_families_reject_configs_missing_their_parts():
    with pytest.raises(ValueError, match="n_classes"):
        EncoderClassifier(ModelConfig(vocab_size=10, d_model=32, n_heads=2, n_classes=None))
    with pytest.raises(ValueError, match="n_decoder_layers"):
        DecoderOnlyLM(ModelConfig(vocab_size=10, d_model=32, n_heads=2, n_decoder_layers=0))


@pytest.mark.parametrize("inputs, error, message", [
    (dict(input_ids=torch.ones(2, 5)), TypeError, "input_ids must be an int64 or int32"),
    (dict(input_ids=torch.ones(5, dtype=torch.long)), ValueError, r"input_ids must have shape \(batch, seq\)"),
    (dict(input_ids=torch.ones(1, 41, dtype=torch.long)), ValueError, "max_seq_len=40"),
    (dict(input_ids=torch.full((1, 5), 50)), IndexError, "vocab_size=50"),
    (dict(input_ids=torch.ones(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 4)), TypeError, "attention_mask"),
    (dict(input_ids=torch.ones(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 4, dtype=torch.bool)),
     ValueError, r"attention_mask must have shape \(batch, keys\) = \(2, 5\)"),
])
def test_bad_inputs_are_named(inputs, error, message):
    model = build(DecoderOnlyLM)
    inputs = {name: value.to(DEVICE) for name, value in inputs.items()}
    with pytest.raises(error, match=message):
        model(**inputs)


def test_a_full_cache_refuses_more_tokens():
    model = build(DecoderOnlyLM)
    cache = model.new_cache(1, max_len=4)
    with torch.no_grad():
        model(token_ids(1, 3), cache=cache)
        with pytest.raises(ValueError, match="KV cache holds 4 positions: 3 filled"):
            model(token_ids(1, 2), cache=cache)
