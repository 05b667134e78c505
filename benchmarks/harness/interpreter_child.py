"""Our Triton kernels checked on a CPU by a process that cannot run them itself.

triton decides when a kernel is decorated, that is when `kernels` is imported, whether it runs in its
interpreter (TRITON_INTERPRET=1): a process that imported the kernels without the variable cannot
switch. `call_in_interpreter` runs one call in a child Python with the variable set (the arguments and
the result travel as torch.save files) and proves there that our Triton backend, and only it, ran. The
child's time includes its start-up and the interpreter: a correctness check, never a speed.

    python -m benchmarks.harness.interpreter_child ARGUMENTS_FILE RESULT_FILE   (the child's side)
"""

import importlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

import kernels

_TRITON = "triton"


def call_in_interpreter(function: Callable, *args) -> object:
    """`function(*args)` in a child process with TRITON_INTERPRET=1; `function` must be importable by
    its module and name. Raises RuntimeError with the child's last error line when it fails."""
    with tempfile.TemporaryDirectory(prefix="interpreter-child-") as folder:
        arguments, result = Path(folder, "arguments.pt"), Path(folder, "result.pt")
        torch.save((function.__module__, function.__qualname__, args), arguments)
        child = subprocess.run(
            [sys.executable, "-m", __name__, str(arguments), str(result)],
            env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True, check=False,
        )
        if child.returncode != 0:
            lines = child.stderr.strip().splitlines() or [f"exit code {child.returncode}"]
            raise RuntimeError(f"the interpreter's child process failed: {lines[-1]}")
        output, ran = torch.load(result, weights_only=False)
    if ran != [_TRITON]:
        raise RuntimeError(f"backend={_TRITON!r} was asked for, but {ran} ran in the interpreter's child process")
    return output


def _child(arguments: Path, result: Path) -> None:
    module, name, args = torch.load(arguments, weights_only=False)
    function = getattr(importlib.import_module(module), name)
    with kernels.record_backends() as ran:
        output = function(*args)
    torch.save((output, sorted(set(ran))), result)


if __name__ == "__main__":
    _child(Path(sys.argv[1]), Path(sys.argv[2]))
