"""BLOOM's ALiBi attention in `kernels.attention`, by an explicit, reversible patch of a loaded model.

transformers computes BLOOM's attention inside `BloomAttention.forward`, with the model's ALiBi bias as
an explicit tensor, so attn_implementation="triton" never reaches it. `patch_alibi_attention(model)`
swaps the class of each `BloomAttention` module for `TritonBloomAttention` (the same weights and
projections; its attention runs `triton_attention_forward` with `alibi_slopes`) and sets the model's
attention implementation to "triton_alibi" (registered as "triton" is), so that transformers builds the
masks `triton_mask` builds; `triton_mask` refuses a BLOOM model under any other of our names, whose
unpatched attention would add the boolean mask to its scores. `undo()` (or leaving the `with` block)
restores both.

Why `alibi_slopes` (the kernels add -slope * |i - j|) gives BLOOM's attention: BLOOM adds
slope * position(j), a key's position counted from the first real token of its row (the cumulative
sum of the padding mask), i.e. slope * (j - pads before j). Softmax ignores a constant added to a row,
so any bias that equals it up to a per-row constant is the same attention:
- as many queries as keys (causal): every key a query i sees has j <= i, so -slope * |i - j| =
  slope * j - slope * i;
- one query (a decode step, top-left index 0 for the kernels): the kernels add -(-slope) * |0 - j| =
  slope * j with the slopes negated;
- and in both, slope * j = slope * position(j) + slope * (pads before j) up to a row constant only
  when the real keys of each row form one run (left or right padding), where `pads before j` is the
  same for every real key.
Any other call (several queries and more keys, as in a prefill into a static cache; a mask with a gap
between real tokens; a padded batch under torch.compile, where checking the mask would break the graph;
transformers 4.x, whose BLOOM builds a float mask of its own) passes the model's own bias tensor to the
kernel inside an additive mask (`position_bias`): the same result, without the in-kernel bias.
"""
import functools

import torch
from torch import nn

try:
    from transformers.models.bloom.modeling_bloom import BloomAttention, dropout_add
except ImportError as error:
    raise ImportError("kernels.hf.alibi needs transformers with BLOOM (transformers.models.bloom)") from error

from kernels.hf.attention import triton_attention_forward
from kernels.hf.masks import PATCHED_MODELS

