"""What the report compiles: every shipped kernel, through its real launcher, for each dtype, head
dim and variant that changes the compiled code.

A case runs one launcher on small CPU tensors inside `recording_launches`; the launches it records
(one per tile the pruner keeps, plus any helper kernel such as the backward's delta pre-pass) are
what gets compiled. Shapes are small but have the properties of real ones: lengths that divide
the tiles (but in `varlen` and the `uneven` variants), contiguous head dims, 16-byte aligned pointers, and
the grouping of real calls (one query head per key/value head in the forward and backward, a GQA
group of 4 in decode).
"""
import contextlib
import itertools
from dataclasses import dataclass, replace

import torch
import triton

from benchmarks.compile.recorder import Launch, recording_launches
from benchmarks.compile.targets import Arch
from benchmarks.compile.yardstick import launch_yardstick_forward
from kernels.positional.triton.encoding import Positions, launch_positional_encoding
from kernels.sdpa.triton import configs
from kernels.sdpa.triton.backward import launch_backward
from kernels.sdpa.triton.common import accumulator_dtype
from kernels.sdpa.triton.decode import launch_decode
from kernels.sdpa.triton.descriptors import TENSOR_DESCRIPTOR_CAPABILITY, force_tensor_descriptors
from kernels.sdpa.triton.forward import launch_forward
from kernels.sdpa.triton.sequences import PackedSequences
from kernels.sdpa.triton.varlen import launch_varlen_backward, launch_varlen_forward
from kernels.sdpa.triton.warp_specialization import WARP_SPECIALIZATION_CAPABILITY, force_warp_specialization
from kernels.sdpa.variants import AttentionVariants
from kernels.shared.dropout import Dropout

DTYPES = ("float16", "bfloat16", "float32", "float64")
HEAD_DIMS = (64, 128, 256)
# varlen: packed sequences (the kernels' VARLEN mode), causal: its register peak. uneven_causal: a
# dense causal call whose lengths divide no tile (EVEN_M/EVEN_N off: bounds checks). The attention
# variants (kernels/sdpa/triton/score_variants.py): each alone, all four with causality
# ("score_variants_causal": the register peak of the score math), and all four with causality and
# what else raises the pressure: lengths that divide no tile ("score_variants_uneven_causal") or
# dropout ("score_variants_dropout_causal").
SCORE_VARIANTS = ("window", "softcap", "alibi", "sinks")
SDPA_VARIANTS = ("none", "causal", "key_padding", "bool_mask", "additive_mask", "dropout", "varlen", "uneven_causal",
                 *SCORE_VARIANTS, "score_variants_causal", "score_variants_uneven_causal",
                 "score_variants_dropout_causal")
# additive_mask_grad: the backward of a trainable float mask (the dQ kernel stores dS, MASK_GRAD).
BACKWARD_VARIANTS = (*SDPA_VARIANTS, "additive_mask_grad")
# wide_group: a GQA group of 64 query heads with a key-padding mask, decode's tallest tile. Decode
# takes neither causality nor dropout: score_variants_uneven is all four over a key count that
# divides no tile.
DECODE_VARIANTS = ("none", "key_padding", "additive_mask", *SCORE_VARIANTS, "score_variants", "score_variants_uneven",
                   "wide_group")
POSITIONAL_VARIANTS = ("add", "gather", "position_ids", "dropout", "backward")
POSITIONAL_WIDTHS = (64, 512, 1024)  # d_model: the tile's column count follows it up to 1024
# "yardstick": our minimal TMA forward (yardstick.py), compiled at the forward's tiles to compare with it;
# 16-bit, no variant, and only when asked for (not in DEFAULT_LAUNCHERS).
LAUNCHERS = ("forward", "backward", "decode", "positional", "yardstick")
DEFAULT_LAUNCHERS = ("forward", "backward", "decode", "positional")
YARDSTICK_DTYPES = ("float16", "bfloat16")
_AUTOTUNED = ("forward", "backward", "decode")

