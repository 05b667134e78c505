"""DecoderOnlyLM: a causal language model (GPT-style) from the shared blocks."""
import torch
from torch import nn

from kernels.models.block import Stack
from kernels.models.cache import Cache
from kernels.models.config import ModelConfig
from kernels.models.embedding import Embedding, language_model_head
from kernels.models.generation import DecodingSession, Generative
from kernels.models.inputs import check_length, check_token_ids, key_padding, last_real_token
from kernels.models.packing import is_packed, packing_of


class DecoderOnlyLM(Generative, nn.Module):
    """Embedding -> `n_decoder_layers` causal self-attention blocks -> LM head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.n_decoder_layers < 1:
            raise ValueError("DecoderOnlyLM needs config.n_decoder_layers >= 1")
        self.config = config
        self.embedding = Embedding(config)
        self.decoder = Stack(config, config.n_decoder_layers, causal=True)
        self.lm_head = language_model_head(config, self.embedding)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        cache: Cache | None = None,
        last_only: bool = False,
        cu_seqlens: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids (B, N) -> logits (B, N, vocab), or (B, 1, vocab) for the last position only.

        attention_mask (B, past + N), 1/True = real token, covers the cached tokens too; with a
        cache, input_ids are the tokens after the `cache.length` it already holds.

        A packed batch (for training): input_ids (1, total) holding sequences one after another, cut
        by `cu_seqlens` (int32 offsets) or by restarting `position_ids` (1, total); each sequence
        attends only to itself (kernels/models/packing.py). No attention_mask or cache with it.
        """
        if is_packed(cu_seqlens, position_ids):
            check_token_ids("input_ids", input_ids, self.config.vocab_size)
            packing = packing_of(input_ids, attention_mask, cu_seqlens, position_ids, cache)
            check_length("the longest packed sequence", packing.max_seqlen, self.config.max_seq_len)
            x = self.decoder(self.embedding(input_ids, positions=packing.positions), packing=packing)  # (1, total, d)
        else:
            x = self._hidden_states(input_ids, attention_mask, cache)  # (B, N, d)
        return self.lm_head(x[:, -1:] if last_only else x)  # (B, N or 1, vocab)

    def _hidden_states(self, input_ids, attention_mask, cache: Cache | None) -> torch.Tensor:
        """The last block's output (B, N, d) for input_ids (B, N) after the cached positions."""
        check_token_ids("input_ids", input_ids, self.config.vocab_size)
        batch, n_new = input_ids.shape
        past = 0 if cache is None else cache.length
        check_length("the cached + new input_ids", past + n_new, self.config.max_seq_len)
        padding = key_padding("attention_mask", attention_mask, batch, past + n_new, input_ids.device)
        x = self.embedding(input_ids, padding, past)  # (B, N, d)
        return self.decoder(x, key_padding=padding, cache=cache)

    def new_cache(self, batch: int, max_len: int | None = None) -> Cache:
        """An empty KV cache for `batch` rows of up to `max_len` (default max_seq_len) positions."""
        max_len = self.config.max_seq_len if max_len is None else max_len
        weight = self.embedding.weight
        return self.decoder.new_cache(batch, max_len, None, weight.device, weight.dtype)

    def decoding_session(self, input_ids, attention_mask, max_new_tokens: int, use_cache: bool) -> DecodingSession:
        check_token_ids("input_ids", input_ids, self.config.vocab_size)
        batch, n_prompt = input_ids.shape
        check_length("input_ids + max_new_tokens", n_prompt + max_new_tokens, self.config.max_seq_len)
        prompt_padding = key_padding("attention_mask", attention_mask, batch, n_prompt, input_ids.device)
        last_prompt_token = last_real_token(prompt_padding, n_prompt, input_ids.device)  # (B,)
        cache = self.new_cache(batch, n_prompt + max_new_tokens) if use_cache else None
        rows = torch.arange(batch, device=input_ids.device)

        def next_logits(tokens: torch.Tensor) -> torch.Tensor:
            padding = None
            if prompt_padding is not None:  # generated tokens are real
                padding = nn.functional.pad(prompt_padding, (0, tokens.size(1) - n_prompt), value=True)
            unseen = tokens if cache is None else tokens[:, cache.length:]
            x = self._hidden_states(unseen, padding, cache)  # (B, N, d); N = 1 for a cached step
            # The first token continues each row's last real prompt token, which right padding moves
            # away from the end; every later step continues the token generated last.
            last = last_prompt_token if tokens.size(1) == n_prompt else torch.full_like(rows, x.size(1) - 1)
            return self.lm_head(x[rows, last])  # (B, vocab)

        return DecodingSession(input_ids.long(), next_logits, self.config.pad_token_id)
