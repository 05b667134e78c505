"""EncoderClassifier: a bidirectional encoder with a pooled classification head, from the shared blocks."""
import torch
from torch import nn

from kernels.models.block import Stack
from kernels.models.config import ModelConfig
from kernels.models.embedding import Embedding
from kernels.models.inputs import check_length, check_token_ids, key_padding
from kernels.models.packing import Packing, is_packed, packing_of


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

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                cu_seqlens: torch.Tensor | None = None, position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, N), attention_mask (B, N) 1/True = real token -> logits (B, n_classes).

        A packed batch: input_ids (1, total) cut by `cu_seqlens` or restarting `position_ids`, as in
        `DecoderOnlyLM.forward` -> logits (S, n_classes), one row per sequence."""
        check_token_ids("input_ids", input_ids, self.config.vocab_size)
        if is_packed(cu_seqlens, position_ids):
            return self._classify_packed(input_ids, packing_of(input_ids, attention_mask, cu_seqlens, position_ids))
        check_length("input_ids", input_ids.size(1), self.config.max_seq_len)
        padding = key_padding("attention_mask", attention_mask, *input_ids.shape, input_ids.device)
        x = self.encoder(self.embedding(input_ids, padding), key_padding=padding)  # (B, N, d)
        if padding is None:
            pooled = x.mean(dim=1)
        else:
            weights = padding.to(x.dtype)[:, :, None]  # (B, N, 1)
            pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)  # (B, d)
        return self.head(self.dropout(pooled))

    def _classify_packed(self, input_ids: torch.Tensor, packing: Packing) -> torch.Tensor:
        check_length("the longest packed sequence", packing.max_seqlen, self.config.max_seq_len)
        x = self.encoder(self.embedding(input_ids, positions=packing.positions), packing=packing)[0]  # (total, d)
        sums = x.new_zeros(packing.n_sequences, x.size(-1)).index_add(0, packing.sequence_of_each_token(), x)
        lengths = packing.cu_seqlens.diff().clamp(min=1).to(x.dtype)[:, None]  # (S, 1)
        return self.head(self.dropout(sums / lengths))  # (S, n_classes)
