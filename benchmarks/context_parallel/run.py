"""`python -m benchmarks context-parallel`: ring / ulysses / allgather attention on W processes, checked
against one device, with the bytes each rank sends against the formulas (and TFLOP/s on GPUs)."""
import argparse

import torch

from benchmarks.context_parallel.cases import benchmark_cases
from benchmarks.context_parallel.ranks import run_cases
from benchmarks.context_parallel.report import summarise, table_lines
from benchmarks.harness.command_run import Command, add_dtype_option, chosen_dtype
from benchmarks.harness.results_file import write_results

HELP = "ring / ulysses / allgather attention on W processes: correctness, bytes sent, scaling"


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world-size", type=int, default=2, help="processes (GPUs on CUDA); default: 2")
    add_dtype_option(parser)


def run(args: argparse.Namespace) -> int:
    device = args.device
    if device.type == "cuda" and torch.cuda.device_count() < args.world_size:
        print(f"context-parallel needs {args.world_size} GPUs, this machine has {torch.cuda.device_count()}")
        return 1
    dtype = chosen_dtype(args)
    cases = benchmark_cases(args.world_size, args.quick, device)
    summaries = summarise(cases, run_cases(cases, args.world_size, dtype, device), dtype, device.type)
    print("\n".join(table_lines(summaries)))
    payload = {"benchmark": "context_parallel", "device": str(device), "dtype": str(dtype), "cases": summaries}
    print(f"wrote {write_results(args.out, 'context_parallel', payload)}")
    return 0 if all(s["bytes_match"] for s in summaries) else 1


COMMAND = Command("context-parallel", HELP, run, add_options)
