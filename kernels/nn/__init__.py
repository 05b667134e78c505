"""nn.Module wrappers over the functional API, with names that cannot be confused:

- `course_multi_head_attention.MultiHeadAttention`: the course's `MultiHeadAttention(d_model, num_heads)`;
- `torch_multihead_attention.MultiheadAttention`: a drop-in for `torch.nn.MultiheadAttention`
  (its mask conversions in `torch_multihead_masks`);
- `positional.PositionalEncoder` / `SinusoidalEmbedding`: the course's positional encoder and an embedding layer;
- `patching.replace_attention`: swaps the attention modules of an existing model;
- `transformer.Transformer`: `torch.nn.Transformer` with every attention fused.
"""
from kernels.nn.course_multi_head_attention import MultiHeadAttention
from kernels.nn.patching import replace_attention
from kernels.nn.positional import PositionalEncoder, SinusoidalEmbedding
from kernels.nn.torch_multihead_attention import MultiheadAttention
from kernels.nn.transformer import Transformer

__all__ = ["MultiHeadAttention", "MultiheadAttention", "PositionalEncoder", "SinusoidalEmbedding",
           "replace_attention", "Transformer"]
