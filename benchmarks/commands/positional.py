"""`python -m benchmarks positional`: the fused sinusoidal encoding and embedding, ours vs the course's
table add vs torch eager, in GB/s against the card's measured copy ceiling."""
import argparse
from dataclasses import asdict

from benchmarks.ceilings import measure_ceilings
from benchmarks.environment import DTYPES, dtype_name, run_metadata
from benchmarks.positional_precision import measure_precision
from benchmarks.positional_report import (
    plot_positional,
    positional_tables,
    precision_table,
    unavailable_positional_table,
)
from benchmarks.positional_suite import CPU_NOTE, MEASURED, measure_cases, positional_cases
from benchmarks.results_file import write_results
from benchmarks.table import ceilings_table, header, make_console
from benchmarks.timing import Stopwatch


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "positional", parents=[common], help="sinusoidal encoding and embedding: ours vs table add vs torch eager"
    )
    parser.add_argument("--dtype", choices=DTYPES, help="default: bf16 on CUDA, fp32 on the CPU")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = args.device
    dtype = DTYPES[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    stopwatch = Stopwatch(device, args.quick)
    cases = positional_cases(device, args.quick)
    metadata = run_metadata(device)
    settings = {"measured": MEASURED, "dtype": dtype_name(dtype), "timing": stopwatch.describe(), "quick": args.quick}
    if device.type == "cpu":
        settings["note"] = CPU_NOTE

    console = make_console()
    console.print(header("positional", metadata, {key: str(value) for key, value in settings.items()}))
    with console.status("measuring the card's ceilings"):
        ceilings = measure_ceilings(stopwatch)
    console.print(ceilings_table(ceilings))
    rows = []
    with console.status("measuring") as status:
        for case_rows in measure_cases(cases, dtype, stopwatch, ceilings, on_step=status.update):
            rows += case_rows
    for table in positional_tables(rows):
        console.print(table)
    unavailable = unavailable_positional_table(rows)
    if unavailable is not None:
        console.print(unavailable)
    precision_width = 1024 if device.type == "cuda" else 64
    with console.status("measuring the encoding's error at large positions"):
        precision = measure_precision(device, precision_width)
    console.print(precision_table(precision, precision_width))

    payload = {
        "benchmark": "positional",
        "environment": metadata,
        "settings": settings,
        "ceilings": asdict(ceilings),
        "rows": [row.as_record() for row in rows],
        "precision": {"d_model": precision_width, "windows": [row.as_record() for row in precision]},
    }
    json_path = write_results(args.out, "positional", payload)
    plots = plot_positional(rows, ceilings, f"positional encoding, {dtype_name(dtype)}\n{metadata['card']}", args.out)
    console.print(f"wrote {json_path} and {len(plots)} plots in {args.out}")
    return 0
