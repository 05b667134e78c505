"""Our kernels checked in a Triton-interpreter child process, from a process that imported them without
the interpreter (a newcomer's CPU run): the result comes back, and a failure comes back as an error."""

import os

import pytest
import torch

from benchmarks.attention import accuracy
from benchmarks.attention.cases import AttentionCase, MaskKind, make_inputs
from benchmarks.attention.providers import call_ours
from benchmarks.harness import interpreter_child
from benchmarks.harness.interpreter_child import call_in_interpreter

CPU = torch.device("cpu")


@pytest.fixture
def without_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


def test_our_kernel_runs_in_the_child_and_matches_float64(without_the_interpreter):
    inputs = make_inputs(AttentionCase(1, 2, 16, 16, MaskKind.CAUSAL), torch.float32, CPU, seed=3)
    output = call_in_interpreter(call_ours, inputs)
    assert accuracy.max_abs_error(output, accuracy.float64_reference(inputs)) < 1e-5


def test_a_failing_child_is_an_error_with_the_child_s_last_line(without_the_interpreter):
    inputs = make_inputs(AttentionCase(1, 2, 16, 16, MaskKind.NONE), torch.float32, CPU, seed=3)
    with pytest.raises(RuntimeError, match="child process failed: .*TypeError"):
        call_in_interpreter(call_ours, inputs, "an argument too many")


def test_one_child_serves_the_calls_and_a_dead_one_is_replaced(without_the_interpreter):
    inputs = make_inputs(AttentionCase(1, 2, 16, 16, MaskKind.CAUSAL), torch.float32, CPU, seed=3)
    call_in_interpreter(call_ours, inputs)
    serving = interpreter_child._child.process
    with pytest.raises(RuntimeError, match="child process failed: exit code 3"):
        call_in_interpreter(os._exit, 3)
    assert serving.returncode == 3 and interpreter_child._child is None
    output = call_in_interpreter(call_ours, inputs)  # in a fresh child
    assert accuracy.max_abs_error(output, accuracy.float64_reference(inputs)) < 1e-5
