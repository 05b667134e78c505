"""The decode benchmark's cases (few queries over a KV cache), their inputs, byte counts and float64
results."""
from dataclasses import dataclass

import torch

import reference
from benchmarks.attention.cases import AttentionInputs
from benchmarks.harness.timing import rotating_input_sets


@dataclass(frozen=True)
class DecodeCase:
    batch: int
    heads_q: int
    heads_kv: int
    n_queries: int
    context: int  # keys in the cache
    head_dim: int

    measured_fields = ("num_splits", "gbps", "copy_fraction", "speedup_vs_sdpa_default", "max_abs_error",
                       "peak_memory_bytes")

    @property
    def group(self) -> str:
        """The case without its context: a table's title and a plot's lines."""
        return f"B{self.batch} Hq{self.heads_q}/Hkv{self.heads_kv} Nq{self.n_queries} D{self.head_dim}"

    @property
    def label(self) -> str:
        return f"{self.group} ctx{self.context}"

    def record(self) -> dict:
        return {"batch": self.batch, "heads_q": self.heads_q, "heads_kv": self.heads_kv,
                "n_queries": self.n_queries, "context": self.context, "head_dim": self.head_dim}

    def bytes_moved(self, dtype: torch.dtype) -> int:
        """q and K, V read once (K and V once per key/value head, however many query heads share
        them), out written once: the least any implementation moves."""
        element = torch.empty((), dtype=dtype).element_size()
        queries = self.batch * self.heads_q * self.n_queries * self.head_dim  # q read, out written
        cache = self.batch * self.heads_kv * self.context * self.head_dim  # each of K and V
        return (2 * queries + 2 * cache) * element


def decode_cases(device: torch.device, quick: bool) -> list[DecodeCase]:
    """GPU: Llama-like heads (32 query heads, 32 or 8 key/value heads, D = 128), B = 1 and 8,
    Nq = 1 over 1k-32k keys and Nq = 4 (speculative decoding) over the longer ones; --quick keeps
    1k and 8k. CPU: a small honest set (D = 64, 8 query heads)."""
    if device.type == "cuda":
        batches, heads, head_dim = (1, 8), ((32, 32), (32, 8)), 128
        shapes = [(1, 1024), (1, 8192), (4, 8192)] if quick else [
            *((1, n) for n in (1024, 4096, 16384, 32768)), (4, 4096), (4, 32768)]
    else:
        batches, heads, head_dim = ((1,) if quick else (1, 4)), ((8, 8), (8, 2)), 64
        shapes = [(1, 256), (1, 1024), (4, 1024)] + ([] if quick else [(1, 4096), (4, 4096)])
    return [DecodeCase(b, hq, hkv, nq, n, head_dim) for b in batches for hq, hkv in heads for nq, n in shapes]


def smallest_cases(cases: list[DecodeCase]) -> list[DecodeCase]:
    """The cases that move the fewest bytes: the only ones Triton's interpreter runs."""
    smallest = min(case.bytes_moved(torch.float32) for case in cases)
    return [case for case in cases if case.bytes_moved(torch.float32) == smallest]


def make_inputs(case: DecodeCase, dtype: torch.dtype, device: torch.device, seed: int) -> AttentionInputs:
    """Standard-normal q (B, Hq, Nq, D) and K, V caches (B, Hkv, ctx, D); no mask (a full cache)."""
    generator = torch.Generator(device).manual_seed(seed)

    def draw(heads: int, length: int) -> torch.Tensor:
        shape = (case.batch, heads, length, case.head_dim)
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    q = draw(case.heads_q, case.n_queries)
    return AttentionInputs(q, draw(case.heads_kv, case.context), draw(case.heads_kv, case.context), None, False)


def decode_input_sets(case: DecodeCase, dtype: torch.dtype, device: torch.device) -> list[AttentionInputs]:
    """The input sets the timed calls rotate through (`rotating_input_sets`); seed 0's is checked for errors."""
    return rotating_input_sets(lambda seed: make_inputs(case, dtype, device, seed), device)


def float64_expected(inputs: AttentionInputs) -> torch.Tensor:
    """The output in float64, one batch element at a time. The query heads of a GQA group become
    extra query rows of their key/value head, so K and V are never repeated."""
    q, k, v = inputs.q, inputs.k, inputs.v
    batch, heads_q, n_queries, _ = q.shape
    heads_kv = k.size(1)
    out = torch.empty(batch, heads_q, n_queries, v.size(3), dtype=torch.float64, device=q.device)
    scale = q.size(3) ** -0.5
    with torch.no_grad():
        for b in range(batch):
            rows = q[b].double().reshape(heads_kv, -1, q.size(3))  # (Hkv, group * Nq, D)
            grouped = reference.scaled_dot_product_attention(rows, k[b].double(), v[b].double(), scale=scale)
            out[b] = grouped.reshape(heads_q, n_queries, v.size(3))
    return out
