"""Ready models of the three Transformer families, built from one block class on the fused kernels:
EncoderDecoderModel (seq2seq), EncoderClassifier (encoder-only) and DecoderOnlyLM (causal LM), with
KV-cached `generate()` for the two generative ones."""
from kernels.models.block import Block
from kernels.models.cache import Cache, KVCache
from kernels.models.classifier import EncoderClassifier
from kernels.models.config import ModelConfig
from kernels.models.decoder_only import DecoderOnlyLM
from kernels.models.encoder_decoder import EncoderDecoderModel
from kernels.models.generation import generate

__all__ = [
    "ModelConfig", "EncoderDecoderModel", "EncoderClassifier", "DecoderOnlyLM", "generate", "Block", "Cache",
    "KVCache",
]
