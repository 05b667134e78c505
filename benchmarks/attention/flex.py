"""FlexAttention (`torch.nn.attention.flex_attention`, compiled) as a benchmark provider.

A mask tensor becomes what a FlexAttention user would pass: a bool mask a `mask_mod` reading it, turned
into a block mask (fully masked blocks are skipped), a float mask a `score_mod` adding it, `is_causal` a
`q_idx >= kv_idx` block mask (top-left, as torch SDPA), packed documents a block mask from their
document ids (the same document, causal). The score variants: a sliding window its band's
block mask, soft-capping and ALiBi a `score_mod`, sinks the output rescaled by the log-sum-exp. Block masks are built once per mask tensor, by
`prepare`, outside the timed calls; the compiled kernels are built on the first call of each mask kind
and shape.
"""

import torch
import torch._dynamo
from torch.utils.weak import WeakIdKeyDictionary

from benchmarks.attention.cases import AttentionInputs

try:
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
except ImportError as missing:  # torch before 2.5
    flex_attention = None
    _IMPORT_ERROR = f"torch {torch.__version__} has no FlexAttention ({missing})"
else:
    _IMPORT_ERROR = None

# Each mask kind and shape may compile its own kernel: more than torch.compile's default of 8 per function.
RECOMPILE_LIMIT = 64


def flex_unavailable_reason(device: torch.device) -> str | None:
    """Why FlexAttention cannot run on this device at all; None when it can be tried."""
    if _IMPORT_ERROR is not None:
        return _IMPORT_ERROR
    if device.type == "cpu" and not _has_cpp_compiler():
        return "FlexAttention compiles through torch.compile's CPU backend (inductor), which needs a C++ compiler"
    return None


def _has_cpp_compiler() -> bool:
    """Whether inductor finds the C++ compiler it builds CPU kernels with (g++ unless configured)."""
    from torch._inductor import cpp_builder, exc

    try:
        cpp_builder.get_cpp_compiler()
    except exc.InvalidCxxCompiler:
        return False
    return True


def recompile_budget() -> torch._dynamo.config.patch:
    """Entered around a measurement: lets every mask kind and shape compile, with fullgraph=True failing
    loudly (an unavailable row) instead of falling back to uncompiled FlexAttention past the limit."""
    return torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT)


