"""The overhead suite's cases: a path (what is compared), a shape and a variant (mask, causal, GQA),
with small random inputs: the host time per call, not the math, is what they show."""
from dataclasses import dataclass

import torch

# Issue 14's decode step on the CPU path, and a small batch.
DECODE_STEP = (1, 8, 8, 1, 128, 64)  # batch, query heads, key/value heads, queries, keys, head dim
SMALL_BATCH = (4, 8, 8, 16, 256, 64)
# The Triton path: a decode step the normal forward runs (too few keys to split) and a long cache that
# split-K runs (16 splits on 132 SMs), and a causal prefill.
TRITON_SHAPES = {"forward": (1, 8, 8, 1, 128, 64), "decode": (1, 8, 8, 1, 4096, 64),
                 "prefill": (1, 8, 8, 512, 512, 64)}
TORCH_VARIANTS = ("none", "key_padding", "additive", "causal", "gqa")
TRITON_VARIANTS = {"forward": ("none", "key_padding"), "decode": ("none", "key_padding"), "prefill": ("causal",)}


@dataclass(frozen=True)
class OverheadCase:
    path: str  # "torch path", "module" or the Triton path's launcher ("forward", "decode", "prefill")
    shape: tuple[int, int, int, int, int, int]
    variant: str

    measured_fields = ("median_us", "added_us", "added_p20_us", "added_p80_us", "added_fraction", "own_us")

    @property
    def shape_label(self) -> str:
        batch, heads_q, heads_kv, n_queries, n_keys, head_dim = self.shape
        heads = f"H{heads_q}" if heads_q == heads_kv else f"Hq{heads_q}/Hkv{heads_kv}"
        return f"B{batch} {heads} Nq{n_queries} Nk{n_keys} D{head_dim}"

    @property
    def label(self) -> str:
        return f"{self.path}: {self.shape_label}, {self.variant}"

    def record(self) -> dict:
        batch, heads_q, heads_kv, n_queries, n_keys, head_dim = self.shape
        return {"path": self.path, "batch": batch, "heads_q": heads_q,
                "heads_kv": heads_kv, "n_queries": n_queries, "n_keys": n_keys, "head_dim": head_dim,
                "variant": self.variant}

    def inputs(self, dtype: torch.dtype) -> dict:
        """`kernels.attention`'s arguments (also SDPA's): q, k, v and the variant's mask or flags."""
        batch, heads_q, heads_kv, n_queries, n_keys, head_dim = self.shape
        generator = torch.Generator().manual_seed(0)
        if self.variant == "gqa":
            heads_kv = max(1, heads_q // 4)
        query = torch.randn(batch, heads_q, n_queries, head_dim, generator=generator, dtype=dtype)
        key, value = (torch.randn(batch, heads_kv, n_keys, head_dim, generator=generator, dtype=dtype)
                      for _ in range(2))
        arguments = {"query": query, "key": key, "value": value}
        if self.variant == "key_padding":  # (B, 1, 1, Nk) bool, the last quarter of the keys padding
            keep = torch.ones(batch, 1, 1, n_keys, dtype=torch.bool)
            keep[..., n_keys - n_keys // 4:] = False
            arguments["attn_mask"] = keep
        elif self.variant == "additive":
            arguments["attn_mask"] = torch.randn(batch, 1, 1, n_keys, generator=generator, dtype=dtype)
        elif self.variant == "causal":
            arguments["is_causal"] = True
        elif self.variant == "gqa":
            arguments["enable_gqa"] = True
        return arguments


def torch_path_cases(quick: bool) -> list[OverheadCase]:
    shapes = (DECODE_STEP,) if quick else (DECODE_STEP, SMALL_BATCH)
    return [OverheadCase("torch path", shape, variant) for shape in shapes for variant in TORCH_VARIANTS]


def triton_path_cases(quick: bool) -> list[OverheadCase]:
    launchers = ("forward", "decode") if quick else tuple(TRITON_SHAPES)
    return [OverheadCase(launcher, TRITON_SHAPES[launcher], variant)
            for launcher in launchers for variant in TRITON_VARIANTS[launcher]]
