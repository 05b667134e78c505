"""The subcommands of `python -m benchmarks`, in the order `--help` lists them: each folder's `run.py`
provides its `COMMAND` (the attention folder three, its `COMMANDS`). A new suite adds one line here."""

from benchmarks.all import run as all_run
from benchmarks.attention import run as attention_run
from benchmarks.ceilings import run as ceilings_run
from benchmarks.compile import run as compile_run
from benchmarks.context_parallel import run as context_parallel_run
from benchmarks.decode import run as decode_run
from benchmarks.overhead import run as overhead_run
from benchmarks.parity import run as parity_run
from benchmarks.pipelines import run as pipelines_run
from benchmarks.positional import run as positional_run
from benchmarks.results import run as results_run
from benchmarks.transformer import run as transformer_run

COMMANDS = (
    *attention_run.COMMANDS,  # attention, backward, masked
    ceilings_run.COMMAND,
    decode_run.COMMAND,
    overhead_run.COMMAND,
    parity_run.COMMAND,
    positional_run.COMMAND,
    transformer_run.COMMAND,
    pipelines_run.COMMAND,
    context_parallel_run.COMMAND,
    all_run.COMMAND,
    results_run.COMMAND,  # report
    compile_run.COMMAND,
)
