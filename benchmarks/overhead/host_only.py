"""The Triton path of `kernels.attention` as a GPU machine runs it on the host, with no GPU.

Inside `host_only_launches()`:
- CPU tensors count as Triton's (as in the interpreter) for the backend choice, while the launchers
  still pick the GPU tiles and flags (their own INTERPRETING stays False), and `multiprocessor_count`
  answers an H100's 132 SMs, so decode plans its splits as on one;
- each autotuned kernel takes, untimed, the first tile its pruner keeps (as KERNELS_AUTOTUNE=0 does)
  the first time it sees a key; later calls find it in the autotuner's cache, as on a GPU;
- `JITFunction.run` does what Triton does on the host before a launch: the options, its argument
  binder and specialisation (built for sm_90), the compiled-kernel cache key and the grid; then it
  returns instead of asking the driver for the device, the stream and the launch. The C launcher's own
  argument packing is the one host step this leaves out.
Everything is restored on exit, the autotuners' caches included.
"""
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from triton import knobs
from triton.compiler import make_backend
from triton.runtime.autotuner import Autotuner
from triton.runtime.jit import JITFunction, KernelInterface, compute_cache_key, create_function_from_signature

import kernels.shared.backends
from benchmarks.compile.targets import ARCHS
from kernels.sdpa.triton import decode

TARGET_ARCH = ARCHS["sm_90"]
MULTIPROCESSORS = 132  # an H100 SXM's, so that decode plans its splits as on one


@dataclass(frozen=True)
class KernelCall:
    """One `kernel[grid](*args, **kwargs)` of a launcher, as it was made: replayable."""

    kernel: KernelInterface
    grid: object
    args: tuple
    kwargs: dict

    def __call__(self) -> object:
        return self.kernel[self.grid](*self.args, **self.kwargs)


@dataclass(frozen=True)
class BinderCall:
    """What the innermost `JITFunction.run` of one launch received: replays Triton's binding alone."""

    kernel: JITFunction
    grid: object
    args: tuple
    kwargs: dict

    def __call__(self) -> object:
        return _bind_without_launching(self.kernel, *self.args, grid=self.grid, **self.kwargs)


_binders: dict[JITFunction, tuple[Callable, object, dict]] = {}


def _binder(kernel: JITFunction) -> tuple[Callable, object, dict]:
    """Triton's argument binder of `kernel` for TARGET_ARCH, with its backend and cache-key memo,
    made once per kernel as `JITFunction.run` makes them once per device."""
    if kernel not in _binders:
        backend = make_backend(TARGET_ARCH.target())
        _binders[kernel] = (create_function_from_signature(kernel.signature, kernel.params, backend), backend, {})
    return _binders[kernel]


def _bind_without_launching(kernel: JITFunction, *args, grid, **kwargs) -> object:
    kwargs["debug"] = kwargs.get("debug", kernel.debug) or knobs.runtime.debug
    kwargs["instrumentation_mode"] = knobs.compilation.instrumentation_mode
    binder, _, key_cache = _binder(kernel)
    bound_args, specialization, options = binder(*args, **kwargs)
    compute_cache_key(key_cache, specialization, options)
    return grid(bound_args) if callable(grid) else grid


@contextlib.contextmanager
def host_only_launches() -> Iterator[None]:
    """See the module docstring."""
    if knobs.runtime.interpret:
        raise RuntimeError("the Triton path's host time is measured without TRITON_INTERPRET (the interpreter's "
                           "kernels are not the ones a GPU launches): unset it")
    tuned: dict[Autotuner, tuple[set, set]] = {}  # its cache keys and launch keys before the block

    def run(kernel, *args, grid, warmup, **kwargs):
        return _bind_without_launching(kernel, *args, grid=grid, **kwargs)

    def untimed_bench(autotuner, *args, config, **kwargs):  # every kept tile ties: the first one wins
        tuned.setdefault(autotuner, (set(autotuner.cache), set(autotuner.launch_configs)))
        return [0.0]

    saved = (JITFunction.run, Autotuner._bench, kernels.shared.backends.INTERPRETING)
    JITFunction.run, Autotuner._bench = run, untimed_bench
    kernels.shared.backends.INTERPRETING = True
    device = torch.device("cpu")
    had_count = device in decode._multiprocessors
    decode._multiprocessors[device] = MULTIPROCESSORS
    try:
        yield
    finally:
        JITFunction.run, Autotuner._bench, kernels.shared.backends.INTERPRETING = saved
        if had_count:
            decode._multiprocessors[device] = None
        else:
            decode._multiprocessors.pop(device, None)
        for autotuner, (keys_before, launch_keys_before) in tuned.items():
            for key in set(autotuner.cache) - keys_before:
                del autotuner.cache[key]
            for key in set(autotuner.launch_configs) - launch_keys_before:
                del autotuner.launch_configs[key]


@contextlib.contextmanager
def recording_kernel_calls() -> Iterator[tuple[list[KernelCall], list[BinderCall]]]:
    """Inside `host_only_launches`: the outermost `kernel[grid](...)` calls made in the block (what a
    launcher hands Triton) and the innermost `JITFunction.run` calls (what Triton binds), in order."""
    outer: list[KernelCall] = []
    inner: list[BinderCall] = []
    real_getitem, real_run = KernelInterface.__getitem__, JITFunction.run

    def getitem(kernel, grid):  # only launchers index kernels: the autotuner and heuristics call `.run`
        def launch(*args, **kwargs):
            outer.append(KernelCall(kernel, grid, args, dict(kwargs)))
            return kernel.run(*args, grid=grid, warmup=False, **kwargs)
        return launch

    def run(kernel, *args, grid, warmup, **kwargs):
        inner.append(BinderCall(kernel, grid, args, dict(kwargs)))
        return real_run(kernel, *args, grid=grid, warmup=warmup, **kwargs)

    KernelInterface.__getitem__, JITFunction.run = getitem, run
    try:
        yield outer, inner
    finally:
        KernelInterface.__getitem__, JITFunction.run = real_getitem, real_run
