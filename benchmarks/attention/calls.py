"""What is timed and checked in each mode: the forward, the backward alone, or forward + backward.

The backward is `torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)` on a graph built before
timing starts, so the same call repeats without the forward; forward + backward builds it in the call.
Gradient modes are checked on (dq, dk, dv) against float64 autograd through the `reference` code.
"""

from collections.abc import Callable, Iterable

import torch

from benchmarks.attention.accuracy import float64_reference, float64_reference_gradients
from benchmarks.attention.cases import AttentionInputs
from benchmarks.attention.modes import Mode
from benchmarks.harness.providers import Provider

GRADIENT_NAMES = ("dq", "dk", "dv")


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
