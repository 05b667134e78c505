"""`python -m benchmarks transformer`: the course's Transformer forward, ours (kernels.Transformer) vs
torch.nn.Transformer vs the reference build, and KV-cached decoding tokens/s at long contexts."""
import argparse
import itertools

from benchmarks.environment import DTYPES, dtype_name, run_metadata
from benchmarks.results_file import write_results
from benchmarks.table import header, make_console
from benchmarks.timing import Stopwatch
from benchmarks.transformer_report import transformer_tables, unavailable_transformer_table
from benchmarks.transformer_suite import MEASURED, decode_cases, forward_cases, measure_decode, measure_forward

CPU_NOTE = ("CPU: small shapes; our Triton kernels run there only in Triton's interpreter (an error check, "
            "its time is not a speed)")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "transformer", parents=[common],
        help="course Transformer forward (ours vs nn.Transformer vs reference) and KV-cached decode tokens/s",
    )
    parser.add_argument("--dtype", choices=DTYPES, help="default: bf16 on CUDA, fp32 on the CPU")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = args.device
    dtype = DTYPES[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    stopwatch = Stopwatch(device, args.quick)
    cases = {"forward": forward_cases(device, args.quick), "decode": decode_cases(device, args.quick)}
    metadata = run_metadata(device)
    settings = {"measured": MEASURED, "dtype": dtype_name(dtype), "timing": stopwatch.describe(), "quick": args.quick}
    if device.type == "cpu":
        settings["note"] = CPU_NOTE

    console = make_console()
    shown = {**MEASURED, **{key: str(value) for key, value in settings.items() if key != "measured"}}
    console.print(header("transformer", metadata, shown))
    rows, interrupted = [], False
    with console.status("measuring") as status:
        try:  # Ctrl-C (or `timeout --signal=INT`) keeps the rows measured so far
            for row in itertools.chain(
                measure_forward(cases["forward"], dtype, stopwatch, on_step=status.update),
                measure_decode(cases["decode"], dtype, stopwatch, on_step=status.update),
            ):
                rows.append(row)
        except KeyboardInterrupt:
            interrupted = True
    for table in transformer_tables(rows):
        console.print(table)
    unavailable = unavailable_transformer_table(rows)
    if unavailable is not None:
        console.print(unavailable)

    payload = {
        "benchmark": "transformer",
        "interrupted": interrupted,
        "environment": metadata,
        "settings": settings,
        "rows": [row.as_record() for row in rows],
    }
    json_path = write_results(args.out, "transformer", payload)
    console.print(f"wrote {json_path}")
    if interrupted:
        console.print(f"[bold red]interrupted: {len(rows)} rows measured")
        return 130  # the shell's code for a run stopped by SIGINT
    return 0
