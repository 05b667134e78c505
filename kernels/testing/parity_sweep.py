"""The parity sweep: our Triton attention on shapes x dtypes x mask kinds, each case judged by the pass
rule of kernels.testing (max error against the float64 reference, compared with PyTorch's own error in
the same precision). Run by `python -m kernels.testing` and `python -m benchmarks parity`."""

import itertools
from dataclasses import asdict, dataclass

import torch

import kernels
from kernels.testing.attention import check_attention
from kernels.testing.attention_specs import DTYPE_NAMES, DTYPES, AttentionSpec
from kernels.testing.parity import ParityResult

# (batch, query heads, key/value heads, query len, key len, head dim): GQA, decode (Nq = 1),
# Nq != Nk, lengths off the tile grid, head dims that are not powers of two.
_GPU_SHAPES = (
    (4, 16, 16, 1024, 1024, 64),
    (2, 16, 4, 2048, 2048, 128),
    (8, 32, 8, 1, 4096, 128),
    (1, 12, 12, 1000, 1000, 80),
)
# Small enough for Triton's interpreter, still crossing tile edges unevenly.
_CPU_SHAPES = (
    (2, 4, 2, 63, 63, 64),
    (1, 2, 2, 33, 129, 80),
    (2, 2, 1, 1, 65, 128),
    (1, 3, 3, 100, 47, 96),
)
_QUICK_SHAPES = 2  # the first shapes of the list
# (mask kind, broadcast shape of the mask tensor)
MASKS = (
    ("none", None),
    ("causal", None),
    ("bool", "key_padding"),
    ("bool", "full"),
    ("additive", "shared_2d"),
    ("additive", "per_head"),
)


@dataclass(frozen=True)
class ParityRow:
    spec: AttentionSpec
    result: ParityResult | None = None
    failure: str | None = None  # what the kernel raised instead of an output

    @property
    def passed(self) -> bool:
        return self.result is not None and self.result.passed

    def as_record(self) -> dict:
        return {
            "case": self.spec.label,
            **asdict(self.spec),
            "dtype": DTYPE_NAMES[self.spec.dtype],
            "passed": self.passed,
            "failure": self.failure,
            "result": self.result.as_dict() if self.result else None,
        }


def parity_specs(device: torch.device, quick: bool) -> list[AttentionSpec]:
    shapes = _GPU_SHAPES if device.type == "cuda" else _CPU_SHAPES
    shapes = shapes[:_QUICK_SHAPES] if quick else shapes
    cases = itertools.product(shapes, DTYPES, MASKS)
    return [
        AttentionSpec(*shape, head_dim_v=shape[-1], dtype=dtype, mask=mask, mask_shape=mask_shape, seed=seed)
        for seed, (shape, dtype, (mask, mask_shape)) in enumerate(cases)
    ]


def check_case(spec: AttentionSpec, device: torch.device) -> ParityRow:
    """Our Triton kernel on the spec's inputs, judged. An error it raises makes a failed case, not the
    end of the sweep."""
    args = spec.make(device)
    try:
        out = kernels.attention(args.query, args.key, args.value, backend="triton", **args.kwargs)
        return ParityRow(spec, result=check_attention(out, args.query, args.key, args.value, **args.kwargs))
    except Exception as failure:  # reported in the row and the exit code: see the docstring
        return ParityRow(spec, failure=f"{type(failure).__name__}: {str(failure).strip().splitlines()[0]}")
