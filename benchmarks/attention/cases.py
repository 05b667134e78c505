"""The attention benchmarks' cases (shape, mask kind and mode), the case sets of the `attention`,
`backward` and `masked` sweeps, and the cases' random inputs."""

import enum
from dataclasses import dataclass, field, replace

import torch

from benchmarks.attention.documents import PackedDocuments, document_lengths, packed_documents, padded_documents
from benchmarks.attention.modes import Mode

_GPU_TOKENS = 16 * 1024  # B * N per case: enough work to fill the card at every length
_GPU_MODEL_WIDTH = 2048  # H * D


class MaskKind(str, enum.Enum):
    """The masks users pass. Bool masks: True = attend. Padding lengths are random per batch row."""

    NONE = "none"
    CAUSAL = "causal"  # is_causal=True, no mask tensor
    KEY_PADDING = "key-padding"  # bool (B, 1, 1, N), valid lengths in [N/2, N]: ~25% padding
    KEY_PADDING_HALF = "key-padding-50"  # bool (B, 1, 1, N), valid lengths in [N/4, 3N/4]: ~50% padding
    SLIDING_WINDOW = "sliding-window"  # bool (N, N): query i sees keys i - N/4 < j <= i (Mistral-style)
    ADDITIVE_BIAS = "additive-bias"  # float (B, 1, N, N) in q's dtype: -slope * |i - j|, ALiBi-like
    CAUSAL_KEY_PADDING = "causal-key-padding"  # bool (B, 1, N, N): causal and ~25% key padding in one mask
    # The score variants (`kernels.attention`'s keyword options), each on causal attention as the models
    # that use them run it; SDPA gets the equivalent mask tensor where one exists (cases.sdpa_equivalent).
    WINDOW = "window"  # window=(N/4 - 1, 0) with is_causal: the band SLIDING_WINDOW's mask holds (Mistral)
    SOFTCAP = "softcap"  # softcap=50 (Gemma 2's attention cap), causal
    ALIBI = "alibi"  # ALiBi slopes 2^(-8h/H), h = 1..H, causal (Bloom)
    SINKS = "sinks"  # one standard-normal sink logit per head, causal (gpt-oss)
    # Packed documents (`document_lengths`), causal within each: the same documents in every batch row.
    DOCUMENTS = "documents"  # bool (N, N) block-diagonal causal mask; varlen_attention on the documents
    PADDED_DOCUMENTS = "documents-padded"  # the B rows' documents padded to the longest, one per batch row


