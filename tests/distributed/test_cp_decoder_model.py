"""kd.context_parallel on DecoderOnlyLM: logits and every parameter gradient of a sharded run equal
the single-device run on the whole sequence (positions from the global index, left padding counted
over the whole sequence)."""
import pytest
import torch
import torch.distributed as dist

import kernels
from kernels import distributed as kd


def tiny_model(seed: int) -> kernels.DecoderOnlyLM:
    torch.manual_seed(seed)
    config = kernels.ModelConfig(vocab_size=40, d_model=32, n_heads=2, n_decoder_layers=2, dim_feedforward=48,
                                 dropout=0.0, max_seq_len=64)
    return kernels.DecoderOnlyLM(config)


def check_decoder(rank: int, world_size: int, seed: int, method: str, layout: str, padded: bool) -> None:
    model = tiny_model(seed)
    generator = torch.Generator().manual_seed(seed)
    n = 4 * world_size
    ids = torch.randint(2, 40, (2, n), generator=generator)
    mask = None
    if padded:
        mask = torch.ones(2, n, dtype=torch.bool)
        mask[0, : n // 2 + 1] = False  # left padding across a shard boundary
        ids[~mask] = 0
    weights = torch.randn(2, n, 40, generator=generator)  # a loss whose gradient differs per token

    expected = model(ids, mask)
    (expected * weights).sum().backward()
    expected_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()

    shard = lambda t: kd.shard_sequence(t, dim=1, layout=layout)  # noqa: E731
    with kernels.record_backends() as ran, kd.context_parallel(model, method=method, layout=layout):
        logits = model(shard(ids), None if mask is None else shard(mask))
        (logits * shard(weights)).sum().backward()
    assert "triton" in ran and "torch" not in ran
    torch.testing.assert_close(kd.unshard_sequence(logits.detach(), dim=1, layout=layout), expected.detach(),
                               rtol=1e-4, atol=1e-4)
    for name, parameter in model.named_parameters():
        dist.all_reduce(parameter.grad)  # each rank holds its tokens' share
        torch.testing.assert_close(parameter.grad, expected_grads[name], rtol=1e-3, atol=1e-4, msg=name)
    assert type(model.decoder.blocks[0].self_attention).forward is model.decoder.blocks[0].self_attention.forward \
        .__func__, "the patch must be undone on exit"


@pytest.mark.parametrize("method, layout, padded", [("ring", "zigzag", True), ("ulysses", "contiguous", False)])
def test_decoder_only_lm_forward_and_backward(ranks, worker_seed, method, layout, padded):
    ranks.run(2, check_decoder, worker_seed, method, layout, padded, timeout_s=300)


def test_a_model_without_attention_is_refused(monkeypatch):
    monkeypatch.setattr(kd.model, "group_info", lambda group: None)
    with pytest.raises(ValueError, match="Linear has no attention or position module to shard"):
        with kd.context_parallel(torch.nn.Linear(2, 2)):
            pass


def test_a_packed_batch_is_refused(monkeypatch):
    """A packed batch would number positions and cut sequences per shard: refused before any communication."""
    monkeypatch.setattr(kd.model, "group_info", lambda group: None)
    model = tiny_model(0)
    with kd.context_parallel(model):
        with pytest.raises(ValueError, match="numbers positions itself"):
            model(torch.randint(2, 40, (1, 6)), cu_seqlens=torch.tensor([0, 2, 6], dtype=torch.int32))
