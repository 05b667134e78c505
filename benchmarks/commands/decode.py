"""`python -m benchmarks decode`: decode attention (Nq = 1 and 4 over a KV cache), ours with split-K and
without vs torch SDPA's default and backends vs the eager reference, in GB/s against the card's measured
copy ceiling."""
import argparse
from dataclasses import asdict

from benchmarks.ceilings import measure_ceilings
from benchmarks.decode_inputs import decode_cases
from benchmarks.decode_report import decode_tables, plot_decode, unavailable_decode_table
from benchmarks.decode_suite import CPU_NOTE, MEASURED, decode_providers, measure_cases
from benchmarks.environment import DTYPES, dtype_name, run_metadata
from benchmarks.results_file import write_results
from benchmarks.table import ceilings_table, header, make_console
from benchmarks.timing import Stopwatch


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "decode", parents=[common], help="decode attention over a KV cache: ours (split-K) vs SDPA, GB/s"
    )
    parser.add_argument("--dtype", choices=DTYPES, help="default: bf16 on CUDA, fp32 on the CPU")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = args.device
    dtype = DTYPES[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    stopwatch = Stopwatch(device, args.quick)
    cases = decode_cases(device, args.quick)
    metadata = run_metadata(device)
    settings = {"measured": MEASURED, "dtype": dtype_name(dtype), "timing": stopwatch.describe(), "quick": args.quick}
    if device.type == "cpu":
        settings["note"] = CPU_NOTE

    console = make_console()
    console.print(header("decode", metadata, {key: str(value) for key, value in settings.items()}))
    settings["providers"] = {p.name: p.label for p in decode_providers(device)}
    with console.status("measuring the card's ceilings"):
        ceilings = measure_ceilings(stopwatch)
    console.print(ceilings_table(ceilings))
    rows = []
    with console.status("measuring") as status:
        for case_rows in measure_cases(cases, dtype, stopwatch, ceilings, on_step=status.update):
            rows += case_rows
    for table in decode_tables(rows):
        console.print(table)
    unavailable = unavailable_decode_table(rows)
    if unavailable is not None:
        console.print(unavailable)

    payload = {
        "benchmark": "decode",
        "environment": metadata,
        "settings": settings,
        "ceilings": asdict(ceilings),
        "rows": [row.as_record() for row in rows],
    }
    json_path = write_results(args.out, "decode", payload)
    plots = plot_decode(rows, ceilings, f"decode attention, {dtype_name(dtype)}, {metadata['card']}", args.out)
    console.print(f"wrote {json_path} and {len(plots)} plots in {args.out}")
    return 0
