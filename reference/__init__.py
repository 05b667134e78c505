"""Pure-PyTorch reference implementations: the definition of "correct" for `kernels`.

Nothing here imports Triton. Every function works in any floating dtype, float64 included, so
tests can upcast inputs and compare the fused kernels against exact math.
"""
from reference.attention import attention_weights, default_scale, scaled_dot_product_attention
from reference.multi_head_attention import MultiHeadAttention
from reference.positional_encoding import PositionalEncoder
from reference.varlen import varlen_attention

__all__ = ["attention_weights", "default_scale", "scaled_dot_product_attention", "MultiHeadAttention", "PositionalEncoder",
           "varlen_attention"]
