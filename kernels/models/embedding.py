"""Token embedding * sqrt(d_model) + sinusoidal positions, in the fused kernel (kernels.SinusoidalEmbedding)."""
import torch
from torch import nn

from kernels.models.config import ModelConfig
from kernels.models.inputs import positions_from_padding
from kernels.nn.positional import SinusoidalEmbedding


class Embedding(nn.Module):
    """The input layer of every family. Positions come from the cache's length (decoding step t is
    position t) or, for padded batches, from the padding mask (see `positions_from_padding`)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.tokens = SinusoidalEmbedding(config.vocab_size, config.d_model, config.pad_token_id,
                                          dropout=config.dropout)
        with torch.no_grad():  # N(0, 1/d): rows of unit norm once scaled by sqrt(d), like the encoding
            nn.init.normal_(self.tokens.weight, std=config.d_model ** -0.5)
            if config.pad_token_id is not None:
                self.tokens.weight[config.pad_token_id].zero_()

    @property
    def weight(self) -> nn.Parameter:
        return self.tokens.weight

    def forward(self, ids: torch.Tensor, padding: torch.Tensor | None = None, past_length: int = 0, *,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, N); padding (B, past_length + N) bool, True = real, or None; or the positions (B, N)
        themselves (a packed batch's) -> (B, N, d_model)."""
        if positions is not None:
            return self.tokens(ids, position_ids=positions)
        if padding is None:
            return self.tokens(ids, position_offset=past_length)
        return self.tokens(ids, position_ids=positions_from_padding(padding, ids.size(1)))


def language_model_head(config: ModelConfig, embedding: Embedding) -> nn.Linear:
    """Hidden states (B, N, d) -> logits (B, N, vocab); shares the embedding matrix when tie_embeddings."""
    head = nn.Linear(config.d_model, config.vocab_size, bias=False)
    if config.tie_embeddings:
        head.weight = embedding.weight
    return head
