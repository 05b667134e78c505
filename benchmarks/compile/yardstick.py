"""A yardstick for the attention forward's TMA path: the least a Hopper forward can be.

`_yardstick_forward_kernel` is our own minimal FlashAttention forward over tensor descriptors: no mask,
no causal, no dropout, no GQA, no padded head dims or ragged lengths, no flags at all; contiguous
(B, H, N, D) inputs whose lengths divide the tile. Per key tile it loads K and V through TMA, makes the
scores on one dot, updates the running max and sum (base 2), and adds P @ V on a second dot; at the end
it writes O through a descriptor and the log-sum-exp, as the shipped forward does when training.

It is never launched: `python -m benchmarks compile --launchers forward yardstick` compiles it at the
shipped forward's tiles (the same autotune list and pruner), so its registers, SASS count and key-loop
SASS count (sass.key_loop_instructions) sit next to the forward's, tile for tile. Whatever the forward
spends beyond it, per program or per key tile, is the price of its features or something to fix
(docs/benchmarks/compile.md, "The TMA yardstick").
"""
import torch
import triton
import triton.language as tl

from kernels.sdpa.triton.common import LN2, LOG2E, padded_head_dim
from kernels.sdpa.triton.configs import FORWARD_TILES, head_dim_pruner


@triton.autotune(configs=FORWARD_TILES.candidates(), key=["BLOCK_D"],
                 prune_configs_by={"early_config_prune": head_dim_pruner(FORWARD_TILES)})
@triton.jit
def _yardstick_forward_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr, lse_ptr, n_queries, n_keys, qk_scale,
    BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    head = tl.program_id(1)  # batch * H + head: every head's rows follow the previous head's
    first_query = head * n_queries + tl.program_id(0) * BLOCK_M
    first_key = head * n_keys
    n_query_rows = tl.num_programs(1) * n_queries
    n_key_rows = tl.num_programs(1) * n_keys
    q_tiles = tl.make_tensor_descriptor(q_ptr, shape=[n_query_rows, BLOCK_D], strides=[BLOCK_D, 1],
                                        block_shape=[BLOCK_M, BLOCK_D])
    k_tiles = tl.make_tensor_descriptor(k_ptr, shape=[n_key_rows, BLOCK_D], strides=[BLOCK_D, 1],
                                        block_shape=[BLOCK_N, BLOCK_D])
    v_tiles = tl.make_tensor_descriptor(v_ptr, shape=[n_key_rows, BLOCK_DV], strides=[BLOCK_DV, 1],
                                        block_shape=[BLOCK_N, BLOCK_DV])
    out_tiles = tl.make_tensor_descriptor(out_ptr, shape=[n_query_rows, BLOCK_DV], strides=[BLOCK_DV, 1],
                                          block_shape=[BLOCK_M, BLOCK_DV])

    q = q_tiles.load([first_query, 0])
    row_max = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    row_sum = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=tl.float32)
    for start_n in range(0, n_keys, BLOCK_N):
        # The scale is folded into the exponent (one FFMA a score): max(scale * s) = scale * max(s), scale > 0.
        scores = tl.dot(q, tl.trans(k_tiles.load([first_key + start_n, 0])))
        new_max = tl.maximum(row_max, tl.max(scores, 1) * qk_scale)
        weights = tl.math.exp2(scores * qk_scale - new_max[:, None])
        rescale = tl.math.exp2(row_max - new_max)
        row_sum = row_sum * rescale + tl.sum(weights, 1)
        v = v_tiles.load([first_key + start_n, 0])
        acc = tl.dot(weights.to(v.dtype), v, acc * rescale[:, None])
        row_max = new_max

    out_tiles.store([first_query, 0], (acc / row_sum[:, None]).to(out_ptr.dtype.element_ty))
    rows = first_query + tl.arange(0, BLOCK_M)
    tl.store(lse_ptr + rows, (row_max + tl.math.log2(row_sum)) * LN2)


def launch_yardstick_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                             lse: torch.Tensor, scale: float) -> None:
    """Launch (or, in the compile tool, record) the yardstick on contiguous (B, H, N, D) tensors whose
    lengths divide every forward tile and whose head dims are powers of two of at least 16."""
    batch, heads, n_queries, head_dim = q.shape
    n_keys, head_dim_v = k.shape[2], v.shape[3]
    if head_dim != padded_head_dim(head_dim) or head_dim_v != padded_head_dim(head_dim_v):
        raise ValueError(f"the yardstick takes power-of-two head dims >= 16, got {head_dim} and {head_dim_v}")
    if not all(tensor.is_contiguous() for tensor in (q, k, v, out, lse)):
        raise ValueError("the yardstick takes contiguous q, k, v, out and lse")

    def grid(meta):
        return (triton.cdiv(n_queries, meta["BLOCK_M"]), batch * heads)

    _yardstick_forward_kernel[grid](q, k, v, out, lse, n_queries, n_keys, scale * LOG2E.value,
                                    BLOCK_D=head_dim, BLOCK_DV=head_dim_v)
