"""`python -m benchmarks decode`: decode attention (Nq = 1 and 4 over a KV cache), ours with split-K and
without vs torch SDPA's default and backends vs the eager reference, in GB/s against the card's measured
copy ceiling."""
import argparse

from benchmarks.decode.cases import decode_cases
from benchmarks.decode.measure import CPU_NOTE, MEASURED, measure_cases
from benchmarks.decode.providers import decode_providers
from benchmarks.decode.report import decode_tables, plot_decode, unavailable_decode_table
from benchmarks.harness.command_run import Command, CommandRun, add_dtype_option


def run(args: argparse.Namespace) -> int:
    run = CommandRun.start("decode", args, MEASURED, CPU_NOTE)
    providers = decode_providers(args.device)
    run.settings["providers"] = {p.name: p.label for p in providers}
    ceilings = run.measure_ceilings()
    cases = decode_cases(args.device, args.quick)
    with run.progress(len(cases) * len(providers)) as on_step:
        rows = run.collect(measure_cases(cases, run.dtype, run.stopwatch, ceilings, on_step))
    run.print_tables([*decode_tables(rows), unavailable_decode_table(rows)])
    title = f"decode attention, {run.settings['dtype']}, {run.metadata['card']}"
    return run.finish(rows, args.out, plot_decode(rows, ceilings, title, args.out))


COMMAND = Command("decode", "decode attention over a KV cache: ours (split-K) vs SDPA, GB/s", run, add_dtype_option)
