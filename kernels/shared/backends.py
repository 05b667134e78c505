"""Which implementation runs an op: selection, an override, and a record of what actually ran.

- "triton": our kernels; on CUDA tensors, or on CPU tensors through Triton's interpreter when
  TRITON_INTERPRET=1 was set before triton was imported.
- "torch": torch's own op (SDPA), with identical semantics; what CPU tensors get otherwise.
- "reference": the pure-PyTorch math in `reference/` (slow; materialises the scores).
"""
import contextlib
import contextvars
from collections.abc import Iterator

import torch

from kernels.shared.triton_availability import TRITON_IMPORT_ERROR
from kernels.shared.triton_availability import INTERPRETING

BACKENDS = ("triton", "torch", "reference")

_forced_backend: contextvars.ContextVar[str | None] = contextvars.ContextVar("forced_backend", default=None)
# The record_backends blocks open now. A hot path may test it before calling note_backend_ran: one
# list's truth value costs less than a call when no block is open, the common case.
OPEN_RECORDERS: list[list[str]] = []
_device_types: dict[torch.device, str] = {}


def check_backend_name(backend: str | None) -> None:
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")


@contextlib.contextmanager
def use_backend(backend: str) -> Iterator[None]:
    """Force every op inside the block onto one backend (an explicit `backend=` argument still wins)."""
    check_backend_name(backend)
    token = _forced_backend.set(backend)
    try:
        yield
    finally:
        _forced_backend.reset(token)


@contextlib.contextmanager
def record_backends() -> Iterator[list[str]]:
    """Collect, in order, the backend names of the ops that ran inside the block."""
    ran: list[str] = []
    OPEN_RECORDERS.append(ran)
    try:
        yield ran
    finally:
        OPEN_RECORDERS.remove(ran)


def note_backend_ran(backend: str) -> None:
    """Record in eager mode only: under torch.compile this Python side effect would run once, at
    trace time (or be replayed by dynamo with guards on the recorder lists), not once per call."""
    if not OPEN_RECORDERS or torch.compiler.is_compiling():  # the common call touches nothing else (host time)
        return
    for ran in OPEN_RECORDERS:
        ran.append(backend)


@torch.compiler.assume_constant_result
def _forced() -> str | None:
    """The `use_backend` override. torch.compile cannot trace a ContextVar read, so it runs this once,
    at trace time, and bakes the result into the graph (with no guard on it): a compiled function
    keeps the backend it was traced with."""
    return _forced_backend.get()


def _device_type(device: torch.device) -> str:
    """`device.type`, remembered per device: torch builds the string anew on every read, which costs
    as much as the rest of a small call's backend choice."""
    kind = _device_types.get(device)
    if kind is None:
        kind = _device_types[device] = device.type
    return kind


def triton_runs_on(device: torch.device) -> bool:
    if TRITON_IMPORT_ERROR is not None:
        return False
    kind = _device_type(device)
    return kind == "cuda" or (kind == "cpu" and INTERPRETING)


def torch_chosen(requested: str | None, tensor: torch.Tensor) -> bool:
    """Whether `resolve_backend(requested, tensor.device)` is "torch", without building the device: the
    torch backend's common call is timed against SDPA's own (kernels/sdpa/torch_backend.py). False
    for a backend name that resolve_backend refuses, and where the device decides and `tensor` is no
    tensor: the caller's checks then say what is wrong."""
    backend = _forced() if requested is None else requested
    if backend is not None:
        return backend == "torch"
    try:
        return not (TRITON_IMPORT_ERROR is None and (tensor.is_cuda or (INTERPRETING and tensor.is_cpu)))
    except AttributeError:
        return False


def resolve_backend(requested: str | None, device: torch.device) -> str:
    """The explicit request, else the `use_backend` override, else what the device supports."""
    backend = _forced() if requested is None else requested
    if backend is None:
        return "triton" if triton_runs_on(device) else "torch"
    if backend == "torch" or backend == "reference":
        return backend
    check_backend_name(backend)
    if TRITON_IMPORT_ERROR is not None:
        raise ValueError(
            f"backend='triton' needs the triton package, which cannot be imported here ({TRITON_IMPORT_ERROR}); "
            "install it (`pip install triton`, Linux only) or use backend='torch'"
        )
    if not triton_runs_on(device):
        raise ValueError(
            f"backend='triton' cannot run on {device.type} tensors: use CUDA tensors, or set "
            "TRITON_INTERPRET=1 before importing triton to run the kernels on the CPU in Triton's interpreter"
        )
    return backend
