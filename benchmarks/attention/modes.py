"""The modes an attention case is measured in: the forward, the backward alone, or forward + backward;
their FLOP counts and what the JSON says each one measured (`attention/calls.py` makes their calls)."""

import enum
from collections.abc import Iterable

from benchmarks.attention.flops import attention_backward_flops, attention_forward_flops

_FLOPS = ("FLOPs: forward 4*B*H*N*N*D, halved when causal; a sliding window counts the pairs in its band, "
          "packed documents the pairs within each")


class Mode(str, enum.Enum):
    FORWARD = "forward"
    BACKWARD = "backward"
    FORWARD_BACKWARD = "fwd+bwd"

    @property
    def needs_gradients(self) -> bool:
        return self is not Mode.FORWARD

    @property
    def file_tag(self) -> str:
        """The suffix of this mode's plot files ('' for the forward, whose names predate the modes)."""
        return {Mode.FORWARD: "", Mode.BACKWARD: "_bwd", Mode.FORWARD_BACKWARD: "_fwd-bwd"}[self]

    def flops(self, case) -> int:
        """The FLOPs of an `AttentionCase`'s shape in this mode."""
        shape = (case.batch, case.heads, case.seq_len, case.seq_len, case.head_dim, case.causal, case.window,
                 case.documents)
        forward, backward = attention_forward_flops(*shape), attention_backward_flops(*shape)
        return {Mode.FORWARD: forward, Mode.BACKWARD: backward, Mode.FORWARD_BACKWARD: forward + backward}[self]

    def describe(self) -> str:
        return {
            Mode.FORWARD: (
                "forward, softmax(Q K^T / sqrt(D) + mask) V: time per call; "
                "error = max |out - float64 reference| on the same inputs"
            ),
            Mode.BACKWARD: (
                "backward, torch.autograd.grad(out, (q, k, v), dout, retain_graph=True) with the forward "
                "run before timing: FLOPs 2.5x the forward's; error = max |dq, dk, dv - float64 autograd "
                "through reference|"
            ),
            Mode.FORWARD_BACKWARD: (
                "fwd+bwd, the forward then that grad in one timed call: FLOPs 3.5x the forward's; "
                "error on dq, dk, dv as for the backward"
            ),
        }[self]


def describe_modes(modes: Iterable[Mode]) -> str:
    return "; ".join([_FLOPS, *(mode.describe() for mode in modes)])
