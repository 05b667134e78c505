"""Merging partial attention results by their log-sum-exp.

Attention of a query row over keys split into blocks A and B is exactly
    out = w_A * out_A + w_B * out_B,   w_X = exp(lse_X - lse),   lse = log(exp(lse_A) + exp(lse_B)),
so ranks can attend to their key blocks separately and combine. A block in which a row sees no key
has lse = -inf and weight 0; a row that sees no key at all keeps out = 0 and lse = -inf, never NaN.
The running state is kept in fp32 (fp64 for fp64 inputs) whatever the input dtype.
"""
import torch


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of partial results and of the merge: fp32, or fp64 for fp64 inputs (as the kernels'
    accumulators)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def merge_into(out: torch.Tensor, lse: torch.Tensor, block_out: torch.Tensor, block_lse: torch.Tensor) -> None:
    """Fold one block's (block_out (.., N, Dv), block_lse (.., N)) into the running (out, lse), in place."""
    merged_lse = torch.logaddexp(lse, block_lse)
    finite = merged_lse != float("-inf")
    safe_lse = torch.where(finite, merged_lse, 0.0)
    keep_weight = torch.where(finite, torch.exp(lse - safe_lse), 0.0)
    block_weight = torch.where(finite, torch.exp(block_lse - safe_lse), 0.0)
    out.mul_(keep_weight.unsqueeze(-1)).add_(block_weight.unsqueeze(-1) * block_out.to(out.dtype))
    lse.copy_(merged_lse)