_GAPLESS = "_kernels_hf_alibi_gapless"  # (mask version, whether each row's real keys form one run) on the mask


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes, (num_heads,) float32. With n the largest power of two <= num_heads, head k
    (from 1) of the first n gets 2^(-8k / n); the other heads take the odd-numbered slopes of the
    2n-head sequence, 2^(-4k / n) for k = 1, 3, 5, ..."""
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads must be an int >= 1, got {num_heads!r}")
    n = 1 << (num_heads.bit_length() - 1)
    # powers of a float32 base, as the model's own bias is built: the same float32 slopes, bit for bit
    first = torch.tensor(2.0 ** (-8 / n)) ** torch.arange(1, n + 1)
    others = torch.tensor(2.0 ** (-4 / n)) ** (2 * torch.arange(num_heads - n) + 1)
    return torch.cat([first, others])


@functools.cache
def _cached_slopes(num_heads: int, sign: float, device: torch.device) -> torch.Tensor:
    return (sign * alibi_slopes(num_heads)).to(device)


def _slopes_on(num_heads: int, sign: float, device: torch.device) -> torch.Tensor:
    """sign * the slopes on `device`: made once per device in eager mode (no copy per call); a compiled
    graph makes them itself."""
    if torch.compiler.is_compiling():
        return (sign * alibi_slopes(num_heads)).to(device)
    return _cached_slopes(num_heads, sign, device)


def _real_keys_gapless(mask: torch.Tensor) -> bool:
    """Whether the real keys of each row form one run. `mask` is BLOOM's causal mask, bool (B, 1, Nq, Nk)
    with Nq == Nk or Nq == 1: its last query row sees every real key. One device synchronisation, cached on
    the mask that every layer receives (read anew for an inference tensor, which has no version)."""
    cached = None if mask.is_inference() else getattr(mask, _GAPLESS, None)
    if cached is not None and cached[0] == mask._version:
        return cached[1]
    real = mask[:, 0, -1, :]
    runs = real[:, 0].long() + (real[:, 1:] & ~real[:, :-1]).sum(-1)  # the real keys that follow a pad, or open a row
    gapless = bool((runs <= 1).all())
    if not mask.is_inference():
        setattr(mask, _GAPLESS, (mask._version, gapless))
    return gapless


def _slope_sign(mask: torch.Tensor | None, n_queries: int, n_keys: int) -> float | None:
    """+1 or -1: `alibi_slopes` times this gives BLOOM's attention (see the module docstring); None: it
    does not, and the bias goes in the mask."""
    if n_queries != n_keys and n_queries != 1:
        return None
    sign = 1.0 if n_queries == n_keys else -1.0
    if mask is None:
        return sign
    if mask.dtype != torch.bool or mask.dim() != 4 or torch.compiler.is_compiling():
        return None
    return sign if _real_keys_gapless(mask) else None


def bloom_alibi_attention(module: nn.Module, query, key, value, attention_mask, alibi: torch.Tensor,
                          dropout: float, scaling: float, **kwargs) -> tuple[torch.Tensor, None]:
    """BLOOM's attention over (B, H, N, D) heads -> ((B, Nq, H, D), None). `alibi` is the model's bias,
    (B * H, 1, Nk): slope * position, used only where the slopes cannot stand for it."""
    n_queries, n_keys = query.size(2), key.size(2)
    sign = _slope_sign(attention_mask, n_queries, n_keys)
    if sign is None:
        bias = alibi.view(query.size(0), query.size(1), 1, n_keys)
        return triton_attention_forward(module, query, key, value, attention_mask, dropout, scaling,
                                        position_bias=bias, **kwargs)
    slopes = _slopes_on(query.size(1), sign, query.device)
    return triton_attention_forward(module, query, key, value, attention_mask, dropout, scaling,
                                    alibi_slopes=slopes, **kwargs)


class TritonBloomAttention(BloomAttention):
    """`BloomAttention` with its attention in `kernels.attention`; `patch_alibi_attention` installs it on
    existing modules (no new weights). Returns no attention weights."""

    def forward(self, hidden_states, residual, alibi, attention_mask, layer_past=None, use_cache=False,
                output_attentions=False, **kwargs):
        batch, n_queries, _ = hidden_states.shape
        query, key, value = self._reshape(self.query_key_value(hidden_states))
        cache_position = kwargs.pop("cache_position", None)  # transformers 4.x passes it, for static caches
        if layer_past is not None:
            extra = () if cache_position is None else ({"cache_position": cache_position},)
            key, value = layer_past.update(key, value, self.layer_idx, *extra)
        out, _ = bloom_alibi_attention(self, query, key, value, attention_mask, alibi, self.attention_dropout.p,
                                       self.inv_norm_factor, output_attentions=output_attentions, **kwargs)
        output = self.dense(out.reshape(batch, n_queries, -1))
        return dropout_add(output, residual, self.hidden_dropout, self.training), None


class AlibiPatch:
    """What `patch_alibi_attention` changed on one model; `undo()` (or the end of a `with` block) restores it."""

    def __init__(self, model: nn.Module, modules: list[nn.Module], attention_name: str):
        self.model, self.modules = model, modules
        self._previous_implementation = model.config._attn_implementation
        for module in modules:
            module.__class__ = TritonBloomAttention
        model.config._attn_implementation = attention_name

    def undo(self) -> None:
        for module in self.modules:
            if type(module) is TritonBloomAttention:
                module.__class__ = BloomAttention
        self.model.config._attn_implementation = self._previous_implementation
        self.modules = []

    def __enter__(self) -> nn.Module:
        return self.model

    def __exit__(self, *exc_info) -> None:
        self.undo()


def patch_alibi_attention(model: nn.Module) -> AlibiPatch:
    """Run the attention of a loaded BLOOM model (any `Bloom*` head) in `kernels.attention`, with its ALiBi
    slopes (from the number of heads in its config) in the kernel: every backend, masks from `triton_mask`,
    the KV cache as before. Returns the patch; `patch.undo()` restores the model, and
    `with kernels.hf.patch_alibi_attention(model): ...` scopes it. Refuses (ValueError naming `model`) a
    model without `BloomAttention` modules, one patched already, and one whose attention output is
    split by tensor-parallel slices (`slow_but_exact` with `pretraining_tp` > 1)."""
    from kernels.hf import register  # kernels.hf imports this module

    if not isinstance(model, nn.Module) or not hasattr(model, "config"):
        raise ValueError(f"model must be a loaded transformers model, got {type(model).__name__}")
    found = [module for module in model.modules() if isinstance(module, BloomAttention)]
    if any(type(module) is TritonBloomAttention for module in found):
        raise ValueError(f"model ({type(model).__name__}) is patched already; undo() that patch first")
    if not found:
        raise ValueError(
            f"model ({type(model).__name__}) has no BloomAttention module: patch_alibi_attention knows BLOOM "
            "only (Falcon with alibi=True folds its bias into the mask before its attention; see "
            "docs/huggingface.md)"
        )
    if getattr(model.config, "slow_but_exact", False) and getattr(model.config, "pretraining_tp", 1) > 1:
        raise ValueError(f"model's config sets slow_but_exact with pretraining_tp={model.config.pretraining_tp}: "
                         "its sliced output projection is not patched; set slow_but_exact=False")
    others = [type(module).__name__ for module in found if type(module) is not BloomAttention]
    if others:
        raise ValueError(f"model has subclasses of BloomAttention ({', '.join(sorted(set(others)))}) whose "
                         "forward patch_alibi_attention would discard")
    return AlibiPatch(model, found, register(PATCHED_MODELS["bloom"][0]))
