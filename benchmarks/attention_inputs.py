"""Attention benchmark cases and their random inputs."""

import enum
from dataclasses import dataclass, replace

import torch


class MaskKind(str, enum.Enum):
    NONE = "none"
    CAUSAL = "causal"
    KEY_PADDING = "key-padding"  # bool (B, 1, 1, N), True = attend, a random valid length per batch row


@dataclass(frozen=True)
class AttentionCase:
    batch: int
    heads: int
    seq_len: int
    head_dim: int
    mask: MaskKind

    @property
    def causal(self) -> bool:
        return self.mask is MaskKind.CAUSAL

    @property
    def label(self) -> str:
        return f"B{self.batch} H{self.heads} N{self.seq_len} D{self.head_dim} {self.mask.value}"


def smallest_shape_cases(cases: list[AttentionCase]) -> list[AttentionCase]:
    """The cases of the smallest (B, H, N, D) shape, one per mask kind."""

    def size(case: AttentionCase) -> int:
        return case.batch * case.heads * case.seq_len**2 * case.head_dim

    smallest = min(size(case) for case in cases)
    return [case for case in cases if size(case) == smallest]


@dataclass(frozen=True)
class AttentionInputs:
    q: torch.Tensor  # (B, H, N, D)
    k: torch.Tensor  # (B, H, N, D)
    v: torch.Tensor  # (B, H, N, D)
    attn_mask: torch.Tensor | None
    is_causal: bool
    dout: torch.Tensor | None = None  # (B, H, N, D): the output's gradient, when q, k, v require grad

    @property
    def leaves(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.q, self.k, self.v

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
    mask are the same draws either way.
    """
    generator = torch.Generator(device).manual_seed(seed)
    shape = (case.batch, case.heads, case.seq_len, case.head_dim)
    q, k, v = (torch.randn(shape, generator=generator, device=device, dtype=dtype) for _ in range(3))
    mask = _mask(case, device, generator)
    if not gradients:
        return AttentionInputs(q, k, v, mask, case.causal)
    dout = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    return AttentionInputs(*(t.requires_grad_() for t in (q, k, v)), mask, case.causal, dout)


def _mask(case: AttentionCase, device: torch.device, generator: torch.Generator) -> torch.Tensor | None:
    if case.mask is not MaskKind.KEY_PADDING:
        return None
    # Valid lengths in [N/2, N]: every query row keeps keys, and the FLOP count (all N keys) stays honest.
    lengths = torch.randint(
        case.seq_len // 2, case.seq_len + 1, (case.batch, 1), generator=generator, device=device
    )
    positions = torch.arange(case.seq_len, device=device)
    return (positions < lengths).view(case.batch, 1, 1, case.seq_len)
