"""`python -m benchmarks decode`: decode attention (Nq = 1 and 4 over a KV cache), ours with split-K and
without vs torch SDPA's default and backends vs the eager reference, in GB/s against the card's measured
copy ceiling."""
import argparse

from benchmarks.command_run import CommandRun, add_dtype_option
from benchmarks.decode_inputs import decode_cases
from benchmarks.decode_report import decode_tables, plot_decode, unavailable_decode_table
from benchmarks.decode_suite import CPU_NOTE, MEASURED, decode_providers, measure_cases


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "decode", parents=[common], help="decode attention over a KV cache: ours (split-K) vs SDPA, GB/s"
    )
    add_dtype_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    run = CommandRun.start("decode", args, MEASURED, CPU_NOTE)
    run.settings["providers"] = {p.name: p.label for p in decode_providers(args.device)}
    ceilings = run.measure_ceilings()
    cases = decode_cases(args.device, args.quick)
    with run.console.status("measuring") as status:
        rows = run.collect(measure_cases(cases, run.dtype, run.stopwatch, ceilings, on_step=status.update))
    for table in decode_tables(rows):
        run.console.print(table)
    unavailable = unavailable_decode_table(rows)
    if unavailable is not None:
        run.console.print(unavailable)

    title = f"decode attention, {run.settings['dtype']}, {run.metadata['card']}"
    return run.finish(rows, args.out, plot_decode(rows, ceilings, title, args.out))