_BATCH, _HEADS, _LENGTH = 2, 2, 256  # forward and backward: lengths divide every tile
_UNEVEN = 7  # taken off a length (decode: the key count) so that it divides no tile
_CAUSAL_VARIANTS = ("causal", "uneven_causal", "score_variants_causal", "score_variants_uneven_causal",
                    "score_variants_dropout_causal")
_UNEVEN_VARIANTS = ("uneven_causal", "score_variants_uneven_causal", "score_variants_uneven")
_DROPOUT_VARIANTS = ("dropout", "score_variants_dropout_causal")
_DECODE_QUERY_HEADS, _DECODE_KV_HEADS, _DECODE_KEYS, _DECODE_SPLITS = 8, 2, 1024, 4
_WIDE_GROUP = 64
_POSITIONAL_TOKENS, _VOCAB = 128, 1000
_DROPOUT_P, _SEED = 0.1, 1234


@dataclass(frozen=True)
class Case:
    launcher: str  # one of LAUNCHERS
    dtype: str  # one of DTYPES
    head_dim: int  # d_model for the positional encoding
    variant: str
    autotune: bool = True  # False: the one tile taken when KERNELS_AUTOTUNE=0
    pointer_path: bool = False  # True: the forward's pointer path even where a launch would take TMA
    warp_specialize: bool = False  # True: the forward's key loop warp-specialised on its descriptor path


def cases(launchers=DEFAULT_LAUNCHERS, dtypes=DTYPES, head_dims=HEAD_DIMS, variants=None, quick=False,
          untimed=True, pointer_path=False, warp_specialize=False) -> list[Case]:
    """Every (launcher, dtype, head dim, variant), restricted to the given ones (a variant named
    "LAUNCHER:VARIANT" for that launcher only), autotuned and, with
    `untimed`, as KERNELS_AUTOTUNE=0 runs it (its tile is one the autotuner also times: no extra compile).
    `quick` keeps the common variants at d64/d128 (the full set covers d256 and every mask kind).
    `pointer_path`: the forward without TMA descriptors on every arch (to compare the two paths).
    `warp_specialize`: the forward's key loop warp-specialised where it takes descriptors
    (kernels/sdpa/triton/warp_specialization.py)."""
    if quick:
        head_dims = [d for d in head_dims if d <= 128]
    found = []
    for launcher in launchers:
        widths = POSITIONAL_WIDTHS if launcher == "positional" else head_dims
        if quick and launcher == "positional":
            widths = (512,)
        for dtype, width, variant in itertools.product(dtypes, widths, _variants(launcher, quick)):
            if launcher == "yardstick" and dtype not in YARDSTICK_DTYPES:
                continue
            wanted = variants is None or variant in variants or f"{launcher}:{variant}" in variants
            if wanted or launcher == "yardstick":
                case = Case(launcher, dtype, width, variant, pointer_path=pointer_path,
                            warp_specialize=warp_specialize)
                found += [case, replace(case, autotune=False)] if untimed and launcher in _AUTOTUNED else [case]
    return found


def _variants(launcher: str, quick: bool) -> tuple[str, ...]:
    every = {"forward": SDPA_VARIANTS, "backward": BACKWARD_VARIANTS, "decode": DECODE_VARIANTS,
             "positional": POSITIONAL_VARIANTS, "yardstick": ("none",)}[launcher]
    return every[:3] if quick else every


def record(case: Case, arch: Arch, tiles: list[triton.Config] | None = None) -> list[Launch]:
    """The launches `case` makes on a GPU of `arch` (see recording_launches for `tiles`): the forward
    takes its TMA descriptor path on sm_90 and later (unless `case.pointer_path`), as a launch on such
    a card would decide."""
    torch.manual_seed(0)
    descriptors = arch.capability >= TENSOR_DESCRIPTOR_CAPABILITY and not case.pointer_path
    with (recording_launches(tiles) as launches, _autotuning(case.autotune),
          force_tensor_descriptors(descriptors), configs.compiling_for(arch.capability),
          force_warp_specialization(case.warp_specialize and arch.capability >= WARP_SPECIALIZATION_CAPABILITY)):
        _LAUNCH[case.launcher](case, getattr(torch, case.dtype))
    return launches