@dataclass(frozen=True)
class AttentionCase:
    batch: int
    heads: int
    seq_len: int
    head_dim: int
    mask: MaskKind
    mode: Mode = Mode.FORWARD

    measured_fields = ("tflops", "ceiling_fraction", "speedup_vs_sdpa_default", "speedup_vs_flex",
                       "rate_vs_causal", "speedup_vs_padded", "max_abs_error", "max_abs_errors",
                       "peak_memory_bytes")

    @property
    def causal(self) -> bool:
        return self.mask in CAUSAL_KINDS

    @property
    def window(self) -> int | None:
        """The keys each query sees under a WINDOW case (itself and the `window - 1` before it)."""
        return max(1, self.seq_len // _WINDOW_FRACTION) if self.mask is MaskKind.WINDOW else None

    @property
    def documents(self) -> tuple[int, ...] | None:
        """The lengths of the documents packed into each batch row, under the document kinds."""
        return document_lengths(self.seq_len) if self.mask in DOCUMENT_KINDS else None

    @property
    def padding_fraction(self) -> float | None:
        """The share of a padded batch of the documents that is padding: 1 - N / (documents * longest)."""
        lengths = self.documents
        return None if lengths is None else 1 - self.seq_len / (len(lengths) * max(lengths))

    @property
    def flops(self) -> int:
        return self.mode.flops(self)

    @property
    def label(self) -> str:
        label = f"B{self.batch} H{self.heads} N{self.seq_len} D{self.head_dim} {self.mask.value}"
        return label if self.mode is Mode.FORWARD else f"{label} {self.mode.value}"

    def in_mode(self, mode: Mode) -> "AttentionCase":
        return replace(self, mode=mode)

    def record(self) -> dict:
        return {"batch": self.batch, "heads": self.heads, "seq_len": self.seq_len, "head_dim": self.head_dim,
                "mask": self.mask.value, "causal": self.causal, "mode": self.mode.value, "flops": self.flops,
                "documents": None if self.documents is None else len(self.documents),
                "padding_fraction": self.padding_fraction}


@dataclass(frozen=True)
class CaseSet:
    """Which cases a sweep measures: its mask kinds, and its head dims and lengths per device.

    Lengths are powers of two from `shortest` to `longest`; the gradient modes and --quick each halve
    `longest`, and the CPU's gradient cases start at 64 (Triton's interpreter runs the smallest one).
    """

    masks: tuple[MaskKind, ...]
    gpu_head_dims: tuple[int, ...] = (64, 128)
    gpu_lengths: tuple[int, int] = (512, 16384)
    cpu_lengths: tuple[int, int] = (128, 512)


CAUSAL_KINDS = frozenset({MaskKind.CAUSAL, MaskKind.WINDOW, MaskKind.SOFTCAP, MaskKind.ALIBI, MaskKind.SINKS})
SCORE_VARIANT_KINDS = (MaskKind.WINDOW, MaskKind.SOFTCAP, MaskKind.ALIBI, MaskKind.SINKS)
DOCUMENT_KINDS = frozenset({MaskKind.DOCUMENTS, MaskKind.PADDED_DOCUMENTS})
ATTENTION_CASES = CaseSet((MaskKind.NONE, MaskKind.CAUSAL, MaskKind.KEY_PADDING))
# The masks users have, each a tensor the kernel reads (causal + padding included, as Hugging Face builds it).
MASKED_CASES = CaseSet(
    (
        MaskKind.CAUSAL,  # the plain kernel the score variants are measured against (rate_vs_causal)
        MaskKind.KEY_PADDING,
        MaskKind.KEY_PADDING_HALF,
        MaskKind.SLIDING_WINDOW,
        MaskKind.ADDITIVE_BIAS,
        MaskKind.CAUSAL_KEY_PADDING,
        *SCORE_VARIANT_KINDS,
        MaskKind.DOCUMENTS,
    ),
    gpu_head_dims=(128,),
    gpu_lengths=(2048, 16384),
    cpu_lengths=(128, 256),
)
# The padded vs packed training step: the same documents as a padded batch and packed, forward + backward.
TRAINING_MASKS = (MaskKind.PADDED_DOCUMENTS, MaskKind.DOCUMENTS)


def attention_cases(
    device: torch.device, quick: bool, gradients: bool = False, case_set: CaseSet = ATTENTION_CASES
) -> list[AttentionCase]:
    """GPU: B*N = 16k tokens, H*D = 2048, the set's lengths. CPU: B=2, H=4, D=64 (fp32 on a few cores)."""
    if device.type == "cuda":
        shortest, longest = case_set.gpu_lengths
        longest //= (2 if gradients else 1) * (2 if quick else 1)
        return [
            AttentionCase(_GPU_TOKENS // n, _GPU_MODEL_WIDTH // d, n, d, mask)
            for d in case_set.gpu_head_dims
            for mask in case_set.masks
            for n in _powers_of_two(shortest, longest)
        ]
    shortest, longest = case_set.cpu_lengths
    longest //= (2 if gradients else 1) * (2 if quick else 1)
    lengths = _powers_of_two(min(shortest, 64) if gradients else shortest, longest)
    return [AttentionCase(2, 4, n, 64, mask) for mask in case_set.masks for n in lengths]


def _powers_of_two(shortest: int, longest: int) -> list[int]:
    return [1 << e for e in range(shortest.bit_length() - 1, longest.bit_length())]


def smallest_shape_cases(cases: list[AttentionCase]) -> list[AttentionCase]:
    """The cases of the smallest (B, H, N, D) shape, one per mask kind."""

    def size(case: AttentionCase) -> int:
        return case.batch * case.heads * case.seq_len**2 * case.head_dim

    smallest = min(size(case) for case in cases)
    return [case for case in cases if size(case) == smallest]


@dataclass(frozen=True)
class AttentionInputs:
    q: torch.Tensor  # (B, H, N, D)
    k: torch.Tensor  # (B, Hkv, Nk, D)
    v: torch.Tensor  # (B, Hkv, Nk, D)
    attn_mask: torch.Tensor | None
    is_causal: bool
    dout: torch.Tensor | None = None  # (B, H, N, D): the output's gradient, when q, k, v require grad
    # `kernels.attention`'s score-variant keywords (window, softcap, alibi_slopes, sinks) of the case.
    variants: dict = field(default_factory=dict)
    # A `documents` case's documents (attn_mask is their dense mask), for FlexAttention and varlen_attention.
    documents: PackedDocuments | None = None
    # A `documents-padded` case's (B, N) bool valid keys (its batch: the documents, padded): ours runs
    # causal_attention_with_key_padding on them, the others attn_mask, the same attention as one bool mask.
    key_padding: torch.Tensor | None = None

    @property
    def leaves(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.q, self.k, self.v

    @property
    def grouped(self) -> bool:
        """Fewer key/value heads than query heads (GQA / MQA): calls pass `enable_gqa`."""
        return self.q.size(1) != self.k.size(1)

    @property
    def nbytes(self) -> int:
        tensors = (self.q, self.k, self.v, self.attn_mask, self.dout)
        return sum(t.nbytes for t in tensors if t is not None)

    def detached(self) -> "AttentionInputs":
        """The same tensors (views, no copy) outside autograd: a forward-only call builds no graph."""
        return replace(self, q=self.q.detach(), k=self.k.detach(), v=self.v.detach(), dout=None)


def make_inputs(
    case: AttentionCase, dtype: torch.dtype, device: torch.device, seed: int, gradients: bool = False
) -> AttentionInputs:
    """Standard-normal q, k, v (never zeros: they hide unwritten outputs and time unrealistically).

    With `gradients`, q, k, v require grad and a standard-normal `dout` comes with them; q, k, v and the
    mask are the same draws either way. A `documents-padded` case's batch is its documents padded: (B *
    documents, H, longest, D).
    """
    generator = torch.Generator(device).manual_seed(seed)
    masks = _document_masks(case, device)
    shape = (case.batch, case.heads, case.seq_len, case.head_dim)
    if "key_padding" in masks:  # one document a row, padded to the longest
        rows, longest = masks["key_padding"].shape
        shape = (rows, case.heads, longest, case.head_dim)
    q, k, v = (torch.randn(shape, generator=generator, device=device, dtype=dtype) for _ in range(3))
    if not masks:
        masks = {"attn_mask": _mask(case, dtype, device, generator)}
    variants = _variants(case, device, generator)
    if not gradients:
        return AttentionInputs(q, k, v, is_causal=case.causal, variants=variants, **masks)
    dout = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    return AttentionInputs(*(t.requires_grad_() for t in (q, k, v)), is_causal=case.causal, dout=dout,
                           variants=variants, **masks)


def _document_masks(case: AttentionCase, device: torch.device) -> dict:
    """AttentionInputs' mask fields of a document kind (documents.py); {} for the others."""
    if case.mask is MaskKind.DOCUMENTS:
        mask, documents = packed_documents(case.batch, case.heads, case.seq_len, device)
        return {"attn_mask": mask, "documents": documents}
    if case.mask is MaskKind.PADDED_DOCUMENTS:
        key_padding, mask = padded_documents(case.batch, case.seq_len, device)
        return {"attn_mask": mask, "key_padding": key_padding}
    return {}


# Valid key lengths as fractions of N, [low, high]: every query row keeps keys, and the FLOP count (all N
# keys) stays a count of the work a dense kernel does.
_VALID_LENGTHS = {MaskKind.KEY_PADDING: (1 / 2, 1), MaskKind.KEY_PADDING_HALF: (1 / 4, 3 / 4)}
_WINDOW_FRACTION = 4  # the sliding window spans N / 4 keys
_SLOPES = (1 / 16, 1 / 2)  # range of the ALiBi-like slopes, one per batch row (per head in ALiBi itself)


_SOFTCAP = 50.0  # Gemma 2's attention logit cap


def alibi_slopes(heads: int, device: torch.device) -> torch.Tensor:
    """ALiBi's geometric slopes (heads,), fp32: 2^(-8h/H) for h = 1..H."""
    return torch.exp2(-8.0 * torch.arange(1, heads + 1, device=device, dtype=torch.float32) / heads)


def _variants(case: AttentionCase, device: torch.device, generator: torch.Generator) -> dict:
    if case.mask is MaskKind.WINDOW:
        return {"window": (case.window - 1, 0)}
    if case.mask is MaskKind.SOFTCAP:
        return {"softcap": _SOFTCAP}
    if case.mask is MaskKind.ALIBI:
        return {"alibi_slopes": alibi_slopes(case.heads, device)}
    if case.mask is MaskKind.SINKS:
        return {"sinks": torch.randn(case.heads, generator=generator, device=device)}
    return {}


def sdpa_equivalent(inputs: AttentionInputs) -> tuple[torch.Tensor | None, bool]:
    """(attn_mask, is_causal) that give torch SDPA the inputs' attention: the window's causal band as a
    bool mask, causal ALiBi as a float (1, H, N, N) bias; NotImplementedError for soft-capping and sinks,
    which SDPA cannot express."""
    variants = inputs.variants
    if not variants:
        return inputs.attn_mask, inputs.is_causal
    n_queries, n_keys, device = inputs.q.size(-2), inputs.k.size(-2), inputs.q.device
    distance = torch.arange(n_queries, device=device).view(-1, 1) - torch.arange(n_keys, device=device)
    if "window" in variants:
        left, _ = variants["window"]
        return (distance >= 0) & (distance <= left), False
    if "alibi_slopes" in variants:
        bias = -variants["alibi_slopes"].view(-1, 1, 1) * distance.abs()
        bias = bias.masked_fill(distance < 0, float("-inf")).unsqueeze(0).to(inputs.q.dtype)
        return bias, False
    raise NotImplementedError(f"torch SDPA has no {' or '.join(variants)}")


def _mask(
    case: AttentionCase, dtype: torch.dtype, device: torch.device, generator: torch.Generator
) -> torch.Tensor | None:
    """The mask tensor of the case's kind (a float one in the query's dtype); None for none and causal."""
    n, kind = case.seq_len, case.mask
    positions = torch.arange(n, device=device)
    if kind in _VALID_LENGTHS:
        return _key_padding(case.batch, n, _VALID_LENGTHS[kind], device, generator).view(case.batch, 1, 1, n)
    if kind is MaskKind.SLIDING_WINDOW:
        distance = positions.view(n, 1) - positions  # (N, N): query i minus key j
        return (distance >= 0) & (distance < max(1, n // _WINDOW_FRACTION))
    if kind is MaskKind.ADDITIVE_BIAS:
        low, high = _SLOPES
        slopes = low + (high - low) * torch.rand(case.batch, 1, 1, 1, generator=generator, device=device)
        distance = (positions.view(n, 1) - positions).abs()
        return (-slopes * distance).to(dtype)
    if kind is MaskKind.CAUSAL_KEY_PADDING:
        keys = _key_padding(case.batch, n, _VALID_LENGTHS[MaskKind.KEY_PADDING], device, generator)
        causal = positions.view(n, 1) >= positions
        return causal & keys.view(case.batch, 1, 1, n)
    return None


def _key_padding(
    batch: int, n: int, fractions: tuple[float, float], device: torch.device, generator: torch.Generator
) -> torch.Tensor:
    """(B, N) bool: True for the first `length` keys of each row, lengths drawn in [low * N, high * N]."""
    low, high = (max(1, round(fraction * n)) for fraction in fractions)
    lengths = torch.randint(low, high + 1, (batch, 1), generator=generator, device=device)
    return torch.arange(n, device=device) < lengths
