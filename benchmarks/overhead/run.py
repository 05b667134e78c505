"""`python -m benchmarks overhead`: the host time per call of `kernels.attention` (issue 14, part 6),
always measured on the CPU: the torch path against torch's own SDPA and module, and the Triton path up
to its launch without a GPU (benchmarks/overhead/host_only.py)."""
import argparse

import torch
from triton import knobs

from benchmarks.harness.command_run import Command, CommandRun, add_dtype_option
from benchmarks.overhead.cases import torch_path_cases, triton_path_cases
from benchmarks.overhead.report import torch_path_table, triton_path_tables, unavailable_table
from benchmarks.overhead.torch_path import measure_torch_path
from benchmarks.overhead.triton_path import LEVELS, PARTS, measure_triton_path

MEASURED = (
    "host time per call, on the CPU: (1) torch path: kernels.attention on its torch backend vs "
    "F.scaled_dot_product_attention with the same arguments, and kernels.nn.MultiheadAttention vs "
    "torch.nn.MultiheadAttention; added = the median over rounds of ours - torch's, a block of each per round; (2) Triton path, no GPU: everything up to "
    "the launch (Triton's binding for sm_90 included, the driver's launch left out), level by level; own = "
    "a level's median - the next level's"
)
NOTE = "host time: measured on the CPU whatever --device says (a GPU only adds the launch itself)"
_INTERPRETING = "the Triton path is measured without TRITON_INTERPRET (the interpreter's kernels are not a GPU's)"


def run(args: argparse.Namespace) -> int:
    args.device = torch.device("cpu")
    torch.set_num_threads(1)  # host time is Python's: more threads only add noise (the tiny math is the same)
    # One thread does all of a call's work, so its CPU time is the call's host time, whatever else the
    # machine runs: the pairs' small differences survive a shared machine's preemptions.
    run = CommandRun.start("overhead", args, MEASURED, note=NOTE, thread_cpu_time=True)
    torch_cases, triton_cases = torch_path_cases(args.quick), triton_path_cases(args.quick)
    measure_triton = not knobs.runtime.interpret
    if not measure_triton:
        run.console.print(f"[yellow]skipping the Triton path: {_INTERPRETING}")
        run.settings["triton_path_skipped"] = _INTERPRETING
    steps = 2 * len(torch_cases) + 2 + measure_triton * len(triton_cases) * (len(LEVELS) + len(PARTS))
    with run.progress(steps) as on_step:
        rows = run.collect(measure_torch_path(torch_cases, run.dtype, run.stopwatch, on_step))
        if measure_triton and not run.interrupted:
            rows += run.collect(measure_triton_path(triton_cases, run.dtype, run.stopwatch, on_step))
    run.print_tables([torch_path_table(rows), *triton_path_tables(rows), unavailable_table(rows)])
    return run.finish(rows, args.out)


COMMAND = Command("overhead", "host time per call: ours vs torch SDPA, and the Triton path up to its launch", run,
                  add_dtype_option)
