"""The body of the parity commands, behind both front ends: `python -m kernels.testing` (the terminal
only) and `python -m benchmarks parity` (also the card and software in a header, and a JSON file).

The sweep: our Triton attention against the float64 reference on shapes x dtypes x mask kinds, each
case passing or failing by kernels.testing's rule (`parity_sweep.py`). With `--model PATH_OR_NAME`: a
Hugging Face model with transformers' sdpa attention against the same weights with ours, layer by layer
(`model_parity.py`). Exit code 0 when every case passes, 1 when any fails, 2 when the Triton kernels (or
the model) cannot run here. Needs rich (the `bench` extra).
"""

import argparse
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from rich.console import Console
from rich.markup import escape

from kernels.shared.backends import triton_runs_on
from kernels.testing.attention_specs import DTYPE_NAMES
from kernels.testing.model_parity import ModelNotAvailable, check_model
from kernels.testing.parity_sweep import ParityRow, check_case, parity_specs
from kernels.testing.parity_table import parity_table
from kernels.testing.tolerances import TOLERANCES

RULE = (
    "pass when max |ours - float64 reference| <= error_ratio x max |PyTorch in the same precision - float64 "
    "reference| + absolute_floor (kernels.testing.TOLERANCES)"
)
CANNOT_RUN = (
    "The Triton kernels cannot run on the CPU without Triton's interpreter: rerun with TRITON_INTERPRET=1 "
    "(set before triton is imported) to check them there, or on a CUDA device."
)


@dataclass(frozen=True)
class ParityOutput:
    """Where a parity run shows and keeps what it found."""

    console: Console
    header: Callable[[str, dict[str, str]], None]  # (title, settings): printed before any result
    save: Callable[[str, dict], str]  # (name, results) -> the end of the last line: "; wrote PATH", or ""


def add_parity_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH_OR_NAME",
                        help="a Hugging Face model directory (or a hub id in the local cache): sdpa vs ours, per layer")
    parser.add_argument("--threshold", type=float, default=1e-3,
                        help="with --model: the largest max |ours - sdpa| a layer output may show "
                             "(default: %(default)s)")


def run_parity(args: argparse.Namespace, output: ParityOutput) -> int:
    """The sweep (`args.quick` for fewer shapes), or the model check with `args.model`, on `args.device`."""
    if not triton_runs_on(args.device):
        output.console.print(f"[bold red]{CANNOT_RUN}")
        return 2
    if args.model:
        return _run_model(args, output)
    return _run_sweep(args, output)


def _run_sweep(args: argparse.Namespace, output: ParityOutput) -> int:
    console = output.console
    specs = parity_specs(args.device, args.quick)
    settings = {"rule": RULE, "kernel": _kernel_description(args.device), "quick": args.quick, "cases": len(specs)}
    output.header("parity", {key: str(value) for key, value in settings.items()})
    rows: list[ParityRow] = []
    with console.status("checking") as status:
        for number, spec in enumerate(specs, 1):
            status.update(f"{number}/{len(specs)}: {spec.label} {DTYPE_NAMES[spec.dtype]}")
            rows.append(check_case(spec, args.device))
    console.print(parity_table(rows))
    failed = [row for row in rows if not row.passed]
    for row in failed:
        case = f"{row.spec.label} {DTYPE_NAMES[row.spec.dtype]}"
        console.print(escape(f"FAIL {case}: {row.failure or repr(row.result)}"))

    tolerances = {DTYPE_NAMES[dtype]: asdict(tolerance) for dtype, tolerance in TOLERANCES.items()}
    saved = output.save("parity", {"settings": {**settings, "tolerances": tolerances},
                                   "rows": [row.as_record() for row in rows]})
    console.print(f"{len(rows) - len(failed)} of {len(rows)} cases pass{saved}")
    return 1 if failed else 0


def _run_model(args: argparse.Namespace, output: ParityOutput) -> int:
    settings = {"model": args.model, "threshold": args.threshold, "kernel": _kernel_description(args.device)}
    output.header("parity --model", {key: str(value) for key, value in settings.items()})
    try:
        parity = check_model(args.model, args.device, args.threshold)
    except ModelNotAvailable as error:
        output.console.print(f"[bold red]{escape(str(error))}")
        return 2
    output.console.print(escape(str(parity.comparison)))
    saved = output.save("parity-model", parity.as_record())
    divergence = parity.first_divergence
    verdict = "every layer within" if divergence is None else f"first divergence at {divergence.label}, above"
    output.console.print(escape(f"{verdict} max |ours - sdpa| {args.threshold:g}{saved}"))
    return 0 if parity.passed else 1


def _kernel_description(device: torch.device) -> str:
    if device.type == "cuda":
        return "our Triton kernels, compiled for this card"
    return "our Triton kernels in Triton's interpreter on the CPU (small shapes: a correctness check only)"
