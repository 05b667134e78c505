"""The `context-parallel` subcommand: parse, run, print, write JSON."""
import argparse
import json

import torch

from benchmarks.context_parallel.cases import benchmark_cases
from benchmarks.context_parallel.report import summarise, table_lines
from benchmarks.context_parallel.run import run_cases

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "context-parallel", parents=[common],
        help="ring / ulysses / allgather attention on W processes: correctness, bytes sent, scaling")
    parser.add_argument("--world-size", type=int, default=2, help="processes (GPUs on CUDA); default: 2")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                        help="default: float32 on the CPU, bfloat16 on CUDA")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = args.device
    if device.type == "cuda" and torch.cuda.device_count() < args.world_size:
        print(f"context-parallel needs {args.world_size} GPUs, this machine has {torch.cuda.device_count()}")
        return 1
    dtype = DTYPES[args.dtype or ("bfloat16" if device.type == "cuda" else "float32")]
    cases = benchmark_cases(args.world_size, args.quick, device)
    summaries = summarise(cases, run_cases(cases, args.world_size, dtype, device), dtype, device.type)
    print("\n".join(table_lines(summaries)))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "context_parallel.json"
    path.write_text(json.dumps({"device": str(device), "dtype": str(dtype), "cases": summaries}, indent=2))
    print(f"wrote {path}")
    return 0 if all(s["bytes_match"] for s in summaries) else 1