@contextlib.contextmanager
def _autotuning(enabled: bool):
    """As if KERNELS_AUTOTUNE were 1 (enabled) or 0: the pruners read the flag at each call."""
    previous, configs.AUTOTUNE = configs.AUTOTUNE, enabled
    try:
        yield
    finally:
        configs.AUTOTUNE = previous


def _attention_inputs(dtype: torch.dtype, head_dim: int, query_heads: int, kv_heads: int, n_queries: int,
                      n_keys: int):
    q = torch.randn(_BATCH, query_heads, n_queries, head_dim, dtype=dtype)
    k, v = (torch.randn(_BATCH, kv_heads, n_keys, head_dim, dtype=dtype) for _ in range(2))
    return q, k, v


def _mask(variant: str, q: torch.Tensor, n_keys: int) -> torch.Tensor | None:
    """The mask as the functional API hands it to the launchers: broadcast to (B, Hq, Nq, Nk) by stride 0."""
    batch, heads, n_queries, _ = q.shape
    if variant == "key_padding":  # (B, 1, 1, Nk), the last quarter of the keys padded
        mask = torch.arange(n_keys) < n_keys - n_keys // 4
        mask = mask.expand(batch, n_keys)[:, None, None, :]
    elif variant == "bool_mask":  # one (Nq, Nk) pattern for every batch element and head
        mask = torch.rand(n_queries, n_keys) < 0.9
    elif variant in ("additive_mask", "additive_mask_grad"):
        mask = torch.randn(n_queries, n_keys, dtype=q.dtype)
    else:
        return None
    return mask.expand(batch, heads, n_queries, n_keys)


def _score_variants(variant: str, q: torch.Tensor) -> AttentionVariants | None:
    """The window / softcap / ALiBi / sinks options of a variant: a window with both sides bounded (both
    edges straddle some tiles), Gemma 2's cap, per-head slopes and sinks."""
    every = variant.startswith("score_variants")
    heads = q.size(1)
    options = AttentionVariants(
        window=(100, 20) if every or variant == "window" else None,
        softcap=30.0 if every or variant == "softcap" else None,
        alibi_slopes=torch.rand(heads) * 0.1 if every or variant == "alibi" else None,
        sinks=torch.randn(heads) if every or variant == "sinks" else None,
    )
    return options if options.names() else None


def _causal(variant: str) -> bool:
    return variant in _CAUSAL_VARIANTS


def _length(variant: str, even: int = _LENGTH) -> int:
    return even - _UNEVEN if variant in _UNEVEN_VARIANTS else even


def _dropout(variant: str) -> Dropout:
    return Dropout(_DROPOUT_P, _SEED) if variant in _DROPOUT_VARIANTS else Dropout()


def _packed_inputs(dtype: torch.dtype, head_dim: int):
    """q, k, v of _BATCH packed sequences, one of _LENGTH tokens and shorter ones of odd lengths."""
    lengths = [_LENGTH - 7 * index for index in range(_BATCH)]
    offsets = torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32)
    q, k, v = (torch.randn(sum(lengths), _HEADS, head_dim, dtype=dtype) for _ in range(3))
    return q, k, v, PackedSequences(offsets, offsets, max(lengths), max(lengths))


