"""EncoderClassifier: a bidirectional encoder with a pooled classification head, from the shared blocks."""
import torch
from torch import nn

from kernels.models.block import Stack
from kernels.models.config import ModelConfig
from kernels.models.embedding import Embedding
from kernels.models.inputs import check_length, check_token_ids, key_padding


class EncoderClassifier(nn.Module):
    """Embedding -> encoder blocks -> mean over the real tokens -> Linear(d_model, n_classes)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.n_encoder_layers < 1 or config.n_classes is None:
            raise ValueError("EncoderClassifier needs config.n_encoder_layers >= 1 and config.n_classes set")
        self.config = config
        self.embedding = Embedding(config)
        self.encoder = Stack(config, config.n_encoder_layers, causal=False)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.d_model, config.n_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, N), attention_mask (B, N) 1/True = real token -> logits (B, n_classes)."""
        check_token_ids("input_ids", input_ids, self.config.vocab_size)
        check_length("input_ids", input_ids.size(1), self.config.max_seq_len)
        padding = key_padding("attention_mask", attention_mask, *input_ids.shape, input_ids.device)
        x = self.encoder(self.embedding(input_ids, padding), key_padding=padding)  # (B, N, d)
        if padding is None:
            pooled = x.mean(dim=1)
        else:
            weights = padding.to(x.dtype)[:, :, None]  # (B, N, 1)
            pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)  # (B, d)
        return self.head(self.dropout(pooled))
