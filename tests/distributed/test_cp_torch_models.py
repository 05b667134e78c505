"""kd.context_parallel on models of torch modules patched by kernels.replace_attention: an
nn.TransformerEncoder language model (key padding or causal) and the course's attention with its
PositionalEncoder. The sharded run's outputs and every parameter gradient (all-reduced) equal the
single-device run of the same patched model; modules that would silently see only their shard, and
calls a shard cannot compute, are refused."""
import pytest
import torch
import torch.distributed as dist
from torch import nn

import kernels
import reference
from kernels import distributed as kd

VOCAB, WIDTH, HEADS = 40, 32, 2


class TorchEncoderLM(nn.Module):
    """Token embedding, the fused positional encoding, torch's encoder, a vocabulary head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.positions = kernels.PositionalEncoder(WIDTH, max_seq_length=64)
        layer = nn.TransformerEncoderLayer(WIDTH, HEADS, dim_feedforward=48, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, ids, padding=None, causal=False):
        x = self.positions(self.embed(ids))
        return self.head(self.encoder(x, src_key_padding_mask=padding, is_causal=causal))


class CourseEncoderLayer(nn.Module):
    """The course's building blocks: its positional encoder and attention (mask == 0 masks out)."""

    def __init__(self):
        super().__init__()
        self.positions = reference.PositionalEncoder(WIDTH, 64)
        self.attention = reference.MultiHeadAttention(WIDTH, HEADS)

    def forward(self, x, mask=None):
        x = self.positions(x)
        return x + self.attention(x, x, x, mask)


def patched(model: nn.Module) -> nn.Module:
    kernels.replace_attention(model)
    for name, child in list(model.named_children()):  # the course's table-based encoder -> the fused one
        if type(child) is reference.PositionalEncoder:
            setattr(model, name, kernels.PositionalEncoder(WIDTH, 64))
    return model


def sharded_matches_single_device(model: nn.Module, inputs: dict, sharded_inputs: dict, layout: str, method: str,
                                  batch_first_dim: int = 1) -> None:
    generator = torch.Generator().manual_seed(7)
    expected = model(**inputs)
    weights = torch.randn(expected.shape, generator=generator)  # a loss whose gradient differs per position
    (expected * weights).sum().backward()
    expected_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()

    shard = lambda t: kd.shard_sequence(t, dim=batch_first_dim, layout=layout)  # noqa: E731
    with kernels.record_backends() as ran, kd.context_parallel(model, method=method, layout=layout):
        out = model(**sharded_inputs)
        (out * shard(weights)).sum().backward()
    assert "triton" in ran and "torch" not in ran
    torch.testing.assert_close(kd.unshard_sequence(out.detach(), dim=batch_first_dim, layout=layout),
                               expected.detach(), rtol=1e-4, atol=1e-4)
    for name, parameter in model.named_parameters():
        dist.all_reduce(parameter.grad)  # each rank holds its positions' share
        torch.testing.assert_close(parameter.grad, expected_grads[name], rtol=1e-3, atol=1e-4, msg=name)


def check_torch_encoder(rank: int, world_size: int, seed: int, method: str, layout: str, causal: bool) -> None:
    torch.manual_seed(seed)
    model = patched(TorchEncoderLM())
    n = 4 * world_size
    ids = torch.randint(1, VOCAB, (2, n))
    padding = None
    if not causal:
        padding = torch.zeros(2, n, dtype=torch.bool)
        padding[1, n - n // 2 - 1:] = True  # right padding across a shard boundary (True = pad, torch's way)
    shard = lambda t: None if t is None else kd.shard_sequence(t, dim=1, layout=layout)  # noqa: E731
    sharded_matches_single_device(model, dict(ids=ids, padding=padding, causal=causal),
                                  dict(ids=shard(ids), padding=shard(padding), causal=causal), layout, method)


def check_course_attention(rank: int, world_size: int, seed: int, method: str, layout: str) -> None:
    torch.manual_seed(seed)
    model = patched(CourseEncoderLayer())
    n = 4 * world_size
    x = torch.randn(2, n, WIDTH)
    mask = torch.ones(2, 1, 1, n, dtype=torch.int64)
    mask[0, ..., n // 2 + 1:] = 0  # the course's convention: 0 masks a key out
    local_mask = kd.shard_sequence(mask, dim=3, layout=layout)
    sharded_matches_single_device(model, dict(x=x, mask=mask),
                                  dict(x=kd.shard_sequence(x, dim=1, layout=layout), mask=local_mask), layout, method)


@pytest.mark.parametrize("method, layout, causal", [("ring", "zigzag", True), ("allgather", "contiguous", False),
                                                    ("ulysses", "zigzag", False)])
def test_replace_attention_transformer_encoder(ranks, worker_seed, method, layout, causal):
    ranks.run(2, check_torch_encoder, worker_seed, method, layout, causal, timeout_s=300)


def test_replace_attention_course_modules(ranks, worker_seed):
    ranks.run(2, check_course_attention, worker_seed, "ring", "zigzag", timeout_s=300)


# --- refusals: checked before any communication, so no process group is needed ---------------------------


@pytest.fixture
def single_rank(monkeypatch):
    monkeypatch.setattr(kd.model, "group_info", lambda group: None)


@pytest.mark.parametrize("module, message", [
    (nn.MultiheadAttention(WIDTH, HEADS), "torch's nn.MultiheadAttention: call kernels.replace_attention"),
    (reference.MultiHeadAttention(WIDTH, HEADS), "the course's reference MultiHeadAttention"),
    (reference.PositionalEncoder(WIDTH, 64), "the course's reference PositionalEncoder"),
])
def test_modules_that_would_see_only_their_shard_are_refused(single_rank, module, message):
    with pytest.raises(ValueError, match=message):
        with kd.context_parallel(nn.Sequential(module)):
            pass


def test_calls_a_shard_cannot_compute_are_refused(single_rank):
    attention = kernels.MultiheadAttention(WIDTH, HEADS, batch_first=True)
    course = kernels.MultiHeadAttention(WIDTH, HEADS)
    positions = kernels.PositionalEncoder(WIDTH, 64)
    x, other = torch.randn(2, 4, WIDTH), torch.randn(2, 4, WIDTH)
    with kd.context_parallel(nn.ModuleList([attention, course, positions])):
        with pytest.raises(ValueError, match="query, key and value must be one tensor"):
            attention(x, other, other, need_weights=False)
        with pytest.raises(ValueError, match="need_weights=False"):
            attention(x, x, x)
        with pytest.raises(ValueError, match="is_causal=True, not a general attn_mask"):
            attention(x, x, x, need_weights=False, attn_mask=torch.zeros(4, 4, dtype=torch.bool))
        bias = torch.zeros(2, 4).index_fill_(1, torch.tensor([1]), -1.5)
        with pytest.raises(ValueError, match="float key_padding_mask only as 0"):
            attention(x, x, x, need_weights=False, key_padding_mask=bias)
        with pytest.raises(ValueError, match="query, key and value must be one tensor"):
            course(x, other, other)
        with pytest.raises(ValueError, match="the course's mask only as key padding"):
            course(x, x, x, torch.ones(2, 1, 4, 4))
        with pytest.raises(ValueError, match="pass neither position_offset nor position_ids"):
            positions(x, position_offset=3)
