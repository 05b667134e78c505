"""generate(): the KV cache gives exactly the tokens of generation without it (greedy and sampled),
the reference backend gives the same tokens, eos stops rows, and bad options get clear errors."""
import dataclasses

import pytest
import torch

import kernels
from kernels.models import DecoderOnlyLM, EncoderClassifier, EncoderDecoderModel, ModelConfig, generate
from kernels.models.generation import sample
from support.devices import DEVICE

# One layer per stack: generation's cache handling is per layer (tests/models/test_models.py runs two).
CONFIG = ModelConfig(vocab_size=50, d_model=32, n_heads=2, n_encoder_layers=1, n_decoder_layers=1,
                     dim_feedforward=48, dropout=0.0, max_seq_len=24, tie_embeddings=False)
GENERATIVE = (DecoderOnlyLM, EncoderDecoderModel)


def build(family):
    return family(CONFIG).to(DEVICE).eval()


def prompt(batch=2, length=6):
    return torch.randint(3, CONFIG.vocab_size, (batch, length), device=DEVICE)


def seeded(seed):
    return torch.Generator(DEVICE).manual_seed(seed)


def new_tokens(model, tokens, input_ids):
    return tokens[:, input_ids.size(1):] if isinstance(model, DecoderOnlyLM) else tokens[:, 1:]


@pytest.mark.parametrize("family", GENERATIVE, ids=lambda f: f.__name__)
def test_greedy_with_and_without_the_cache_gives_the_same_tokens(family):
    model, input_ids = build(family), prompt()
    with kernels.record_backends() as ran:
        cached = model.generate(input_ids, 8)
    uncached = generate(model, input_ids, 8, use_cache=False)
    assert set(ran) == {"triton"}
    expected_length = input_ids.size(1) + 8 if family is DecoderOnlyLM else 1 + 8
    assert cached.shape == (2, expected_length) and cached.dtype == torch.long
    torch.testing.assert_close(cached, uncached, atol=0, rtol=0)
    with torch.no_grad():  # each new token is the argmax of the full forward's logits at the position before it
        if family is DecoderOnlyLM:
            torch.testing.assert_close(cached[:, :6], input_ids, atol=0, rtol=0)
            argmax = model(cached[:, :-1]).argmax(dim=-1)[:, 5:]
        else:
            assert (cached[:, 0] == CONFIG.bos_token_id).all()
            argmax = model(input_ids, cached[:, :-1]).argmax(dim=-1)
    torch.testing.assert_close(new_tokens(model, cached, input_ids), argmax, atol=0, rtol=0)


@pytest.mark.parametrize("family", GENERATIVE, ids=lambda f: f.__name__)
def test_sampling_with_and_without_the_cache_gives_the_same_tokens(family):
    model, input_ids = build(family), prompt()
    options = dict(do_sample=True, temperature=1.5, top_k=10)
    cached = model.generate(input_ids, 6, generator=seeded(3), **options)
    uncached = model.generate(input_ids, 6, generator=seeded(3), use_cache=False, **options)
    torch.testing.assert_close(cached, uncached, atol=0, rtol=0)
    greedy = model.generate(input_ids, 6)
    assert not torch.equal(cached, greedy)  # hot sampling leaves the greedy path (odds of not: ~0)


def test_top_k_one_is_greedy_and_top_k_limits_the_choices():
    model, input_ids = build(DecoderOnlyLM), prompt()
    sampled = model.generate(input_ids, 6, do_sample=True, top_k=1, temperature=3.0, generator=seeded(0))
    torch.testing.assert_close(sampled, model.generate(input_ids, 6), atol=0, rtol=0)
    logits = torch.randn(4, 50, device=DEVICE)
    draws = torch.stack([sample(logits, 5.0, 3, seeded(i)) for i in range(30)], dim=1)  # (4, 30)
    top3 = logits.topk(3, dim=-1).indices
    assert all(set(row.tolist()) <= set(allowed.tolist()) for row, allowed in zip(draws, top3))


@pytest.mark.parametrize("family", GENERATIVE, ids=lambda f: f.__name__)
def test_reference_backend_generates_the_same_tokens(family):
    model, input_ids = build(family), prompt()
    ours = model.generate(input_ids, 6)
    with kernels.use_backend("reference"), kernels.record_backends() as ran:
        expected = model.generate(input_ids, 6)
    assert set(ran) == {"reference"}
    torch.testing.assert_close(ours, expected, atol=0, rtol=0)


