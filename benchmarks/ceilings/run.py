"""`python -m benchmarks ceilings`: the card's measured matmul and copy ceilings."""

import argparse
from dataclasses import asdict

from benchmarks.harness.ceilings import measure_ceilings
from benchmarks.harness.command_run import Command
from benchmarks.harness.environment import run_metadata
from benchmarks.harness.results_file import write_results
from benchmarks.harness.tables import ceilings_table, header, make_console
from benchmarks.harness.timing import Stopwatch

MEASURED = "a large matmul (TFLOP/s) and a large copy (GB/s, bytes read + written), each timed alone"


def run(args: argparse.Namespace) -> int:
    console = make_console()
    stopwatch = Stopwatch(args.device, args.quick)
    metadata = run_metadata(args.device)
    console.print(header("ceilings", metadata, {"measured": MEASURED, "timing": stopwatch.describe()}))
    with console.status("measuring the ceilings"):
        ceilings = measure_ceilings(stopwatch)
    console.print(ceilings_table(ceilings))
    payload = {
        "benchmark": "ceilings",
        "measured": MEASURED,
        "environment": metadata,
        "timing": stopwatch.describe(),
        "ceilings": asdict(ceilings),
    }
    console.print(f"wrote {write_results(args.out, 'ceilings', payload)}")
    return 0


COMMAND = Command("ceilings", MEASURED, run)