def _launch_forward(case: Case, dtype: torch.dtype) -> None:
    if case.variant == "varlen":
        q, k, v, sequences = _packed_inputs(dtype, case.head_dim)
        launch_varlen_forward(q, k, v, sequences, True, case.head_dim**-0.5)
        return
    length = _length(case.variant)
    q, k, v = _attention_inputs(dtype, case.head_dim, _HEADS, _HEADS, length, length)
    lse = torch.empty(q.shape[:3], dtype=accumulator_dtype(dtype))  # training stores the lse
    launch_forward(q, k, v, _mask(case.variant, q, length), _causal(case.variant), case.head_dim**-0.5,
                   lse=lse, dropout=_dropout(case.variant), variants=_score_variants(case.variant, q))


def _launch_backward(case: Case, dtype: torch.dtype) -> None:
    if case.variant == "varlen":
        q, k, v, sequences = _packed_inputs(dtype, case.head_dim)
        out, dout = torch.randn_like(q), torch.randn_like(q)
        lse = torch.randn(q.shape[1], q.shape[0], dtype=accumulator_dtype(dtype))
        launch_varlen_backward(q, k, v, out, lse, dout, sequences, True, case.head_dim**-0.5)
        return
    length = _length(case.variant)
    q, k, v = _attention_inputs(dtype, case.head_dim, _HEADS, _HEADS, length, length)
    out, dout = torch.randn_like(q), torch.randn_like(q)
    lse = torch.randn(q.shape[:3], dtype=accumulator_dtype(dtype))
    variants = _score_variants(case.variant, q)
    mask = _mask(case.variant, q, length)
    launch_backward(q, k, v, out, lse, dout, mask, _causal(case.variant),
                    case.head_dim**-0.5, dropout=_dropout(case.variant), variants=variants,
                    sinks_grad=None if variants is None or variants.sinks is None else torch.empty_like(variants.sinks),
                    mask_grad=torch.empty(mask.shape, dtype=dtype) if case.variant == "additive_mask_grad" else None)


def _launch_yardstick(case: Case, dtype: torch.dtype) -> None:
    q, k, v = _attention_inputs(dtype, case.head_dim, _HEADS, _HEADS, _LENGTH, _LENGTH)
    lse = torch.empty(q.shape[:3], dtype=accumulator_dtype(dtype))
    launch_yardstick_forward(q, k, v, torch.empty_like(q), lse, case.head_dim**-0.5)


def _launch_decode(case: Case, dtype: torch.dtype) -> None:
    query_heads = _WIDE_GROUP * _DECODE_KV_HEADS if case.variant == "wide_group" else _DECODE_QUERY_HEADS
    n_keys = _length(case.variant, _DECODE_KEYS)
    q, k, v = _attention_inputs(dtype, case.head_dim, query_heads, _DECODE_KV_HEADS, 1, n_keys)
    mask_variant = "key_padding" if case.variant == "wide_group" else case.variant
    launch_decode(q, k, v, _mask(mask_variant, q, n_keys), case.head_dim**-0.5, _DECODE_SPLITS,
                  variants=_score_variants(case.variant, q))


def _launch_positional(case: Case, dtype: torch.dtype) -> None:
    shape = (_BATCH, _POSITIONAL_TOKENS, case.head_dim)
    out = torch.empty(shape, dtype=dtype)
    token_ids = torch.randint(0, _VOCAB, shape[:2]) if case.variant == "gather" else None
    src = torch.randn(_VOCAB, case.head_dim, dtype=dtype) if token_ids is not None else torch.randn(shape, dtype=dtype)
    position_ids = torch.arange(_POSITIONAL_TOKENS).expand(shape[:2]) if case.variant == "position_ids" else None
    dropout = Dropout(_DROPOUT_P, _SEED) if case.variant in ("dropout", "backward") else Dropout()
    launch_positional_encoding(src, out, Positions(ids=position_ids), case.head_dim**0.5, dropout,
                               add_encoding=case.variant != "backward", token_ids=token_ids)


_LAUNCH = {
    "forward": _launch_forward,
    "backward": _launch_backward,
    "decode": _launch_decode,
    "positional": _launch_positional,
    "yardstick": _launch_yardstick,
}
