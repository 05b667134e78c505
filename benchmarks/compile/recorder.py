"""Record what our launchers pass to `kernel[grid](...)`, instead of launching.

The launchers run for real on small CPU tensors; only the last step is replaced: the autotuner hands
on every config its pruner keeps (what it would time on a GPU), the heuristics add their constexprs
as usual, and the innermost `JITFunction.run` records its arguments instead of compiling and
launching. Binding those arguments for a GPU target (compiler.py) then gives exactly the signature,
constexprs and specialisation a launch on that target would compile.
"""
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import triton
from triton.runtime.autotuner import Autotuner
from triton.runtime.jit import JITFunction

from kernels.shared.triton.launch_tuning import LaunchKeyedAutotuner


@dataclass(frozen=True)
class Launch:
    """One kernel launch as `JITFunction.run` receives it (tile and heuristic constexprs included)."""

    kernel: JITFunction
    args: tuple
    kwargs: dict

    @property
    def kernel_name(self) -> str:
        return self.kernel.__name__.strip("_")


@contextlib.contextmanager
def recording_launches(tiles: list[triton.Config] | None = None) -> Iterator[list[Launch]]:
    """Inside the block, kernel launches are appended to the yielded list and nothing runs.

    `tiles`, when given, replace what every autotuned kernel's pruner keeps (to probe a tile that is
    not shipped); kernels without an autotuner keep their launcher's constexprs."""
    launches: list[Launch] = []

    def record(kernel, *args, grid, warmup, **kwargs):
        launches.append(Launch(kernel, args, kwargs))

    def every_kept_config(autotuner, *args, **kwargs):
        autotuner.nargs = dict(zip(autotuner.arg_names, args))
        if tiles is not None:
            configs = tiles
        elif len(autotuner.configs) > 1:
            configs = autotuner.prune_configs(kwargs)
        else:
            configs = autotuner.configs  # as Autotuner.run: a single config is not pruned
        for config in configs:
            autotuner.fn.run(*args, **kwargs, **config.all_kwargs())
        autotuner.nargs = None

    real = JITFunction.run, Autotuner.run, LaunchKeyedAutotuner.run  # ours, or its remembered configs would answer
    JITFunction.run = record
    Autotuner.run = LaunchKeyedAutotuner.run = every_kept_config
    try:
        yield launches
    finally:
        JITFunction.run, Autotuner.run, LaunchKeyedAutotuner.run = real
