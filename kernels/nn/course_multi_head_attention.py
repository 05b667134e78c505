"""nn.Module wrappers over the functional API."""
import torch

import reference
from kernels.sdpa.functional import attention


class MultiHeadAttention(reference.MultiHeadAttention):
    """The course's MultiHeadAttention(d_model, num_heads) on the fused kernel.

    Same parameters and names as `reference.MultiHeadAttention`, so its state_dict loads as is;
    `forward(query, key, value, mask=None)` keeps the course's convention that `mask == 0` masks a
    (query, key) pair out. Heads are strided views into the projections, and the kernel writes
    its output as (B, N, H, Dh), so neither splitting nor merging heads copies.
    """

    def forward(self, query, key, value, mask=None) -> torch.Tensor:
        """query (B, Nq, d_model), key/value (B, Nk, d_model) -> (B, Nq, d_model)."""
        for name, x in (("query", query), ("key", key), ("value", value)):
            if x.dim() != 3 or x.size(-1) != self.d_model:
                raise ValueError(f"{name} must have shape (batch, seq, d_model={self.d_model}), got {tuple(x.shape)}")
        batch_size = query.size(0)
        query = self.split_heads(self.query_linear(query), batch_size)  # (B, H, Nq, Dh), a view
        key = self.split_heads(self.key_linear(key), batch_size)  # (B, H, Nk, Dh)
        value = self.split_heads(self.value_linear(value), batch_size)  # (B, H, Nk, Dh)
        keep = None if mask is None else mask != 0  # True = attend, the functional convention
        output = attention(query, key, value, attn_mask=keep)  # (B, H, Nq, Dh)
        output = output.transpose(1, 2).reshape(batch_size, -1, self.d_model)  # (B, Nq, d_model)
        return self.output_linear(output)
