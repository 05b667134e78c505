"""`python -m benchmarks parity [--model PATH_OR_NAME]`: kernels.testing's parity sweep (or its `--model`
check) with the benchmarks' header (card, software, commit) and the results written to
`--out/parity.json` (`parity-model.json`). The checks themselves live in kernels/testing/
(`python -m kernels.testing` runs them without writing anything).
"""

import argparse

from benchmarks.harness.command_run import Command
from benchmarks.harness.environment import run_metadata
from benchmarks.harness.results_file import write_results
from benchmarks.harness.tables import header, make_console
from kernels.testing.parity_command import ParityOutput, add_parity_options, run_parity


def run(args: argparse.Namespace) -> int:
    console = make_console()
    metadata = {}

    def show_header(title: str, settings: dict[str, str]) -> None:
        metadata.update(run_metadata(args.device))
        console.print(header(title, metadata, settings))

    def save(name: str, results: dict) -> str:
        path = write_results(args.out, name, {"benchmark": name, "environment": metadata, **results})
        return f"; wrote {path}"

    return run_parity(args, ParityOutput(console, show_header, save))


COMMAND = Command("parity", "our attention vs float64 reference: pass/fail per shape, dtype, mask", run,
                  add_parity_options)
