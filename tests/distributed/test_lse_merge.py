"""The log-sum-exp merge and the chunk schedule, in one process: no process group needed."""
import torch

import reference
from kernels.distributed.chunk_schedule import ChunkPlan
from kernels.distributed.merge import merge_into


def block_attention(q, k, v, keep):
    """(out, lse) of q over one key block, plain float64 math; -inf lse where a row sees no key."""
    scores = (q @ k.transpose(-1, -2) / q.size(-1) ** 0.5).masked_fill(~keep, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    weights = torch.exp(scores - torch.where(lse == float("-inf"), 0.0, lse).unsqueeze(-1))
    return weights @ v, lse


def test_merging_blocks_equals_attention_over_all_keys_in_fp64():
    q, k, v = (torch.randn(2, 3, 7, 8, dtype=torch.float64) for _ in range(3))
    keep = torch.rand(2, 1, 7, 12) > 0.4
    keep[0, 0, 2] = False  # a row that sees no key at all
    keep[:, :, :, 4:8] &= torch.rand(2, 1, 7, 1) > 0.5  # rows that see nothing in the middle block
    k, v = torch.randn(2, 3, 12, 8, dtype=torch.float64), torch.randn(2, 3, 12, 8, dtype=torch.float64)
    out = torch.zeros(2, 3, 7, 8, dtype=torch.float64)
    lse = torch.full((2, 3, 7), float("-inf"), dtype=torch.float64)
    for block in (slice(0, 4), slice(4, 8), slice(8, 12)):
        merge_into(out, lse, *block_attention(q, k[:, :, block], v[:, :, block], keep[..., block]))
    expected = reference.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    assert (out - expected).abs().max().item() <= 1e-6
    full_out, full_lse = block_attention(q, k, v, keep)
    assert torch.equal(lse.isinf(), full_lse.isinf()) and lse[0, :, 2].eq(float("-inf")).all()
    assert (lse - full_lse)[~lse.isinf()].abs().max().item() <= 1e-6
    assert out[0, :, 2].eq(0).all(), "a row with no key must be zeros, not NaN"


def test_merge_keeps_fp32_state_for_half_precision_blocks():
    out = torch.zeros(1, 1, 4, 2)
    lse = torch.full((1, 1, 4), float("-inf"))
    block = torch.full((1, 1, 4, 2), 1 / 3, dtype=torch.float16)
    merge_into(out, lse, block, torch.zeros(1, 1, 4))
    assert out.dtype == torch.float32 and torch.equal(out, block.float())


def test_causal_schedule_skips_chunks_above_the_diagonal():
    def pairs(query_chunks, key_chunks, causal=True):
        plan = ChunkPlan(query_chunks, 4, causal, 1.0, "torch")
        return [(q.start, None if k.start is None else k.start, diagonal) for q, k, diagonal in plan.pairs(key_chunks)]

    # contiguous on 2 ranks: rank 0 (chunk 0) computes nothing with rank 1's chunk 1: the whole step is skipped
    assert pairs((0,), (1,)) == []
    assert pairs((1,), (0,)) == [(0, None, False)]
    assert pairs((0,), (0,)) == [(0, 0, True)]
    # zigzag on 2 ranks: rank 0 holds chunks (0, 3); rank 1's chunks (1, 2) are all seen in full by chunk 3,
    # in one call over the whole block, and not at all by chunk 0
    assert pairs((0, 3), (1, 2)) == [(4, None, False)]
    # its own block: chunk 0 on its diagonal, chunk 3 sees chunk 0 in full and its own diagonal
    assert pairs((0, 3), (0, 3)) == [(0, 0, True), (4, 0, False), (4, 4, True)]
    assert pairs((0, 3), (1, 2), causal=False) == [(0, None, False), (4, None, False)]
