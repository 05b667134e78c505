"""transformers' padding-free path (packed sequences, as DataCollatorWithFlattening builds them) with
attn_implementation="triton": the packed batch runs through kernels.varlen_attention on every backend
(the triton one: its varlen kernel), and gives the loss and gradients of the padded batch and of
transformers' own attention."""
import pytest
import torch

pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")

from transformers import DataCollatorWithFlattening  # noqa: E402

import kernels  # noqa: E402
import kernels.hf  # noqa: E402
import kernels.hf.attention  # noqa: E402
from kernels.hf.packing import packing_from_mask  # noqa: E402
from kernels.shared.backends import resolve_backend  # noqa: E402
from support.devices import DEVICE  # noqa: E402
from support.hf_tiny_models import PAD, TINY_MODELS, VOCAB  # noqa: E402

LENGTHS = [5, 9, 1, 7]  # a single-token sequence among them: it predicts nothing, and attends to itself
PACKED_MODELS = ["llama", "qwen2"]  # GQA decoders whose attention goes through AttentionInterface
TRITON_RUNS = resolve_backend(None, torch.device(DEVICE)) == "triton"
# Every model, packing and backend, except that the Triton interpreter (about 18 s a case on two cores)
# runs each model with one of the two packings: llama's position_ids, qwen2's cu_seq_lens.
TRAINING_CASES = [
    pytest.param(name, flash_kwargs, backend, id=f"{name}-{'cu_seq_lens' if flash_kwargs else 'position_ids'}-{backend}",
                 marks=pytest.mark.skipif(backend == "triton" and not TRITON_RUNS,
                                          reason="the triton backend does not run here"))
    for name in PACKED_MODELS for flash_kwargs in (False, True) for backend in ("torch", "reference", "triton")
    if backend != "triton" or flash_kwargs == (name == "qwen2")
]


def sequences() -> list[list[int]]:
    return [torch.randint(3, VOCAB, (length,)).tolist() for length in LENGTHS]


def packed_batch(ids: list[list[int]], flash_kwargs: bool) -> dict:
    """use_cache=False, as in training: transformers reads packing off position_ids only without a cache."""
    collate = DataCollatorWithFlattening(return_flash_attn_kwargs=flash_kwargs)
    batch = collate([{"input_ids": each} for each in ids])
    batch = {name: value.to(DEVICE) if isinstance(value, torch.Tensor) else value for name, value in batch.items()}
    return {**batch, "use_cache": False}


def padded_batch(ids: list[list[int]]) -> dict:
    """Right padding; the padded positions are ignored by the loss."""
    longest = max(map(len, ids))
    input_ids = torch.full((len(ids), longest), PAD)
    attention_mask = torch.zeros_like(input_ids)
    for row, each in enumerate(ids):
        input_ids[row, :len(each)] = torch.tensor(each)
        attention_mask[row, :len(each)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    return {"input_ids": input_ids.to(DEVICE), "attention_mask": attention_mask.to(DEVICE), "labels": labels.to(DEVICE)}


def model(name: str, attn_implementation: str) -> torch.nn.Module:
    return TINY_MODELS[name].build(attn_implementation).to(device=DEVICE, dtype=torch.float64)


def loss_and_gradients(net: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
    """The causal LM loss (next-token cross-entropy over the labels that are not -100), in float64:
    transformers' own loss would take it in float32."""
    net.zero_grad()
    labels = batch["labels"]
    logits = net(**{name: value for name, value in batch.items() if name != "labels"}).logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}


def assert_same_training_step(got: tuple, want: tuple) -> None:
    """Float64 models: a real difference (one token attending across a boundary) is many orders
    of magnitude above these tolerances."""
    torch.testing.assert_close(got[0], want[0], rtol=1e-10, atol=1e-12)
    assert got[1].keys() == want[1].keys()
    for name in want[1]:
        torch.testing.assert_close(got[1][name], want[1][name], rtol=1e-9, atol=1e-12, msg=lambda m: f"{name}: {m}")


@pytest.fixture
def varlen_calls(monkeypatch) -> list[int]:
    """The number of tokens of each varlen_attention call the HF attention function makes."""
    calls = []
    original = kernels.hf.attention.varlen_attention

    def counting(q, *args, **kwargs):
        calls.append(q.size(0))
        return original(q, *args, **kwargs)

    monkeypatch.setattr(kernels.hf.attention, "varlen_attention", counting)
    return calls


@pytest.mark.parametrize("name, flash_kwargs, backend", TRAINING_CASES)
def test_packed_batch_trains_like_the_padded_batch_and_like_transformers(name, flash_kwargs, backend, varlen_calls):
    ids = sequences()
    ours = model(name, "triton")
    with kernels.use_backend(backend), kernels.record_backends() as ran:
        packed = loss_and_gradients(ours, packed_batch(ids, flash_kwargs))
    layers = ours.config.num_hidden_layers
    assert varlen_calls == [sum(LENGTHS)] * layers and ran == [backend] * layers
    with kernels.use_backend(backend):
        padded = loss_and_gradients(ours, padded_batch(ids))
    assert_same_training_step(packed, padded)
    # transformers' own sdpa attention on the packed batch (its block-diagonal mask); its eager path
    # takes the softmax in float32, which would hide a float64 comparison behind float32 rounding
    assert_same_training_step(packed, loss_and_gradients(model(name, "sdpa"), packed_batch(ids, False)))


def test_incomplete_flash_kwargs_are_refused():
    batch = packed_batch(sequences(), flash_kwargs=True)
    del batch["max_length_k"]
    with kernels.use_backend("torch"), torch.no_grad(), pytest.raises(ValueError, match=r"without \['max_length_k'\]"):
        model("llama", "triton")(**batch)


def block_diagonal_causal(lengths: list[int]) -> torch.Tensor:
    return torch.block_diag(*(torch.ones(n, n, dtype=torch.bool).tril() for n in lengths))


def test_the_block_diagonal_causal_mask_is_read_as_packing():
    mask = torch.stack([block_diagonal_causal([3, 1, 4]), block_diagonal_causal([8])])[:, None]  # (2, 1, 8, 8)
    packing = packing_from_mask(mask)
    assert packing.cu_seqlens_q.tolist() == [0, 3, 4, 8, 16] and packing.max_seqlen_q == 8 and packing.causal
    assert packing_from_mask(mask) is packing  # cached for the next layers
    with torch.inference_mode():  # an inference tensor has no version counter: read, never cached
        frozen = mask.clone()
    assert packing_from_mask(frozen).cu_seqlens_q.tolist() == [0, 3, 4, 8, 16]


def test_other_masks_are_not_read_as_packing():
    plain_causal = block_diagonal_causal([6])[None, None]  # one sequence per row: no packing
    assert packing_from_mask(plain_causal) is None
    leaking = block_diagonal_causal([3, 3])
    leaking[4, 1] = True  # one token sees into the previous sequence
    assert packing_from_mask(leaking[None, None]) is None
    changed = block_diagonal_causal([3, 3])[None, None]
    assert packing_from_mask(changed) is not None
    changed[0, 0, 3, 2] = True  # edited in place after it was read: read again
    assert packing_from_mask(changed) is None
