"""The public functional API: validate, pick a backend, run it."""
import torch

import reference
from kernels.shared.backends import OPEN_RECORDERS, note_backend_ran, resolve_backend, torch_chosen
from kernels.shared.custom_ops import ATTENTION_SEED_HIGH, draw_seed, needs_gradient, runs_without_dispatcher
from kernels.shared.dropout import Dropout
from kernels.shared.triton_availability import TRITON_AVAILABLE, TRITON_IMPORT_ERROR
from kernels.sdpa import torch_backend
from kernels.sdpa.block_mask import BlockMask
from kernels.sdpa.masks import causal_keep_mask
from kernels.sdpa.validation import (check_attention_inputs, check_attention_kernel_limits, check_every_attention_input,
                                     check_key_padding, plain_call_device)
from kernels.sdpa.variants import attention_variants, run_attention_with_variants, variant_op_arguments

if TRITON_AVAILABLE:  # without triton, resolve_backend never picks "triton" (see kernels/shared/triton_availability.py)
    from kernels.sdpa import custom_ops
    from kernels.sdpa.triton.dropout import dropout_keep_mask


def _triton_attention(query, key, value, attn_mask, is_causal, scale, dropout_p, seed, variants=None):
    """Run the custom op on rank-4 views; rank-3 (batch, seq, dim) inputs get a head dim of size 1.
    The log-sum-exp is stored only when autograd will need it; a call that needs no gradient runs the
    op's body without the dispatcher where nothing else must see the op (runs_without_dispatcher)."""
    rank3 = query.dim() == 3
    if rank3:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
    mask = None
    if attn_mask is not None:
        batch, heads, n_queries, _ = query.shape
        n_keys = key.shape[2]
        scores_shape = (batch, n_queries, n_keys) if rank3 else (batch, heads, n_queries, n_keys)
        mask = attn_mask.expand(scores_shape)  # a stride-0 view on broadcast dims, never a copy
        if rank3:
            mask = mask.unsqueeze(1)
    options = () if variants is None else variant_op_arguments(variants)
    needs_grad = needs_gradient(query, key, value, attn_mask, *options)
    direct = not needs_grad and runs_without_dispatcher(query, key, value, mask, *options)
    forward = custom_ops.attention_forward_body if direct else custom_ops.attention_forward
    out, _ = forward(query, key, value, mask, is_causal, scale, dropout_p, seed, needs_grad, *options)
    return out.squeeze(1) if rank3 else out


