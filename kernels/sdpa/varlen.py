"""`varlen_attention`: attention over packed variable-length sequences (FlashAttention's varlen layout).

The backends (docs/varlen.md):
- "triton": the attention kernels in their VARLEN mode (kernels/sdpa/triton/sequences.py), through the
  custom ops of varlen_custom_ops.py: forward and backward, no padding, grids sized from max_seqlen_*,
  no host synchronisation unless the offsets' values are checked (`check_offsets`).
- "torch": one torch SDPA call per sequence, on views of the packed tensors (nothing padded), with
  autograd's gradients. It reads the offsets on the host to loop, which on CUDA is one device
  synchronisation per call.
- "reference": the exact math of `reference.varlen_attention` (one block-diagonal mask; any dtype).
"""
import torch
import torch.nn.functional as F

import reference
from kernels.shared.backends import note_backend_ran, resolve_backend
from kernels.shared.custom_ops import ATTENTION_SEED_HIGH, draw_seed, needs_gradient
from kernels.shared.triton_availability import TRITON_AVAILABLE
from kernels.sdpa.torch_variants import torch_attention_with_variants
from kernels.sdpa.validation import check_attention_kernel_limits
from kernels.sdpa.variants import AttentionVariants, attention_variants, variant_op_arguments
from kernels.sdpa.varlen_checks import check_offset_values, check_varlen_inputs

if TRITON_AVAILABLE:  # without triton, resolve_backend never picks "triton"
    from kernels.sdpa import varlen_custom_ops

VARLEN_BACKENDS = ("triton", "torch", "reference")  # the backends that run varlen_attention


def _per_sequence_sdpa(q, k, v, offsets_q: list[int], offsets_k: list[int], dropout_p: float, is_causal: bool,
                       scale: float | None, enable_gqa: bool, variants: AttentionVariants | None) -> torch.Tensor:
    """torch SDPA on each sequence's (heads, length, head_dim) views; outputs concatenated back. With
    variants, their torch implementation per sequence ((B, Hq) slopes: sequence b's row)."""
    outputs = []
    for index, ((start_q, end_q), (start_k, end_k)) in enumerate(zip(zip(offsets_q, offsets_q[1:]),
                                                                      zip(offsets_k, offsets_k[1:]))):
        views = q[start_q:end_q].transpose(0, 1), k[start_k:end_k].transpose(0, 1), v[start_k:end_k].transpose(0, 1)
        if variants is None:
            out = F.scaled_dot_product_attention(*views, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                                                 enable_gqa=enable_gqa)  # (Hq, length_q, Dv)
        else:
            options = variants.as_kwargs()
            if options["alibi_slopes"] is not None and options["alibi_slopes"].dim() == 2:
                options["alibi_slopes"] = options["alibi_slopes"][index]
            out = torch_attention_with_variants(*(view.unsqueeze(0) for view in views), dropout_p=dropout_p,
                                                is_causal=is_causal, scale=scale, enable_gqa=enable_gqa,
                                                **options)[0]
        outputs.append(out.transpose(0, 1))
    return torch.cat(outputs)  # (total_q, Hq, Dv)


def _run_triton(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p: float,
                is_causal: bool, scale: float | None, variants: AttentionVariants | None) -> torch.Tensor:
    """The varlen custom op; the log-sum-exp is stored only when autograd will need it."""
    check_attention_kernel_limits(q, v)
    scale = reference.default_scale(q.shape[-1]) if scale is None else float(scale)
    seed = draw_seed(ATTENTION_SEED_HIGH) if dropout_p > 0.0 else None
    options = () if variants is None else variant_op_arguments(variants)
    needs_grad = needs_gradient(q, k, v, *options)
    out, _ = varlen_custom_ops.varlen_attention_forward(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                                        max_seqlen_k, is_causal, scale, float(dropout_p), seed,
                                                        needs_grad, *options)
    return out


def varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    *,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    window: tuple[int | None, int | None] | None = None,
    softcap: float | None = None,
    alibi_slopes: torch.Tensor | None = None,
    sinks: torch.Tensor | None = None,
    backend: str | None = None,
    check_offsets: bool | None = None,
) -> torch.Tensor:
    """Attention within each of B packed sequences of different lengths, with no padding.

    q (total_q, Hq, D), k (total_k, Hkv, D), v (total_k, Hkv, Dv): the sequences one after another.
    cu_seqlens_q / cu_seqlens_k, int32 (B + 1,): sequence b is rows cu_seqlens_q[b]:cu_seqlens_q[b + 1]
    of q and cu_seqlens_k[b]:cu_seqlens_k[b + 1] of k and v (lengths may be 0, and differ between q and
    k). max_seqlen_q / max_seqlen_k: ints at least every sequence's length (they size a kernel's grid
    without reading the offsets). Returns (total_q, Hq, Dv).

    Per sequence the semantics are `kernels.attention`'s: is_causal is top-left aligned, enable_gqa
    shares each key/value head among Hq / Hkv query heads, a query with no key to attend returns
    zeros, dropout_p drops attention weights whenever it is given. `backend` as in `kernels.attention`.
    So are the variants `window`, `softcap`, `alibi_slopes` and `sinks`, per sequence: the window and
    ALiBi's distances use positions within each sequence, (B, Hq) slopes give each sequence its row.

    `check_offsets`: whether the triton backend checks the offsets' values (start at 0, non-decreasing,
    end at the totals, no length over max_seqlen_*), which reads them on the host. None (default):
    except on CUDA tensors, where the read is a device synchronisation; True: always; False: never.
    Unchecked bad offsets give undefined results (a kernel may read rows outside q, k, v). The torch
    and reference backends read the offsets anyway and always check them.
    """
    check_varlen_inputs(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p, is_causal,
                        scale, enable_gqa)
    if check_offsets is not None and not isinstance(check_offsets, bool):
        raise TypeError(f"check_offsets must be a bool or None, got {check_offsets!r}")
    variants = None
    if window is not None or softcap is not None or alibi_slopes is not None or sinks is not None:
        variants = attention_variants(q.transpose(0, 1).unsqueeze(0), window=window, softcap=softcap,
                                      alibi_slopes=alibi_slopes, sinks=sinks, batch=cu_seqlens_q.size(0) - 1)
    chosen = resolve_backend(backend, q.device)
    if chosen == "triton":
        if check_offsets or (check_offsets is None and q.device.type != "cuda"):
            check_offset_values(cu_seqlens_q.tolist(), cu_seqlens_k.tolist(), q.size(0), k.size(0), max_seqlen_q,
                                max_seqlen_k)
        out = _run_triton(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p, is_causal,
                          scale, variants)
    else:
        offsets_q, offsets_k = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()  # the loop needs them on the host
        check_offset_values(offsets_q, offsets_k, q.size(0), k.size(0), max_seqlen_q, max_seqlen_k)
        if chosen == "torch":
            out = _per_sequence_sdpa(q, k, v, offsets_q, offsets_k, dropout_p, is_causal, scale, enable_gqa,
                                     variants)
        else:
            out = reference.varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, dropout_p=dropout_p,
                                             is_causal=is_causal, scale=scale, enable_gqa=enable_gqa,
                                             **({} if variants is None else variants.as_kwargs()))
    note_backend_ran(chosen)
    return out
