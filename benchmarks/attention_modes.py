"""What is timed and checked in each mode: the forward, the backward alone, or forward + backward.

The backward is `torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)` on a graph built before
timing starts, so the same call repeats without the forward; forward + backward builds it in the call.
Gradient modes are checked on (dq, dk, dv) against float64 autograd through the `reference` code.
"""

import enum
from collections.abc import Callable, Iterable

import torch

from benchmarks.accuracy import float64_reference, float64_reference_gradients
from benchmarks.attention_inputs import AttentionCase, AttentionInputs
from benchmarks.attention_providers import Provider
from benchmarks.flops import attention_backward_flops, attention_forward_flops

GRADIENT_NAMES = ("dq", "dk", "dv")
_FLOPS = "FLOPs: forward 4*B*H*N*N*D, halved when causal"


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

    def flops(self, case: AttentionCase) -> int:
        shape = (case.batch, case.heads, case.seq_len, case.seq_len, case.head_dim, case.causal)
        forward, backward = attention_forward_flops(*shape), attention_backward_flops(*shape)
        return {Mode.FORWARD: forward, Mode.BACKWARD: backward, Mode.FORWARD_BACKWARD: forward + backward}[self]

    def case_label(self, case: AttentionCase) -> str:
        return case.label if self is Mode.FORWARD else f"{case.label} {self.value}"

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


def float64_expected(modes: Iterable[Mode], inputs: AttentionInputs) -> dict[Mode, dict[str, torch.Tensor]]:
    """The float64 outputs each mode is checked against, each computed once however many modes share it."""
    modes = list(modes)
    forward = {"out": float64_reference(inputs)} if Mode.FORWARD in modes else {}
    gradients = {}
    if any(mode.needs_gradients for mode in modes):
        gradients = dict(zip(GRADIENT_NAMES, float64_reference_gradients(inputs), strict=True))
    return {mode: gradients if mode.needs_gradients else forward for mode in modes}


def checked_outputs(mode: Mode, provider: Provider, inputs: AttentionInputs) -> dict[str, torch.Tensor]:
    """One call in this mode, proving where it applies that the intended backend ran; outputs by name."""
    if mode is Mode.FORWARD:
        return {"out": provider.call_checked(inputs.detached())}
    out = provider.call_checked(inputs)
    return dict(zip(GRADIENT_NAMES, torch.autograd.grad(out, inputs.leaves, inputs.dout), strict=True))


def timed_call(mode: Mode, provider: Provider, inputs: AttentionInputs) -> Callable[[], object]:
    """The no-argument call to time. For the backward alone, the forward runs now, outside the timing."""
    if mode is Mode.FORWARD:
        detached = inputs.detached()
        return lambda: provider.call(detached)
    if mode is Mode.BACKWARD:
        out = provider.call(inputs)
        return lambda: torch.autograd.grad(out, inputs.leaves, inputs.dout, retain_graph=True)
    return lambda: torch.autograd.grad(provider.call(inputs), inputs.leaves, inputs.dout)