def _run_triton(query, key, value, attn_mask, dropout_p: float, is_causal: bool, scale: float | None,
                variants=None) -> torch.Tensor:
    check_attention_kernel_limits(query, value)
    scale = reference.default_scale(query.shape[-1]) if scale is None else float(scale)
    seed = draw_seed(ATTENTION_SEED_HIGH) if dropout_p > 0.0 else None
    return _triton_attention(query, key, value, attn_mask, is_causal, scale, float(dropout_p), seed, variants)


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    window: tuple[int | None, int | None] | None = None,
    softcap: float | None = None,
    alibi_slopes: torch.Tensor | None = None,
    sinks: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """torch.nn.functional.scaled_dot_product_attention, fused in Triton.

    Same arguments and semantics: query (B, Hq, Nq, D), key/value (B, Hkv, Nk, D|Dv); a bool
    attn_mask keeps the scores where True, a float one is added; is_causal is top-left aligned;
    a query with no key to attend returns zeros; attn_mask may also be a `BlockMask` (its mask, with
    the block map built ahead: on the Triton backend tiles a mask hides whole are never visited,
    whether or not it comes as a BlockMask). `backend` ("triton", "torch", "reference") forces
    an implementation; by default CUDA runs Triton, CPU runs torch (or Triton's interpreter when
    TRITON_INTERPRET=1). The Triton result is laid out (B, Nq, Hq, Dv) in memory, like torch's flash
    backend, so `out.transpose(1, 2).reshape(B, Nq, -1)` merges heads without a copy.

    dropout_p > 0 drops attention weights whenever it is given, as torch's function does (modules
    pass it only in training). On the Triton backend the mask comes from Philox bits seeded by one
    draw from torch's default generator, so `torch.manual_seed` repeats it, and
    `attention_dropout_mask` shows it.

    The keyword-only variants (kernels/sdpa/variants.py; the Attention API guide has examples):
    `window=(left, right)` a sliding window (i - left <= j <= i + right), `softcap=c` scores
    c * tanh(scores / c), `alibi_slopes` (Hq,) or (B, Hq) adds -slope * |i - j|, `sinks` (Hq,) logits
    that join each row's softmax denominator. Every backend runs them, with gradients for q, k, v
    and the sinks (and a float attn_mask); gradients for the slopes only off triton.
    """
    if isinstance(attn_mask, BlockMask):  # its map is remembered on its mask, where the launchers look
        attn_mask = attn_mask.mask
    # Host time: a small call is bound by this Python, run right after other ops have left the CPU's
    # caches cold, where every function and module touched costs more than in a loop. On the torch
    # backend the common call leaves to SDPA what SDPA checks itself; elsewhere it takes one check
    # (which returns the device). Both test the recorder list in place.
    plain = window is None and softcap is None and alibi_slopes is None and sinks is None
    if plain and torch_chosen(backend, query):
        out = torch_backend.sdpa_unless_refused(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        if out is not None:
            if OPEN_RECORDERS:
                note_backend_ran("torch")
            return out
    device = plain_call_device(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    if device is None:
        check_every_attention_input(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        device = query.device
    variants = None if plain else attention_variants(query, window=window, softcap=softcap,
                                                     alibi_slopes=alibi_slopes, sinks=sinks)
    chosen = resolve_backend(backend, device)
    if variants is not None and chosen == "triton":
        out = _run_triton(query, key, value, attn_mask, dropout_p, is_causal, scale, variants)
    elif variants is not None:
        out = run_attention_with_variants(chosen, query, key, value, attn_mask, dropout_p, is_causal, scale,
                                          enable_gqa, variants)
    elif chosen == "triton":
        out = _run_triton(query, key, value, attn_mask, dropout_p, is_causal, scale)
    elif chosen == "torch":
        out = torch_backend.sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    else:
        out = reference.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p,
                                                     is_causal=is_causal, scale=scale, enable_gqa=enable_gqa)
    if OPEN_RECORDERS:
        note_backend_ran(chosen)
    return out


def causal_attention_with_key_padding(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_padding: torch.Tensor,
    dropout_p: float = 0.0,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    window: tuple[int | None, int | None] | None = None,
    softcap: float | None = None,
    alibi_slopes: torch.Tensor | None = None,
    sinks: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Causal attention (top-left aligned, as `attention(..., is_causal=True)`) over the keys that
    `key_padding` (B, Nk) bool marks real (True = attend); rank-4 q/k/v and the keyword-only variants
    as in `attention`.

    torch SDPA refuses `is_causal` together with a mask, so this is otherwise a materialised
    (B, 1, Nq, Nk) mask. The Triton kernel takes both at once: it never visits the key tiles above the
    diagonal, and skips those outside each batch element's span of real keys (left or right padding).
    A query with no real key at or before it returns zeros. Other backends run `attention` with the
    equivalent bool mask."""
    check_attention_inputs(query, key, value, None, dropout_p, True, scale, enable_gqa)
    check_key_padding(key_padding, query, key)
    chosen = resolve_backend(backend, query.device)
    padding = key_padding[:, None, None, :]  # (B, 1, 1, Nk)
    if chosen != "triton":
        causal = causal_keep_mask(query.size(2), key.size(2), query.device)
        return attention(query, key, value, attn_mask=causal & padding, dropout_p=dropout_p, scale=scale,
                         enable_gqa=enable_gqa, window=window, softcap=softcap, alibi_slopes=alibi_slopes,
                         sinks=sinks, backend=chosen)
    variants = attention_variants(query, window=window, softcap=softcap, alibi_slopes=alibi_slopes, sinks=sinks)
    out = _run_triton(query, key, value, padding, dropout_p, True, scale, variants)
    note_backend_ran(chosen)
    return out


def attention_dropout_mask(query: torch.Tensor, key: torch.Tensor, dropout_p: float) -> torch.Tensor:
    """The keep-mask (B, Hq, Nq, Nk), True = kept, of the next Triton `attention(query, key, ...,
    dropout_p=dropout_p)` call made with torch's generator in the state it has now: this function
    takes the same seed draw. For debugging and for replaying a fused call exactly, e.g. with
    `reference.scaled_dot_product_attention(..., dropout_p=p, dropout_mask=mask)`."""
    if not 0.0 < dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in (0, 1), got {dropout_p!r}")
    if not TRITON_AVAILABLE:
        raise RuntimeError(f"attention_dropout_mask replays the Triton kernel's mask, and triton cannot be "
                           f"imported here ({TRITON_IMPORT_ERROR})")
    heads = query.size(-3) if query.dim() == 4 else 1
    dropout = Dropout(dropout_p, int(draw_seed(ATTENTION_SEED_HIGH)))
    mask = dropout_keep_mask(query.size(0), heads, query.size(-2), key.size(-2), dropout, query.device)
    return mask if query.dim() == 4 else mask.squeeze(1)
