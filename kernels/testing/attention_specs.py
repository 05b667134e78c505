"""Recipes for attention inputs: shape, GQA, dtype, mask kind and broadcast shape, memory layout.

An `AttentionSpec` is plain, printable data with a seed; `spec.make(device)` builds the tensors
(the same ones on any device). The same recipes drive the property tests (through
kernels.testing.strategies), the parity sweep (`python -m kernels.testing`), and users' own checks.
"""
from dataclasses import dataclass, field

import torch

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}  # as reports write them
HEAD_DIMS = (16, 24, 32, 40, 64, 80, 96, 128)
MASK_KINDS = ("none", "causal", "bool", "additive")  # bool: True = attend; additive: added to the scores
MASK_TENSOR_KINDS = ("bool", "additive")
# Mask shapes that broadcast to the scores (B, Hq, Nq, Nk).
MASK_SHAPES = ("key_padding", "per_query_row", "shared_2d", "keys_only_1d", "per_head", "full")
# "bnhd_view": (B, N, H, D) memory viewed as (B, H, N, D), as models hold heads; "strided_head_dim":
# every other element of a twice-as-wide tensor.
LAYOUTS = ("contiguous", "bnhd_view", "strided_head_dim")
KEEP_RATE = 0.75  # of mask entries that attend: small key counts get fully masked rows too


@dataclass(frozen=True)
class AttentionSpec:
    batch: int
    heads_q: int
    heads_kv: int
    n_q: int
    n_k: int
    head_dim: int
    head_dim_v: int
    dtype: torch.dtype
    mask: str = "none"  # one of MASK_KINDS
    mask_shape: str | None = None  # one of MASK_SHAPES, for the kinds in MASK_TENSOR_KINDS only
    layout: str = "contiguous"  # one of LAYOUTS
    seed: int = 0

    def __post_init__(self):
        for name, value, allowed in (("mask", self.mask, MASK_KINDS), ("layout", self.layout, LAYOUTS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if (self.mask in MASK_TENSOR_KINDS) != (self.mask_shape in MASK_SHAPES):
            raise ValueError(
                f"mask_shape must be one of {MASK_SHAPES} for the masks {MASK_TENSOR_KINDS}, else None"
            )
        if self.heads_q % self.heads_kv != 0:
            raise ValueError(f"heads_q ({self.heads_q}) must be a multiple of heads_kv ({self.heads_kv})")

    @property
    def label(self) -> str:
        """A short name: "B2 H4/2 N63x63 D64 bool:key_padding bnhd_view"."""
        heads = f"H{self.heads_q}" + (f"/{self.heads_kv}" if self.heads_kv != self.heads_q else "")
        head_dims = f"D{self.head_dim}" + (f"/{self.head_dim_v}" if self.head_dim_v != self.head_dim else "")
        mask = self.mask + (f":{self.mask_shape}" if self.mask_shape else "")
        layout = "" if self.layout == "contiguous" else f" {self.layout}"
        return f"B{self.batch} {heads} N{self.n_q}x{self.n_k} {head_dims} {mask}{layout}"

    def make(self, device: torch.device | str = "cpu") -> "AttentionArgs":
        generator = torch.Generator().manual_seed(self.seed)  # drawn on the CPU: the same on every device

        def tensor(heads: int, n: int, head_dim: int) -> torch.Tensor:
            return _in_layout((self.batch, heads, n, head_dim), self.layout, self.dtype, generator, device)

        query = tensor(self.heads_q, self.n_q, self.head_dim)
        key = tensor(self.heads_kv, self.n_k, self.head_dim)
        value = tensor(self.heads_kv, self.n_k, self.head_dim_v)
        kwargs = {"is_causal": self.mask == "causal", "enable_gqa": self.heads_q != self.heads_kv}
        if self.mask in MASK_TENSOR_KINDS:
            kwargs["attn_mask"] = self._mask_tensor(generator).to(device)
        return AttentionArgs(self, query, key, value, kwargs)

    def _mask_tensor(self, generator: torch.Generator) -> torch.Tensor:
        b, h, n_q, n_k = self.batch, self.heads_q, self.n_q, self.n_k
        shape = {
            "key_padding": (b, 1, 1, n_k),
            "per_query_row": (b, 1, n_q, 1),
            "shared_2d": (n_q, n_k),
            "keys_only_1d": (n_k,),
            "per_head": (1, h, 1, n_k),
            "full": (b, h, n_q, n_k),
        }[self.mask_shape]
        keep = torch.rand(shape, generator=generator) < KEEP_RATE
        if self.mask == "bool":
            return keep
        bias = torch.randn(shape, generator=generator).masked_fill(~keep, float("-inf"))
        return bias.to(self.dtype)


def _in_layout(shape, layout: str, dtype: torch.dtype, generator: torch.Generator, device) -> torch.Tensor:
    """Standard-normal values of `shape` (B, H, N, D), held in memory as `layout` says."""
    b, h, n, d = shape
    storage_shapes = {"contiguous": shape, "bnhd_view": (b, n, h, d), "strided_head_dim": (b, h, n, 2 * d)}
    storage = torch.randn(storage_shapes[layout], generator=generator).to(device, dtype)
    if layout == "bnhd_view":
        return storage.transpose(1, 2)
    return storage[..., ::2] if layout == "strided_head_dim" else storage


@dataclass(frozen=True, eq=False)
class AttentionArgs:
    """One attention call's arguments: `fn(args.query, args.key, args.value, **args.kwargs)`.

    Printed as its spec (shapes, dtype, mask, layout, seed), not as tensors.
    """

    spec: AttentionSpec
    query: torch.Tensor = field(repr=False)  # (B, Hq, Nq, D)
    key: torch.Tensor = field(repr=False)  # (B, Hkv, Nk, D)
    value: torch.Tensor = field(repr=False)  # (B, Hkv, Nk, Dv)
    kwargs: dict = field(repr=False)  # is_causal, enable_gqa and, for mask tensors, attn_mask