def test_left_padded_prompts_generate_what_each_prompt_generates_alone():
    model = build(DecoderOnlyLM)
    short, long = prompt(1, 3), prompt(1, 7)
    batch = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long, device=DEVICE), short], 1), long])
    mask = torch.ones(2, 7, dtype=torch.long, device=DEVICE)
    mask[0, :4] = 0
    together = model.generate(batch, 5, attention_mask=mask)
    torch.testing.assert_close(together[0, 4:], model.generate(short, 5)[0], atol=0, rtol=0)
    torch.testing.assert_close(together[1], model.generate(long, 5)[0], atol=0, rtol=0)
    uncached = model.generate(batch, 5, attention_mask=mask, use_cache=False)
    torch.testing.assert_close(uncached, together, atol=0, rtol=0)


@pytest.mark.parametrize("use_cache", [True, False])
def test_right_padded_prompts_continue_after_their_last_real_token(use_cache):
    model = build(DecoderOnlyLM)
    short, long = prompt(1, 3), prompt(1, 7)
    batch = torch.cat([torch.cat([short, torch.zeros(1, 4, dtype=torch.long, device=DEVICE)], 1), long])
    mask = torch.ones(2, 7, dtype=torch.long, device=DEVICE)
    mask[0, 3:] = 0
    together = model.generate(batch, 5, attention_mask=mask, use_cache=use_cache)
    torch.testing.assert_close(together[:, :7], batch, atol=0, rtol=0)  # the prompt, pads where they were
    torch.testing.assert_close(together[0, 7:], model.generate(short, 5)[0, 3:], atol=0, rtol=0)
    torch.testing.assert_close(together[1], model.generate(long, 5)[0], atol=0, rtol=0)


def test_a_prompt_row_without_real_tokens_is_refused():
    mask = torch.ones(2, 6, dtype=torch.long, device=DEVICE)
    mask[1] = 0
    with pytest.raises(ValueError, match=r"attention_mask rows \[1\] have no real token"):
        build(DecoderOnlyLM).generate(prompt(), 3, attention_mask=mask)


def test_a_padded_source_generates_what_the_unpadded_source_generates():
    model, source = build(EncoderDecoderModel), prompt(1, 4)
    padded = torch.cat([source, torch.zeros(1, 3, dtype=torch.long, device=DEVICE)], 1)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0]], device=DEVICE)
    torch.testing.assert_close(model.generate(padded, 5, attention_mask=mask), model.generate(source, 5),
                               atol=0, rtol=0)


def test_eos_stops_a_row_and_pads_it():
    model, input_ids = build(DecoderOnlyLM), prompt()
    free = model.generate(input_ids, 8)
    eos = int(free[0, 6 + 2])  # row 0's third new token
    stopped = model.generate(input_ids, 8, eos_token_id=eos)
    row0 = stopped[0, 6:].tolist()
    first = row0.index(eos)
    assert first <= 2 and all(t == CONFIG.pad_token_id for t in row0[first + 1:])
    if eos not in free[1, 6:].tolist():
        torch.testing.assert_close(stopped[1], free[1, :stopped.size(1)], atol=0, rtol=0)
    assert stopped.size(1) <= free.size(1)


def test_zero_new_tokens_returns_the_prompt():
    model, input_ids = build(DecoderOnlyLM), prompt()
    torch.testing.assert_close(model.generate(input_ids, 0), input_ids, atol=0, rtol=0)


@pytest.mark.parametrize("options, error, message", [
    (dict(max_new_tokens=-1), ValueError, "max_new_tokens"),
    (dict(max_new_tokens=19), ValueError, "input_ids \\+ max_new_tokens is 25 positions"),
    (dict(temperature=0.0), ValueError, "temperature"),
    (dict(temperature=float("nan")), ValueError, "temperature"),
    (dict(top_k=0), ValueError, "top_k"),
    (dict(top_k=2.5), ValueError, "top_k"),
    (dict(generator=0), TypeError, "generator must be a torch.Generator"),
    (dict(do_sample="yes"), TypeError, "do_sample"),
    (dict(attention_mask=torch.ones(2, 5, dtype=torch.bool)), ValueError, "attention_mask must have shape"),
    (dict(input_ids=torch.randn(2, 6)), TypeError, "input_ids must be an int64 or int32"),
])
def test_bad_options_are_named(options, error, message):
    model = build(DecoderOnlyLM)
    arguments = dict(input_ids=prompt(), max_new_tokens=4)
    arguments.update({k: v.to(DEVICE) if isinstance(v, torch.Tensor) else v for k, v in options.items()})
    with pytest.raises(error, match=message):
        generate(model, **arguments)


def test_encoder_decoder_length_limit_and_non_generative_models():
    with pytest.raises(ValueError, match="1 \\+ max_new_tokens is 25"):
        build(EncoderDecoderModel).generate(prompt(), 24)
    classifier = EncoderClassifier(dataclasses.replace(CONFIG, n_classes=2))
    with pytest.raises(TypeError, match="DecoderOnlyLM or EncoderDecoderModel, got EncoderClassifier"):
        generate(classifier, prompt(), 2)
