"""What every benchmark compares: a `Provider`, one implementation as a callable on the suite's inputs,
with what it needs around its calls and why it may not run; and our Triton kernels as a provider.
"""

import contextlib
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TypeVar

import triton

import kernels
from benchmarks.harness.interpreter_child import call_in_interpreter

T = TypeVar("T")

OURS = "ours"
INTERPRETER_LABEL = "triton (interpreter: error check only, time is not a speed)"
CHILD_INTERPRETER_LABEL = "ours (triton interpreter)"
_SMALLEST_ONLY = "Triton's interpreter runs the smallest shape only (an error check, not a speed)"
_NEEDS_CUDA = "the Triton kernels need CUDA here; set TRITON_INTERPRET=1 to check them in the interpreter"


def _nothing_to_prepare(inputs) -> None:
    return None


@dataclass(frozen=True)
class Provider:
    name: str
    label: str
    call: Callable
    # Entered around the whole measurement, so that its cost stays out of the timed calls.
    context: Callable[[], AbstractContextManager] = contextlib.nullcontext
    # Called on every input set before the first call, outside the timing (per-input state, such as
    # FlexAttention's block mask built from the mask tensor).
    prepare: Callable[[object], None] = _nothing_to_prepare
    # Known before trying: the provider cannot run on this device at all.
    unavailable_reason: str | None = None
    # Triton's interpreter is a correctness tool, far too slow to sweep shapes with.
    smallest_case_only: bool = False
    # The `kernels` backend that must be the one that ran (a silent fallback would time the wrong code).
    kernels_backend: str | None = None
    # False: a correctness check only, the first call's outputs and no timing (its time means nothing).
    timed: bool = True

    def skip_reason(self, is_smallest_case: bool) -> str | None:
        """Why this provider is not even tried on a case; None when it is."""
        if self.unavailable_reason is None and self.smallest_case_only and not is_smallest_case:
            return _SMALLEST_ONLY
        return self.unavailable_reason

    def checked(self, call: Callable[[], T]) -> T:
        """`call()`, proving where it applies that the intended `kernels` backend ran, and only it."""
        if self.kernels_backend is None:
            return call()
        with kernels.record_backends() as ran:
            output = call()
        if set(ran) != {self.kernels_backend}:
            raise RuntimeError(f"backend={self.kernels_backend!r} was asked for, but {sorted(set(ran))} ran")
        return output

    def call_checked(self, inputs) -> object:
        """One call on `inputs`, checked as `checked` says."""
        return self.checked(lambda: self.call(inputs))


def ours_provider(call: Callable, device, check_in_child: bool = False) -> Provider:
    """Our Triton kernel as a provider: timed on CUDA, an error check only in the interpreter. On a CPU
    without it: with `check_in_child` (`call` importable by name, its result needing no autograd), an
    untimed check of the smallest case in an interpreter child process; else unavailable, with the reason."""
    if device.type == "cuda":
        return Provider(OURS, "ours (triton)", call, kernels_backend="triton")
    if triton.knobs.runtime.interpret:
        return Provider(OURS, INTERPRETER_LABEL, call, smallest_case_only=True, kernels_backend="triton")
    if check_in_child:
        return Provider(OURS, CHILD_INTERPRETER_LABEL, functools.partial(call_in_interpreter, call),
                        smallest_case_only=True, timed=False)
    return Provider(OURS, "ours (triton)", call, unavailable_reason=_NEEDS_CUDA)
