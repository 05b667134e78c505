"""ModelConfig: the hyperparameters of the three model families, checked once when built."""
from dataclasses import dataclass

from kernels.positional.limits import MAX_POSITION
from kernels.sdpa.validation import MAX_HEAD_DIM
from kernels.shared.checks import check_probability

ACTIVATIONS = ("relu", "gelu")


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_token_id(name: str, value, vocab_size: int, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab_size:
        allowed = "None or " if optional else ""
        raise ValueError(f"{name} must be {allowed}an int in [0, vocab_size={vocab_size}), got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Defaults are the course's Transformer: d_model=512, 8 heads, 6 + 6 layers, FFN 2048, dropout 0.1,
    post-norm, ReLU. Each family reads the fields it needs (a decoder-only model ignores the encoder's)."""

    vocab_size: int
    d_model: int = 512
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1  # embeddings, residual branches and attention weights; training only
    max_seq_len: int = 2048  # the longest sequence a model accepts, and the KV cache's size
    activation: str = "relu"
    norm_first: bool = False  # pre-norm (with a final LayerNorm per stack) instead of the original post-norm
    layer_norm_eps: float = 1e-5
    n_classes: int | None = None  # EncoderClassifier's head
    pad_token_id: int | None = 0  # its embedding row stays zero; finished rows of generate() are padded with it
    bos_token_id: int = 1  # the decoder's start token in EncoderDecoderModel.generate
    tie_embeddings: bool = True  # the LM head reuses the token embedding matrix

    def __post_init__(self):
        _check_int("vocab_size", self.vocab_size, 1)
        for name in ("d_model", "n_heads", "dim_feedforward", "max_seq_len"):
            _check_int(name, getattr(self, name), 1)
        for name in ("n_encoder_layers", "n_decoder_layers"):
            _check_int(name, getattr(self, name), 0)
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.head_dim > MAX_HEAD_DIM:
            raise ValueError(f"head_dim = d_model / n_heads = {self.head_dim} exceeds the kernel's {MAX_HEAD_DIM}")
        if self.max_seq_len > MAX_POSITION:
            raise ValueError(f"max_seq_len must be at most 2**24 = {MAX_POSITION}, got {self.max_seq_len}")
        check_probability("dropout", self.dropout)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if not isinstance(self.layer_norm_eps, float) or not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be a positive float, got {self.layer_norm_eps!r}")
        if self.n_classes is not None:
            _check_int("n_classes", self.n_classes, 2)
        _check_token_id("pad_token_id", self.pad_token_id, self.vocab_size, optional=True)
        _check_token_id("bos_token_id", self.bos_token_id, self.vocab_size, optional=False)
        for name in ("norm_first", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads
