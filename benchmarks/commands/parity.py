"""`python -m benchmarks parity`: our Triton attention against the float64 reference on shapes x dtypes x
mask kinds, each case passing or failing by kernels.testing's rule. With `--model PATH_OR_NAME`: a
Hugging Face model with transformers' sdpa attention against the same weights with ours, layer by
layer (benchmarks/model_parity.py).

Exit code 0 when every case passes, 1 when any fails, 2 when the Triton kernels (or the model) cannot
run here.
"""

import argparse
from dataclasses import asdict

import torch
from rich.markup import escape

from benchmarks.environment import dtype_name, run_metadata
from benchmarks.model_parity import ModelNotAvailable, check_model
from benchmarks.parity_sweep import ParityRow, check_case, parity_specs
from benchmarks.parity_table import parity_table
from benchmarks.results_file import write_results
from benchmarks.table import header, make_console
from kernels.shared.backends import triton_runs_on
from kernels.testing import TOLERANCES

RULE = (
    "pass when max |ours - float64 reference| <= error_ratio x max |PyTorch in the same precision - float64 "
    "reference| + absolute_floor (kernels.testing.TOLERANCES)"
)
CANNOT_RUN = (
    "The Triton kernels cannot run on the CPU without Triton's interpreter: rerun with TRITON_INTERPRET=1 "
    "(set before triton is imported) to check them there, or on a CUDA device."
)


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "parity", parents=[common], help="our attention vs float64 reference: pass/fail per shape, dtype, mask"
    )
    parser.add_argument("--model", metavar="PATH_OR_NAME",
                        help="a Hugging Face model directory (or a hub id in the local cache): sdpa vs ours, per layer")
    parser.add_argument("--threshold", type=float, default=1e-3,
                        help="with --model: the largest max |ours - sdpa| a layer output may show "
                             "(default: %(default)s)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = make_console()
    device = args.device
    if not triton_runs_on(device):
        console.print(f"[bold red]{CANNOT_RUN}")
        return 2
    if args.model:
        return _run_model(args, console)
    specs = parity_specs(device, args.quick)
    metadata = run_metadata(device)
    settings = {"rule": RULE, "kernel": _kernel_description(device), "quick": args.quick, "cases": len(specs)}
    console.print(header("parity", metadata, {key: str(value) for key, value in settings.items()}))
    rows: list[ParityRow] = []
    with console.status("checking") as status:
        for number, spec in enumerate(specs, 1):
            status.update(f"{number}/{len(specs)}: {spec.label} {dtype_name(spec.dtype)}")
            rows.append(check_case(spec, device))
    console.print(parity_table(rows))
    failed = [row for row in rows if not row.passed]
    for row in failed:
        case = f"{row.spec.label} {dtype_name(row.spec.dtype)}"
        console.print(escape(f"FAIL {case}: {row.failure or repr(row.result)}"))

    tolerances = {dtype_name(dtype): asdict(tolerance) for dtype, tolerance in TOLERANCES.items()}
    payload = {
        "benchmark": "parity",
        "environment": metadata,
        "settings": {**settings, "tolerances": tolerances},
        "rows": [row.as_record() for row in rows],
    }
    path = write_results(args.out, "parity", payload)
    console.print(f"{len(rows) - len(failed)} of {len(rows)} cases pass; wrote {path}")
    return 1 if failed else 0


def _run_model(args: argparse.Namespace, console) -> int:
    metadata = run_metadata(args.device)
    settings = {"model": args.model, "threshold": args.threshold, "kernel": _kernel_description(args.device)}
    console.print(header("parity --model", metadata, {key: str(value) for key, value in settings.items()}))
    try:
        parity = check_model(args.model, args.device, args.threshold)
    except ModelNotAvailable as error:
        console.print(f"[bold red]{escape(str(error))}")
        return 2
    console.print(escape(str(parity.comparison)))
    payload = {"benchmark": "parity-model", "environment": metadata, **parity.as_record()}
    path = write_results(args.out, "parity-model", payload)
    divergence = parity.first_divergence
    verdict = "every layer within" if divergence is None else f"first divergence at {divergence.label}, above"
    console.print(escape(f"{verdict} max |ours - sdpa| {args.threshold:g}; wrote {path}"))
    return 0 if parity.passed else 1


def _kernel_description(device: torch.device) -> str:
    if device.type == "cuda":
        return "our Triton kernels, compiled for this card"
    return "our Triton kernels in Triton's interpreter on the CPU (small shapes: a correctness check only)"
