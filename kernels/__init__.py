"""triton-attention-kernels: fused Triton kernels for scaled dot-product attention and sinusoidal
positional encoding.

Kept below 0.18.2 on purpose: transformers maps the import name `kernels` to this distribution
when probing for Hugging Face's own `kernels` package, and only a version in its supported range
would make it believe that package is installed (tests/hf/test_transformers_compat.py guards this).
"""
from kernels.shared.backends import BACKENDS, record_backends, use_backend
from kernels.sdpa.functional import attention, attention_dropout_mask, causal_attention_with_key_padding
from kernels.sdpa.varlen import varlen_attention
from kernels.sdpa.block_mask import BlockMask
from kernels.positional.functional import add_positional_encoding, sinusoidal_embedding
from kernels.nn import (
    MultiHeadAttention, MultiheadAttention, PositionalEncoder, SinusoidalEmbedding, Transformer, replace_attention,
)
from kernels.models import DecoderOnlyLM, EncoderClassifier, EncoderDecoderModel, ModelConfig, generate
from kernels import distributed

__version__ = "0.1.0"

__all__ = [
    "attention", "attention_dropout_mask", "causal_attention_with_key_padding", "varlen_attention", "BlockMask",
    "MultiHeadAttention", "MultiheadAttention", "replace_attention",
    "Transformer", "ModelConfig", "EncoderDecoderModel", "EncoderClassifier", "DecoderOnlyLM", "generate",
    "add_positional_encoding", "sinusoidal_embedding", "PositionalEncoder", "SinusoidalEmbedding",
    "use_backend", "record_backends", "BACKENDS", "distributed", "__version__",
]
