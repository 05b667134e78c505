"""`python -m benchmarks transformer`: the course's Transformer forward, ours (kernels.Transformer) vs
torch.nn.Transformer vs the reference build, and KV-cached decoding tokens/s at long contexts."""
import argparse
import itertools

from benchmarks.command_run import CommandRun, add_dtype_option
from benchmarks.transformer_report import transformer_tables, unavailable_transformer_table
from benchmarks.transformer_suite import MEASURED, decode_cases, forward_cases, measure_decode, measure_forward

CPU_NOTE = ("CPU: small shapes; our Triton kernels run there only in Triton's interpreter (an error check, "
            "its time is not a speed)")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "transformer", parents=[common],
        help="course Transformer forward (ours vs nn.Transformer vs reference) and KV-cached decode tokens/s",
    )
    add_dtype_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    run = CommandRun.start("transformer", args, MEASURED, CPU_NOTE)
    forward, decode = forward_cases(args.device, args.quick), decode_cases(args.device, args.quick)
    with run.console.status("measuring") as status:
        rows = run.collect(itertools.chain(
            measure_forward(forward, run.dtype, run.stopwatch, on_step=status.update),
            measure_decode(decode, run.dtype, run.stopwatch, on_step=status.update),
        ))
    for table in transformer_tables(rows):
        run.console.print(table)
    unavailable = unavailable_transformer_table(rows)
    if unavailable is not None:
        run.console.print(unavailable)
    return run.finish(rows, args.out)
