"""The positional-encoding benchmark's cases, their random inputs and their float64 results."""
import enum
from dataclasses import dataclass

import torch

from reference.positional_encoding import sinusoidal_table

_ID_BYTES = 8  # int64 token ids
_GPU_TOKENS = 32 * 1024  # B * N per case: 64 MiB of bf16 at d = 1024, far above L2
_GPU_VOCAB = 32000


class Op(str, enum.Enum):
    ENCODE = "encode"  # x (B, N, d) + pe
    EMBED = "embed"  # weight[ids] * sqrt(d) + pe


@dataclass(frozen=True)
class PositionalCase:
    op: Op
    batch: int
    seq_len: int
    d_model: int
    vocab_size: int = 0  # EMBED only

    measured_fields = ("gbps", "copy_fraction", "speedups", "max_abs_error")

    @property
    def tokens(self) -> int:
        return self.batch * self.seq_len

    @property
    def label(self) -> str:
        vocab = f" V{self.vocab_size}" if self.op is Op.EMBED else ""
        return f"B{self.batch} N{self.seq_len} d{self.d_model}{vocab}"

    def record(self) -> dict:
        return {"op": self.op.value, "batch": self.batch, "seq_len": self.seq_len, "d_model": self.d_model,
                "vocab_size": self.vocab_size}

    def bytes_moved(self, dtype: torch.dtype) -> int:
        """One read of the input rows (and of the ids) and one write of the output: the least any
        implementation moves, so that every provider's GB/s is measured against the same work."""
        rows = self.tokens * self.d_model * torch.empty((), dtype=dtype).element_size()
        return 2 * rows + (self.tokens * _ID_BYTES if self.op is Op.EMBED else 0)


def positional_cases(device: torch.device, quick: bool) -> list[PositionalCase]:
    """GPU: 32k tokens at d = 512 to 4096, plus one decode step (N = 1). CPU: a small honest set."""
    if device.type == "cuda":
        widths = (1024, 4096) if quick else (512, 1024, 2048, 4096)
        lengths = (2048,) if quick else (512, 4096)
        encode = [PositionalCase(Op.ENCODE, _GPU_TOKENS // n, n, d) for d in widths for n in lengths]
        decode = [PositionalCase(Op.ENCODE, 64, 1, 4096)]
        embed = [PositionalCase(Op.EMBED, _GPU_TOKENS // 2048, 2048, d, _GPU_VOCAB) for d in widths]
        return encode + decode + embed
    shapes = [(2, 128, 64), (4, 256, 256)] + ([] if quick else [(8, 512, 512)])
    return [PositionalCase(Op.ENCODE, *shape) for shape in shapes] + [
        PositionalCase(Op.EMBED, *shape, vocab_size=1000) for shape in shapes]


def smallest_cases(cases: list[PositionalCase]) -> list[PositionalCase]:
    """The smallest case of each op: the only ones Triton's interpreter runs."""
    by_op: dict[Op, PositionalCase] = {}
    for case in cases:
        if case.op not in by_op or case.tokens * case.d_model < by_op[case.op].tokens * by_op[case.op].d_model:
            by_op[case.op] = case
    return list(by_op.values())


@dataclass(frozen=True)
class PositionalInputs:
    x: torch.Tensor | None = None  # (B, N, d), ENCODE
    token_ids: torch.Tensor | None = None  # (B, N) int64, EMBED
    weight: torch.Tensor | None = None  # (V, d), EMBED

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in (self.x, self.token_ids, self.weight) if t is not None)


def make_inputs(case: PositionalCase, dtype: torch.dtype, device: torch.device, seed: int) -> PositionalInputs:
    """Standard-normal activations or embedding rows, uniform token ids (never zeros)."""
    generator = torch.Generator(device).manual_seed(seed)
    if case.op is Op.ENCODE:
        x = torch.randn(case.batch, case.seq_len, case.d_model, generator=generator, device=device, dtype=dtype)
        return PositionalInputs(x=x)
    weight = torch.randn(case.vocab_size, case.d_model, generator=generator, device=device, dtype=dtype)
    token_ids = torch.randint(0, case.vocab_size, (case.batch, case.seq_len), generator=generator, device=device)
    return PositionalInputs(token_ids=token_ids, weight=weight)


def float64_expected(case: PositionalCase, inputs: PositionalInputs) -> torch.Tensor:
    """The op in float64 on the same inputs, with the reference table built in float64."""
    table = sinusoidal_table(case.seq_len, case.d_model, dtype=torch.float64)
    if case.op is Op.ENCODE:
        return inputs.x.double() + table.to(inputs.x.device)
    rows = inputs.weight.double()[inputs.token_ids] * case.d_model**0.5
    return rows + table.to(rows.device)
