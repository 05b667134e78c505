"""EncoderDecoderModel: the original Transformer as a sequence-to-sequence LM, from the shared blocks."""
import torch
from torch import nn

from kernels.models.block import Stack
from kernels.models.cache import Cache
from kernels.models.config import ModelConfig
from kernels.models.embedding import Embedding, language_model_head
from kernels.models.generation import DecodingSession, Generative
from kernels.models.inputs import check_length, check_token_ids, key_padding
from kernels.models.packing import is_packed, packing_of


class EncoderDecoderModel(Generative, nn.Module):
    """One embedding shared by source and target -> encoder blocks (bidirectional) -> decoder blocks
    (causal self-attention, cross-attention to the encoder's output) -> LM head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.n_encoder_layers < 1 or config.n_decoder_layers < 1:
            raise ValueError("EncoderDecoderModel needs config.n_encoder_layers >= 1 and n_decoder_layers >= 1")
        self.config = config
        self.embedding = Embedding(config)
        self.encoder = Stack(config, config.n_encoder_layers, causal=False)
        self.decoder = Stack(config, config.n_decoder_layers, causal=True, cross_attention=True)
        self.lm_head = language_model_head(config, self.embedding)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Source ids (B, M), attention_mask (B, M) 1/True = real token -> memory (B, M, d)."""
        check_token_ids("input_ids", input_ids, self.config.vocab_size)
        check_length("input_ids", input_ids.size(1), self.config.max_seq_len)
        padding = key_padding("attention_mask", attention_mask, *input_ids.shape, input_ids.device)
        return self.encoder(self.embedding(input_ids, padding), key_padding=padding)

    def decode(
        self,
        decoder_input_ids: torch.Tensor,
        memory: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        cache: Cache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Target ids (B, N) (after the `cache.length` the cache holds), memory (B, M, d) and its
        attention_mask (B, M) -> logits (B, N, vocab), or (B, 1, vocab) for the last position only."""
        check_token_ids("decoder_input_ids", decoder_input_ids, self.config.vocab_size)
        batch, n_new = decoder_input_ids.shape
        if memory.dim() != 3 or memory.size(0) != batch or memory.size(2) != self.config.d_model:
            raise ValueError(f"memory must have shape ({batch}, source_len, {self.config.d_model}), "
                             f"got {tuple(memory.shape)}")
        past = 0 if cache is None else cache.length
        check_length("the cached + new decoder_input_ids", past + n_new, self.config.max_seq_len)
        memory_padding = key_padding("attention_mask", attention_mask, batch, memory.size(1), memory.device)
        x = self.embedding(decoder_input_ids, past_length=past)  # (B, N, d)
        x = self.decoder(x, memory=memory, memory_padding=memory_padding, cache=cache)
        return self.lm_head(x[:, -1:] if last_only else x)

    def forward(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None, *, cu_seqlens: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, decoder_cu_seqlens: torch.Tensor | None = None,
                decoder_position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Source (B, M) with its attention_mask, target (B, N) -> logits (B, N, vocab) (teacher forcing).

        A packed batch (for training): sources input_ids (1, total_source) cut by `cu_seqlens` or
        restarting `position_ids`, targets decoder_input_ids (1, total_target) cut by
        `decoder_cu_seqlens` or `decoder_position_ids`, pair b being source b and target b; each target
        attends causally to itself and to its own source only (kernels/models/packing.py). No
        attention_mask with it. Returns (1, total_target, vocab)."""
        if is_packed(cu_seqlens, position_ids) or is_packed(decoder_cu_seqlens, decoder_position_ids):
            return self._packed_forward(input_ids, decoder_input_ids, attention_mask, cu_seqlens, position_ids,
                                        decoder_cu_seqlens, decoder_position_ids)
        memory = self.encode(input_ids, attention_mask)
        return self.decode(decoder_input_ids, memory, attention_mask)

    def _packed_forward(self, input_ids, decoder_input_ids, attention_mask, cu_seqlens, position_ids,
                        decoder_cu_seqlens, decoder_position_ids) -> torch.Tensor:
        if not (is_packed(cu_seqlens, position_ids) and is_packed(decoder_cu_seqlens, decoder_position_ids)):
            raise ValueError("a packed EncoderDecoderModel batch cuts both sides: pass cu_seqlens or position_ids "
                             "for input_ids, and decoder_cu_seqlens or decoder_position_ids for decoder_input_ids")
        check_token_ids("input_ids", input_ids, self.config.vocab_size)
        check_token_ids("decoder_input_ids", decoder_input_ids, self.config.vocab_size)
        sources = packing_of(input_ids, attention_mask, cu_seqlens, position_ids)
        targets = packing_of(decoder_input_ids, None, decoder_cu_seqlens, decoder_position_ids, prefix="decoder_")
        if sources.n_sequences != targets.n_sequences:
            raise ValueError(f"the packed batch pairs each source with a target, but input_ids hold "
                             f"{sources.n_sequences} sequences and decoder_input_ids {targets.n_sequences}")
        check_length("the longest packed source", sources.max_seqlen, self.config.max_seq_len)
        check_length("the longest packed target", targets.max_seqlen, self.config.max_seq_len)
        memory = self.encoder(self.embedding(input_ids, positions=sources.positions), packing=sources)
        x = self.embedding(decoder_input_ids, positions=targets.positions)
        x = self.decoder(x, memory=memory, packing=targets, memory_packing=sources)  # (1, total_target, d)
        return self.lm_head(x)

    def new_cache(self, batch: int, memory_len: int, max_len: int | None = None) -> Cache:
        """An empty cache: decoder self-attention over up to `max_len` (default max_seq_len) positions,
        cross-attention over `memory_len` encoder outputs."""
        max_len = self.config.max_seq_len if max_len is None else max_len
        weight = self.embedding.weight
        return self.decoder.new_cache(batch, max_len, memory_len, weight.device, weight.dtype)

    def decoding_session(self, input_ids, attention_mask, max_new_tokens: int, use_cache: bool) -> DecodingSession:
        memory = self.encode(input_ids, attention_mask)  # (B, M, d), once
        check_length("1 + max_new_tokens", 1 + max_new_tokens, self.config.max_seq_len)
        batch = input_ids.size(0)
        cache = self.new_cache(batch, memory.size(1), 1 + max_new_tokens) if use_cache else None

        def next_logits(tokens: torch.Tensor) -> torch.Tensor:
            unseen = tokens if cache is None else tokens[:, cache.length:]
            return self.decode(unseen, memory, attention_mask, cache=cache, last_only=True)[:, -1]  # (B, vocab)

        start = torch.full((batch, 1), self.config.bos_token_id, dtype=torch.long, device=input_ids.device)
        return DecodingSession(start, next_logits, self.config.pad_token_id)
