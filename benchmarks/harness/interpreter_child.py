"""Our Triton kernels checked on a CPU by a process that cannot run them itself.

triton decides when a kernel is decorated, that is when `kernels` is imported, whether it runs in its
interpreter (TRITON_INTERPRET=1): a process that imported the kernels without the variable cannot
switch. `call_in_interpreter` runs one call in a child Python with the variable set (the arguments and
the result travel as torch.save files) and proves there that our Triton backend, and only it, ran. The
child starts on the first call and serves the later ones (it ends when this process closes its input),
so that a sweep pays Python's and torch's start-up once. Its time includes the interpreter: a
correctness check, never a speed.

    python -m benchmarks.harness.interpreter_child   (the child's side: one "ARGUMENTS RESULT" line a call)
"""

import atexit
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
_FAILED = "the interpreter's child process failed"


class _Child:
    """The child process, its stderr kept in a file (its last line says why it died, if it does)."""

    def __init__(self) -> None:
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__], env={**os.environ, "TRITON_INTERPRET": "1"}, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
        )

    def call(self, arguments: Path, result: Path) -> None:
        """Have the child answer one request; RuntimeError if it exits instead."""
        self.process.stdin.write(f"{arguments}\t{result}\n")
        self.process.stdin.flush()
        if not self.process.stdout.readline():
            self.stop()
            self.log.seek(0)
            lines = self.log.read().decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"{_FAILED}: {lines[-1] if lines else f'exit code {self.process.returncode}'}")

    def stop(self) -> None:
        """Close its input (it exits when its requests end) and wait for it."""
        self.process.stdin.close()
        self.process.wait()


_child: _Child | None = None


def call_in_interpreter(function: Callable, *args) -> object:
    """`function(*args)` in the child process with TRITON_INTERPRET=1; `function` must be importable by
    its module and name. Raises RuntimeError with the child's error when it fails."""
    global _child
    with tempfile.TemporaryDirectory(prefix="interpreter-child-") as folder:
        arguments, result = Path(folder, "arguments.pt"), Path(folder, "result.pt")
        torch.save((function.__module__, function.__qualname__, args), arguments)
        if _child is None or _child.process.poll() is not None:
            _child = _Child()
        try:
            _child.call(arguments, result)
        except BaseException:  # died, or interrupted mid-call: a later call starts a fresh child
            _stop_child()
            raise
        output, ran, error = torch.load(result, weights_only=False)
    if error is not None:
        raise RuntimeError(f"{_FAILED}: {error}")
    if ran != [_TRITON]:
        raise RuntimeError(f"backend={_TRITON!r} was asked for, but {ran} ran in the interpreter's child process")
    return output


@atexit.register
def _stop_child() -> None:
    global _child
    if _child is not None:
        child, _child = _child, None
        if child.process.poll() is None:
            child.stop()


def _serve() -> None:
    """Answer each request line with a line once its result file is written: (output, the backends that
    ran, None) or (None, None, the error). The calls' own prints go to stderr, away from the answers."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    for line in sys.stdin:
        arguments, result = line.rstrip("\n").split("\t")
        module, name, args = torch.load(arguments, weights_only=False)
        try:
            with kernels.record_backends() as ran:
                output = getattr(importlib.import_module(module), name)(*args)
            answer = (output, sorted(set(ran)), None)
        except Exception as failure:  # its first line goes back: the caller raises it
            message = str(failure).strip().split("\n", 1)[0]
            answer = (None, None, f"{type(failure).__name__}: {message}")
        torch.save(answer, result)
        answers.write("done\n")
        answers.flush()


if __name__ == "__main__":
    _serve()