class FlexAttention:
    """Calls compiled FlexAttention on `AttentionInputs`; keeps each mask tensor's block mask or score_mod."""

    def __init__(self, device: torch.device) -> None:
        # CUDA: torch.compile's default, which generalises over lengths after the first recompile. The CPU
        # compiles each shape as it is: inductor's CPU template (torch 2.13) fails to compile some
        # dynamic-shape variants (a (B, 1, N, N) bool mask after other masks: undeclared cur_kvSplitSize5).
        dynamic = None if device.type == "cuda" else False
        self._compiled = torch.compile(flex_attention, fullgraph=True, dynamic=dynamic)
        self._by_mask: WeakIdKeyDictionary = WeakIdKeyDictionary()  # mask tensor -> flex_attention kwargs
        # (Nq, Nk, device, what else decides it) -> the causal, band or documents block mask
        self._block_masks: dict[tuple, BlockMask] = {}

    def prepare(self, inputs: AttentionInputs) -> None:
        """Build the block mask (or score_mod) of these inputs now, outside any timing."""
        self._mask_arguments(inputs)

    def __call__(self, inputs: AttentionInputs) -> torch.Tensor:
        if inputs.q.device.type == "cpu" and inputs.q.requires_grad:  # torch's own error is a compile trace
            raise NotImplementedError("FlexAttention has no backward on the CPU")
        mask_arguments = self._mask_arguments(inputs)
        sinks = inputs.variants.get("sinks")
        if sinks is None:
            return self._compiled(inputs.q, inputs.k, inputs.v, enable_gqa=inputs.grouped, **mask_arguments)
        # Sinks as a FlexAttention user adds them: a sink joins the row's denominator, so the output
        # scales by exp(lse) / (exp(lse) + exp(sink)) = sigmoid(lse - sink).
        if inputs.q.device.type == "cpu":  # torch's own error is a long inductor trace
            raise NotImplementedError("FlexAttention's log-sum-exp (return_lse), which sinks need, does not "
                                      "compile for the CPU")
        out, lse = self._compiled(inputs.q, inputs.k, inputs.v, enable_gqa=inputs.grouped, return_lse=True,
                                  **mask_arguments)
        return out * torch.sigmoid(lse - sinks.view(-1, 1)).unsqueeze(-1).to(out.dtype)

    def _mask_arguments(self, inputs: AttentionInputs) -> dict:
        mask, (batch, heads, q_len, _), kv_len = inputs.attn_mask, inputs.q.shape, inputs.k.size(-2)
        variants = inputs.variants
        if inputs.documents is not None:  # every input set's documents are the same: one block mask
            documents = inputs.documents
            return {"block_mask": self._block_mask(_within_documents(documents.ids), inputs, documents.lengths)}
        if "window" in variants:
            window = variants["window"]
            return {"block_mask": self._block_mask(_band(window[0]), inputs, "window", window)}
        if inputs.is_causal:
            return {"block_mask": self._block_mask(_causal, inputs), **_score_mod(variants)}
        if mask is None:
            return {}
        if mask not in self._by_mask:
            self._by_mask[mask] = _from_mask(mask, (batch, heads, q_len, kv_len))
        return self._by_mask[mask]

    def _block_mask(self, mask_mod, inputs: AttentionInputs, *decides) -> BlockMask:
        """The block mask of `mask_mod`, the same for every batch row and head, built once per shape,
        device and what else `decides` it."""
        q_len, kv_len, device = inputs.q.size(-2), inputs.k.size(-2), inputs.q.device
        key = (q_len, kv_len, device, decides)
        if key not in self._block_masks:
            self._block_masks[key] = create_block_mask(mask_mod, None, None, q_len, kv_len, device=device)
        return self._block_masks[key]


def _causal(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def _band(left: int):
    """The mask_mod of a causal sliding window: each query sees itself and the `left` keys before it."""

    def in_band(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx <= left)

    return in_band


def _within_documents(ids: torch.Tensor):
    """The mask_mod of packed documents: a query sees the keys of its own document up to itself."""

    def same_document(b, h, q_idx, kv_idx):
        return (ids[q_idx] == ids[kv_idx]) & (q_idx >= kv_idx)

    return same_document


def _score_mod(variants: dict) -> dict:
    """flex_attention's score_mod for soft-capping or ALiBi (the variants a score_mod expresses)."""
    if "softcap" in variants:
        cap = variants["softcap"]

        def capped(score, b, h, q_idx, kv_idx):
            return cap * torch.tanh(score / cap)

        return {"score_mod": capped}
    if "alibi_slopes" in variants:
        slopes = variants["alibi_slopes"]

        def alibi(score, b, h, q_idx, kv_idx):
            return score - slopes[h] * (q_idx - kv_idx).abs()

        return {"score_mod": alibi}
    return {}


def _from_mask(mask: torch.Tensor, shape: tuple[int, int, int, int]) -> dict:
    """flex_attention's keyword arguments for an SDPA-style mask that broadcasts to (B, H, Nq, Nk)."""
    full = mask.view((1,) * (4 - mask.dim()) + mask.shape)
    expanded = full.expand(shape)  # stride 0 on broadcast dims: no copy
    if mask.dtype != torch.bool:

        def add_mask(score, b, h, q_idx, kv_idx):
            return score + expanded[b, h, q_idx, kv_idx]

        return {"score_mod": add_mask}

    def read_mask(b, h, q_idx, kv_idx):
        return expanded[b, h, q_idx, kv_idx]

    # The block mask per batch row / head only where the mask differs along that dim.
    batch, heads = (size if full.size(dim) > 1 else None for dim, size in enumerate(shape[:2]))
    block_mask = create_block_mask(read_mask, batch, heads, shape[2], shape[3], device=mask.device)
    return {"block_mask": block_mask}
