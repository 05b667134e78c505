"""generate(): greedy or sampled decoding for the generative families, with or without a KV cache.

A model provides a `DecodingSession` (its `decoding_session` method): the tokens that new ones are
appended to, and a function from the tokens so far to the next token's logits. With the cache, that
function feeds only the tokens the cache has not seen (the whole prompt first, then one per step);
without it, it reruns the model on every token. Both see the same logits up to rounding, and the
sampler draws from the caller's torch.Generator the same way in both, so they give the same tokens.
"""
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class DecodingSession:
    tokens: torch.Tensor  # (B, T0) int64: what the generated tokens are appended to
    next_logits: Callable[[torch.Tensor], torch.Tensor]  # tokens so far (B, T) -> next-token logits (B, V)
    pad_token_id: int | None  # written after eos in finished rows


class Generative:
    """Mixin of the generative models: `model.generate(...)` is `generate(model, ...)`. A subclass
    implements `decoding_session(input_ids, attention_mask, max_new_tokens, use_cache)`."""

    def decoding_session(self, input_ids, attention_mask, max_new_tokens: int, use_cache: bool) -> DecodingSession:
        raise NotImplementedError

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, **options) -> torch.Tensor:
        """See kernels.models.generate."""
        return generate(self, input_ids, max_new_tokens, **options)


def _check_options(max_new_tokens, do_sample, temperature, top_k, eos_token_id, use_cache, generator, device) -> None:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    for name, flag in (("do_sample", do_sample), ("use_cache", use_cache)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < float("inf"):
        raise ValueError(f"temperature must be a positive finite float, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    if eos_token_id is not None and (isinstance(eos_token_id, bool) or not isinstance(eos_token_id, int)):
        raise ValueError(f"eos_token_id must be None or an int, got {eos_token_id!r}")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if generator.device.type != device.type:
            raise ValueError(f"generator is on {generator.device} but the model is on {device}")


def sample(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> torch.Tensor:
    """One token per row (B,) from softmax(logits / temperature) over the top_k largest logits."""
    logits = logits / temperature  # (B, V)
    if top_k is not None and top_k < logits.size(-1):
        kth_largest = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    probabilities = torch.softmax(logits, dim=-1)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(1)


@torch.no_grad()
def generate(
    model: Generative,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    eos_token_id: int | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decode up to `max_new_tokens` tokens after `input_ids` (B, N).

    DecoderOnlyLM: returns (B, N + new), the prompt followed by the new tokens; a padded batch takes
    `attention_mask` (B, N), 1 = real token, padded on either side: positions count real tokens only
    and each row continues after its last real token (a right-padded row keeps its pads before the
    new tokens).
    EncoderDecoderModel: `input_ids` is the source (with its `attention_mask`); returns the decoder's
    tokens (B, 1 + new), starting with `config.bos_token_id`.
    Greedy (argmax) unless `do_sample`: then softmax(logits / temperature), restricted to the
    `top_k` largest, drawn with `generator` (torch's default when None). A row stops at
    `eos_token_id` and is padded with `config.pad_token_id` (or eos if None) while the others go
    on; decoding stops when every row has. `use_cache=False` reruns the model on every token:
    slower, same tokens. Dropout is not switched off here: call `model.eval()` first.
    """
    if not isinstance(model, Generative):
        raise TypeError(f"model must be a DecoderOnlyLM or EncoderDecoderModel, got {type(model).__name__}")
    device = next(model.parameters()).device
    _check_options(max_new_tokens, do_sample, temperature, top_k, eos_token_id, use_cache, generator, device)
    session = model.decoding_session(input_ids, attention_mask, max_new_tokens, use_cache)
    tokens = session.tokens
    finished = torch.zeros(tokens.size(0), dtype=torch.bool, device=tokens.device)
    pad = eos_token_id if session.pad_token_id is None else session.pad_token_id
    for _ in range(max_new_tokens):
        logits = session.next_logits(tokens).float()  # (B, V)
        new = sample(logits, temperature, top_k, generator) if do_sample else logits.argmax(dim=-1)  # (B,)
        if eos_token_id is not None:
            new = new.masked_fill(finished, pad)
            finished |= new == eos_token_id
        tokens = torch.cat([tokens, new[:, None]], dim=1)
        if eos_token_id is not None and bool(finished.all()):
            break
    return tokens
