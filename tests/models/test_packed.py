"""Packed batches in kernels.models (cu_seqlens or restarting position_ids): each sequence gives the
logits and gradients it gives alone in a padded batch, through kernels.varlen_attention on every backend
(the triton one: its varlen kernel); bad packing gets a clear error."""
import itertools

import pytest
import torch

import kernels
import kernels.models.attention as attention_module
from kernels.models import DecoderOnlyLM, EncoderClassifier, EncoderDecoderModel, ModelConfig
from kernels.shared.backends import resolve_backend
from support.devices import DEVICE

CONFIG = ModelConfig(vocab_size=50, d_model=32, n_heads=2, n_encoder_layers=2, n_decoder_layers=2,
                     dim_feedforward=48, dropout=0.0, max_seq_len=40, n_classes=3, tie_embeddings=False)
LENGTHS = [5, 1, 11, 7]
BACKENDS = ["torch", "reference", pytest.param("triton", marks=pytest.mark.skipif(
    resolve_backend(None, torch.device(DEVICE)) != "triton", reason="the triton backend does not run here"))]


# The triton backend runs float32 models (its positional-encoding kernel takes no float64); a token
# attending across a sequence boundary changes the logits by far more than float32 rounding.
DTYPES = {"torch": torch.float64, "reference": torch.float64, "triton": torch.float32}
TOLERANCES = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-4, atol=1e-5)}
GRADIENT_TOLERANCES = {torch.float64: dict(rtol=1e-9, atol=1e-12), torch.float32: dict(rtol=1e-3, atol=1e-5)}


def build(family, dtype=torch.float64) -> torch.nn.Module:
    return family(CONFIG).to(device=DEVICE, dtype=dtype)


def sequences() -> list[torch.Tensor]:
    return [torch.randint(3, CONFIG.vocab_size, (length,), device=DEVICE) for length in LENGTHS]


def cu_seqlens(lengths) -> torch.Tensor:
    return torch.tensor(list(itertools.accumulate(lengths, initial=0)), dtype=torch.int32, device=DEVICE)


def packed(ids: list[torch.Tensor], by: str) -> dict:
    input_ids = torch.cat(ids)[None]
    if by == "cu_seqlens":
        return dict(input_ids=input_ids, cu_seqlens=cu_seqlens(LENGTHS))
    positions = torch.cat([torch.arange(len(each), device=DEVICE) for each in ids])[None]
    return dict(input_ids=input_ids, position_ids=positions)


def padded(ids: list[torch.Tensor]) -> dict:
    """Right padding, with the padding mask."""
    input_ids = torch.zeros(len(ids), max(LENGTHS), dtype=torch.long, device=DEVICE)
    attention_mask = torch.zeros_like(input_ids, dtype=torch.bool)
    for row, each in enumerate(ids):
        input_ids[row, :len(each)], attention_mask[row, :len(each)] = each, True
    return dict(input_ids=input_ids, attention_mask=attention_mask)


def real_tokens_of_padded(logits: torch.Tensor) -> torch.Tensor:
    """(B, N, vocab) of a right-padded batch -> (total, vocab), the real tokens in packed order."""
    return torch.cat([logits[row, :length] for row, length in enumerate(LENGTHS)])


