"""`python -m kernels.testing [--quick] [--device cuda|cpu]`: the parity sweep, our Triton attention
against the float64 reference on shapes x dtypes x mask kinds, pass or fail per case.
`python -m kernels.testing --model PATH_OR_NAME [--threshold T]`: a Hugging Face model, sdpa against ours,
layer by layer.

Exit code 0 when every case passes, 1 when any fails, 2 when the Triton kernels (or the model) cannot
run here. The results are printed; `python -m benchmarks parity` runs the same and also writes them, with
the card and software, to a JSON file. Needs rich (the `bench` extra).
"""

import argparse
import sys

import torch
from rich.console import Console

from kernels.testing.parity_command import ParityOutput, add_parity_options, run_parity


def _device(name: str | None) -> torch.device:
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels.testing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", type=_device, default=None, metavar="{cuda,cpu}",
                        help="default: cuda when torch sees one")
    parser.add_argument("--quick", action="store_true", help="the first shapes only")
    add_parity_options(parser)
    args = parser.parse_args(argv)
    args.device = args.device or _device(None)
    console = Console()
    if not console.is_terminal:  # logs and pipes: wide enough for the table (rich would use 80 columns)
        console = Console(width=160)

    def header(title: str, settings: dict[str, str]) -> None:
        console.rule(title)
        for key, value in settings.items():
            console.print(f"{key}: {value}", markup=False)

    return run_parity(args, ParityOutput(console, header, save=lambda name, results: ""))


if __name__ == "__main__":
    sys.exit(main())
