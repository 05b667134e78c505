"""The attention variants: `kernels.attention`'s keyword-only options beyond torch SDPA, checked once
into one frozen value, and run on the backends that implement them.

- `window=(left, right)`: query i attends key j only if i - left <= j <= i + right (top-left
  positions, as `is_causal`; None for a side leaves it unbounded). With `is_causal`, `(left, 0)` is
  the sliding window of Mistral; with an `attn_mask`, the keys attended are the intersection.
- `softcap=c`: the scaled scores become c * tanh(scores / c) before any bias or mask (Gemma 2).
- `alibi_slopes` (Hq,) or (B, Hq): adds -slope * |i - j| to the (soft-capped) scores (ALiBi).
- `sinks` (Hq,): one logit per query head; each row's softmax denominator gains exp(sink), a
  weight paired with no value (gpt-oss).

Rank-3 (batch, seq, dim) inputs have one head, as on the Triton path: their slopes are (1,) or
(B, 1) and their sinks (1,), so a (B,) tensor is never mistaken for per-head values.

Every backend implements every variant. The `torch` and `reference` backends differentiate
everything (slopes, sinks and a float `attn_mask` included); the `triton` backend runs them as
constexpr flags of its kernels (kernels/sdpa/triton/score_variants.py), forward, backward and
split-K decode, with gradients for q, k, v, the sinks and a float mask; a gradient for the slopes
raises NotImplementedError there, naming it.
"""
import dataclasses
import numbers

import torch

import reference
from kernels.shared.checks import check_finite_float
from kernels.sdpa.torch_variants import torch_attention_with_variants

@dataclasses.dataclass(frozen=True, eq=False)
class AttentionVariants:
    """The checked variant options of one call; None = not used. `window` has at least one bounded
    side (`(None, None)` is no window at all)."""
    window: tuple[int | None, int | None] | None = None
    softcap: float | None = None
    alibi_slopes: torch.Tensor | None = None
    sinks: torch.Tensor | None = None

    def names(self) -> tuple[str, ...]:
        """The options given, by argument name (for error messages)."""
        return tuple(field.name for field in dataclasses.fields(self) if getattr(self, field.name) is not None)

    def as_kwargs(self) -> dict:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def _check_window(window) -> tuple[int | None, int | None] | None:
    expected = "a pair (left, right) of ints >= 0 or None"
    if not isinstance(window, (tuple, list)):
        raise TypeError(f"window must be {expected}, got {type(window).__name__}")
    if len(window) != 2:
        raise ValueError(f"window must be {expected}, got {len(window)} values: {window!r}")
    for side, size in zip(("left", "right"), window):
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise TypeError(f"window's {side} side must be an int >= 0 or None, got {type(size).__name__} {size!r}")
        if size < 0:
            raise ValueError(f"window's {side} side must be >= 0 (keys {side} of the query it may attend), got {size}")
    left, right = (None if size is None else int(size) for size in window)
    return None if left is None and right is None else (left, right)


def _check_softcap(softcap) -> float:
    check_finite_float("softcap", softcap)
    if softcap <= 0:
        raise ValueError(f"softcap must be > 0 (the cap c of c * tanh(scores / c)), got {softcap!r}")
    return float(softcap)


def _check_per_head(name: str, tensor, query: torch.Tensor, shapes: dict[str, tuple[int, ...]]) -> None:
    """A float32 or query-dtype tensor on the query's device, of one of `shapes` (described by key)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(tensor).__name__}")
    if tensor.dtype not in (torch.float32, query.dtype):
        raise TypeError(f"{name} must be float32 or the query's dtype {query.dtype}, got dtype {tensor.dtype}")
    if tensor.device != query.device:
        raise ValueError(f"{name} is on {tensor.device} but query is on {query.device}")
    if tuple(tensor.shape) not in shapes.values():
        heads = "rank-3 inputs have one head" if query.dim() == 3 else f"query has {query.size(1)} heads"
        listed = " or ".join(f"{described} = {shape}" for described, shape in shapes.items())
        raise ValueError(f"{name} must have shape {listed} ({heads}), got {tuple(tensor.shape)}")


def attention_variants(query: torch.Tensor, *, window, softcap, alibi_slopes, sinks,
                       batch: int | None = None) -> AttentionVariants | None:
    """The checked options (after `check_attention_inputs` passed), or None when none is in effect.
    `batch`: what B means for (B, Hq) slopes where it is not query.size(0) (packed sequences: their count)."""
    heads = query.size(1) if query.dim() == 4 else 1
    batch = query.size(0) if batch is None else batch
    if window is not None:
        window = _check_window(window)
    if softcap is not None:
        softcap = _check_softcap(softcap)
    if alibi_slopes is not None:
        _check_per_head("alibi_slopes", alibi_slopes, query,
                        {"(Hq,)": (heads,), "(B, Hq)": (batch, heads)})
    if sinks is not None:
        _check_per_head("sinks", sinks, query, {"(Hq,)": (heads,)})
    variants = AttentionVariants(window, softcap, alibi_slopes, sinks)
    return variants if variants.names() else None


def variant_op_arguments(variants: AttentionVariants) -> tuple:
    """The trailing arguments of the Triton custom op (kernels/sdpa/custom_ops.py): window left, window
    right, softcap, slopes, sinks."""
    left, right = variants.window if variants.window is not None else (None, None)
    return left, right, variants.softcap, variants.alibi_slopes, variants.sinks


def run_attention_with_variants(
    backend: str, query, key, value, attn_mask, dropout_p: float, is_causal: bool, scale, enable_gqa: bool,
    variants: AttentionVariants,
) -> torch.Tensor:
    """`kernels.attention` with variants on the torch or reference backend, after every check. Rank-3
    inputs run as one head."""
    rank3 = query.dim() == 3
    if rank3:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if attn_mask is not None and attn_mask.dim() == 3:
            attn_mask = attn_mask.unsqueeze(1)  # (B, Nq, Nk) scores gain their head dim
    if backend == "torch":
        run = torch_attention_with_variants
    else:
        run = reference.scaled_dot_product_attention
    out = run(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
              enable_gqa=enable_gqa, **variants.as_kwargs())
    return out.squeeze(1) if rank3 else out
