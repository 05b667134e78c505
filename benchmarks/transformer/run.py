"""`python -m benchmarks transformer`: the course's Transformer forward, ours (kernels.Transformer) vs
torch.nn.Transformer vs the reference build, and KV-cached decoding tokens/s at long contexts."""
import argparse
import itertools

from benchmarks.harness.command_run import Command, CommandRun, add_dtype_option
from benchmarks.transformer.cases import decode_cases, forward_cases
from benchmarks.transformer.measure import MEASURED, measure_decode, measure_forward
from benchmarks.transformer.report import transformer_tables, unavailable_transformer_table

CPU_NOTE = ("CPU: small shapes; our Triton kernels run there only in Triton's interpreter (an error check, "
            "its time is not a speed)")


def run(args: argparse.Namespace) -> int:
    run = CommandRun.start("transformer", args, MEASURED, CPU_NOTE)
    forward, decode = forward_cases(args.device, args.quick), decode_cases(args.device, args.quick)
    with run.progress() as on_step:
        rows = run.collect(itertools.chain(
            measure_forward(forward, run.dtype, run.stopwatch, on_step=on_step),
            measure_decode(decode, run.dtype, run.stopwatch, on_step=on_step),
        ))
    run.print_tables([*transformer_tables(rows), unavailable_transformer_table(rows)])
    return run.finish(rows, args.out)


COMMAND = Command(
    "transformer", "course Transformer forward (ours vs nn.Transformer vs reference) and KV-cached decode tokens/s",
    run, add_dtype_option,
)
