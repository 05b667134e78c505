"""What the torch.library custom ops share: their namespace, how a dropout seed is drawn, and the
autograd questions both attention families ask (does a call need its backward's statistics; which
inputs the backward refuses to differentiate).

The Triton launchers are registered as custom ops (kernels/sdpa/custom_ops.py,
kernels/positional/custom_ops.py) so that `torch.compile` sees each fused kernel as one opaque node with a
fake implementation (shapes, dtypes, strides) and an autograd formula, and traces our functions and
modules without graph breaks. Eager calls go through the very same ops, except where the dispatcher
has nothing to do (`runs_without_dispatcher`): an inference call on plain tensors runs the op's own
Python body directly, which saves the `torch.ops` layers (about a quarter of the Triton path's host
time before the launch, `python -m benchmarks overhead`); still one code path.

Dropout seeds are drawn OUTSIDE the ops, as a 0-d int64 CPU tensor from torch's default generator:
- `torch.randint` is traceable, so a compiled region draws the seed inside its graph (a Python
  `.item()` there would break the graph), and under the "eager"/"aot_eager" backends it consumes the
  generator exactly as eager code does: `torch.manual_seed` repeats the mask, compiled or not.
  (Inductor replaces random ops with its own Philox stream: masks still differ call to call, but do
  not match eager's for the same `manual_seed`.)
- The op reads the seed with `.item()` inside its real implementation: a CPU tensor, so no device
  sync. The forward's seed tensor is saved for the backward, which regenerates the same mask.

The two families draw seeds from different ranges, and keep doing so: the range decides which seed
a `torch.manual_seed` state gives, so changing it would change every mask users can replay. Why the
ranges differ: kernels/shared/triton/philox.py.
"""
import torch

from kernels.shared.dropout import NO_DROPOUT, Dropout

NAMESPACE = "triton_attention_kernels"

ATTENTION_SEED_HIGH = 2**62
POSITIONAL_SEED_HIGH = 2**31 - 1


def draw_seed(high: int) -> torch.Tensor:
    """A seed in [0, high) as a 0-d int64 CPU tensor, from torch's default generator."""
    return torch.randint(0, high, (), dtype=torch.int64)


def dropout_of(dropout_p: float, seed: torch.Tensor | None) -> Dropout:
    """The launchers' Dropout for an op's (dropout_p, seed) arguments: `Dropout()` without dropout."""
    return NO_DROPOUT if seed is None or dropout_p == 0.0 else Dropout(dropout_p, int(seed.item()))


def needs_gradient(*arguments) -> bool:
    """Whether autograd will ask for the backward of a call on these arguments (non-tensors ignored):
    the forward stores the statistics the backward needs only then."""
    if not torch.is_grad_enabled():
        return False
    for each in arguments:  # a loop, not any(...) over a generator: it runs on every call
        if isinstance(each, torch.Tensor) and each.requires_grad:
            return True
    return False


def runs_without_dispatcher(*arguments) -> bool:
    """Whether an op's call on these arguments (non-tensors ignored) may run its body directly instead
    of through `torch.ops`: no gradient to record (the caller asks needs_gradient first), nothing
    tracing or transforming it (torch.compile, torch.jit.trace, a dispatch mode such as FakeTensorMode
    or FlopCounterMode, a functorch transform such as vmap, which must see the op), and plain tensors
    only (no subclass, whose handler must too). A loop, not all(...) over a generator: about a
    microsecond less per call."""
    if (torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack() > 0
            or torch._C._get_tracing_state() is not None or torch._C._are_functorch_transforms_active()):
        return False
    for each in arguments:
        if isinstance(each, torch.Tensor) and type(each) is not torch.Tensor:
            return False
    return True


def refuse_gradients(ctx, no_gradient: dict[int, str], function: str) -> None:
    """Raise, naming the input, where autograd asks for a gradient the Triton backward of `function`
    does not compute (`no_gradient`: the op's input index -> the argument's name)."""
    for index, name in no_gradient.items():
        if index < len(ctx.needs_input_grad) and ctx.needs_input_grad[index]:
            raise NotImplementedError(f"the triton {function} backend does not compute gradients for {name}; "
                                      "detach it or use backend='torch'")