def gradients(model) -> dict:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.fixture
def varlen_calls(monkeypatch) -> list[int]:
    calls = []
    original = attention_module.varlen_attention

    def counting(q, *args, **kwargs):
        calls.append(q.size(0))
        return original(q, *args, **kwargs)

    monkeypatch.setattr(attention_module, "varlen_attention", counting)
    return calls


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("by", ["cu_seqlens", "position_ids"])
def test_decoder_packed_batch_matches_the_padded_batch(by, backend, varlen_calls):
    """Logits of every real token and the gradients of a loss over them, in float64 (float32 on triton): a
    token attending across a sequence boundary (or seeing a later token) would change both far above rounding."""
    dtype = DTYPES[backend]
    model, ids = build(DecoderOnlyLM, dtype), sequences()
    weights = torch.randn(sum(LENGTHS), CONFIG.vocab_size, device=DEVICE, dtype=dtype)
    with kernels.use_backend(backend):
        model.zero_grad()
        logits = model(**packed(ids, by))[0]  # (total, vocab)
        (logits * weights).sum().backward()
        from_packed = gradients(model)
        assert varlen_calls == [sum(LENGTHS)] * CONFIG.n_decoder_layers
        model.zero_grad()
        want = real_tokens_of_padded(model(**padded(ids)))
        (want * weights).sum().backward()
    torch.testing.assert_close(logits, want, **TOLERANCES[dtype])
    for name, gradient in gradients(model).items():
        torch.testing.assert_close(from_packed[name], gradient, **GRADIENT_TOLERANCES[dtype],
                                   msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("by", ["cu_seqlens", "position_ids"])
def test_classifier_packed_batch_gives_one_row_per_sequence(by, varlen_calls):
    model, ids = build(EncoderClassifier), sequences()
    with kernels.use_backend("torch"):
        got = model(**packed(ids, by))
        want = model(**padded(ids))
    assert got.shape == (len(LENGTHS), CONFIG.n_classes)
    assert varlen_calls == [sum(LENGTHS)] * CONFIG.n_encoder_layers
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


SOURCE_LENGTHS, TARGET_LENGTHS = [6, 1, 11, 4], [3, 7, 1, 9]  # pair b: source b, target b


def right_padded(ids: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, longest), attention_mask (B, longest)) of right-padded sequences."""
    input_ids = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long, device=DEVICE)
    attention_mask = torch.zeros_like(input_ids, dtype=torch.bool)
    for row, each in enumerate(ids):
        input_ids[row, :len(each)], attention_mask[row, :len(each)] = each, True
    return input_ids, attention_mask


@pytest.mark.parametrize("backend", BACKENDS)
def test_encoder_decoder_packed_batch_matches_the_padded_batch(backend, varlen_calls):
    """Packed sources (cu_seqlens) and targets (position_ids): every target token's logits and the
    gradients of a loss over them equal the padded batch's (through torch SDPA), so each target attends
    causally to itself and, across, to its own source only."""
    dtype = DTYPES[backend]
    model = build(EncoderDecoderModel, dtype)
    sources = [torch.randint(3, CONFIG.vocab_size, (n,), device=DEVICE) for n in SOURCE_LENGTHS]
    targets = [torch.randint(3, CONFIG.vocab_size, (n,), device=DEVICE) for n in TARGET_LENGTHS]
    target_positions = torch.cat([torch.arange(n, device=DEVICE) for n in TARGET_LENGTHS])[None]
    weights = torch.randn(sum(TARGET_LENGTHS), CONFIG.vocab_size, device=DEVICE, dtype=dtype)
    source_ids, source_mask = right_padded(sources)
    target_ids, _ = right_padded(targets)
    with kernels.use_backend(backend):
        model.zero_grad()
        logits = model(torch.cat(sources)[None], torch.cat(targets)[None], cu_seqlens=cu_seqlens(SOURCE_LENGTHS),
                       decoder_position_ids=target_positions)[0]  # (total targets, vocab)
        (logits * weights).sum().backward()
        from_packed = gradients(model)
        layers = CONFIG.n_encoder_layers + 2 * CONFIG.n_decoder_layers  # the decoder: self and cross
        assert sorted(varlen_calls) == sorted([sum(SOURCE_LENGTHS)] * CONFIG.n_encoder_layers
                                              + [sum(TARGET_LENGTHS)] * 2 * CONFIG.n_decoder_layers)
        assert len(varlen_calls) == layers
    with kernels.use_backend("torch"):  # the padded batch through torch SDPA: the expectation
        model.zero_grad()
        padded_logits = model(source_ids, target_ids, source_mask)
        want = torch.cat([padded_logits[row, :n] for row, n in enumerate(TARGET_LENGTHS)])
        (want * weights).sum().backward()
    torch.testing.assert_close(logits, want, **TOLERANCES[dtype])
    for name, gradient in gradients(model).items():
        torch.testing.assert_close(from_packed[name], gradient, **GRADIENT_TOLERANCES[dtype],
                                   msg=lambda m: f"{name}: {m}")


def test_encoder_decoder_packing_names_the_side_at_fault():
    model = EncoderDecoderModel(CONFIG).to(DEVICE)
    source = torch.randint(3, CONFIG.vocab_size, (1, 8), device=DEVICE)
    target = torch.randint(3, CONFIG.vocab_size, (1, 5), device=DEVICE)
    with kernels.use_backend("torch"):
        with pytest.raises(ValueError, match=r"cuts both sides"):
            model(source, target, cu_seqlens=_int32([0, 3, 8]))
        with pytest.raises(ValueError, match=r"input_ids hold 2 sequences and decoder_input_ids 1"):
            model(source, target, cu_seqlens=_int32([0, 3, 8]), decoder_cu_seqlens=_int32([0, 5]))
        with pytest.raises(ValueError, match=r"decoder_cu_seqlens must end at decoder_input_ids.size\(1\) = 5"):
            model(source, target, cu_seqlens=_int32([0, 3, 8]), decoder_cu_seqlens=_int32([0, 2, 6]))


def _int32(values):
    return torch.tensor(values, dtype=torch.int32, device=DEVICE)


BAD_PACKING = {
    "both descriptions": (lambda b: dict(position_ids=torch.zeros_like(b["input_ids"])), ValueError,
                          r"pass one of cu_seqlens and position_ids"),
    "with a padding mask": (lambda b: dict(attention_mask=torch.ones_like(b["input_ids"])), ValueError,
                            r"pass attention_mask=None"),
    "several rows": (lambda b: dict(input_ids=b["input_ids"].expand(2, -1)), ValueError, r"input_ids \(1, total\)"),
    "int64 offsets": (lambda b: dict(cu_seqlens=b["cu_seqlens"].long()), TypeError, r"cu_seqlens must have dtype"),
    "offsets past the end": (lambda b: dict(cu_seqlens=_int32([0, 5, 30])), ValueError,
                             r"cu_seqlens must end at input_ids.size\(1\) = 24, got 30"),
    "decreasing offsets": (lambda b: dict(cu_seqlens=_int32([0, 9, 5, 24])), ValueError, r"non-decreasing"),
    "a sequence over max_seq_len": (lambda b: dict(input_ids=torch.ones(1, 45, dtype=torch.long, device=DEVICE),
                                                   cu_seqlens=_int32([0, 2, 45])), ValueError,
                                    r"the longest packed sequence is 43 positions, more than the model's max_seq_len"),
    "float position_ids": (lambda b: dict(cu_seqlens=None, position_ids=torch.zeros(1, 24, device=DEVICE)),
                           TypeError, r"position_ids must be an integer tensor"),
    "position_ids of another shape": (lambda b: dict(cu_seqlens=None, position_ids=torch.arange(24)[None, :20]),
                                      ValueError, r"position_ids must have the packed input_ids' shape \(1, 24\)"),
    "position_ids not restarting at 0": (
        lambda b: dict(cu_seqlens=None, position_ids=torch.cat([torch.arange(1, 13), torch.arange(12)])[None]),
        ValueError, r"must restart at 0"),
}


@pytest.mark.parametrize("case", list(BAD_PACKING))
def test_bad_packing_gets_a_clear_error(case):
    batch = packed(sequences(), "cu_seqlens")
    spoil, error, message = BAD_PACKING[case]
    batch.update(spoil(batch))
    batch = {name: value.to(DEVICE) if isinstance(value, torch.Tensor) else value for name, value in batch.items()}
    with kernels.use_backend("torch"), pytest.raises(error, match=message):
        DecoderOnlyLM(CONFIG).to(DEVICE)(**batch)


def test_a_packed_batch_with_a_cache_is_refused():
    model = DecoderOnlyLM(CONFIG).to(DEVICE)
    with kernels.use_backend("torch"), pytest.raises(ValueError, match=r"cache=None"):
        model(**packed(sequences(), "cu_seqlens"), cache=model.new_cache(1))
