"""The attention commands, each a `Sweep` of cases, modes and every provider:

- `python -m benchmarks attention`: the forward, ours vs every torch SDPA backend vs FlexAttention vs
  the reference, on no mask, causal and key padding;
- `python -m benchmarks backward`: the backward alone and forward + backward on the same masks, with
  dq/dk/dv errors against float64 autograd;
- `python -m benchmarks masked`: the forward with the masks users pass (key padding at ~25% and ~50%, a
  bool sliding window, an additive ALiBi-like bias, causal + key padding in one bool mask) and the score
  variants (sliding window, soft-capping, ALiBi, sinks) beside plain causal attention. The goals: ours
  >= 3x SDPA's default on key padding; variants within 5% (the window 10%) of the causal rate, and at
  least FlexAttention.

Each measures every case with a progress bar, prints the tables, writes the JSON and the plots.
"""

import argparse
from dataclasses import dataclass

from benchmarks.attention.cases import ATTENTION_CASES, MASKED_CASES, CaseSet, attention_cases
from benchmarks.attention.measure import measure_cases, with_rates_vs_causal
from benchmarks.attention.modes import Mode, describe_modes
from benchmarks.attention.providers import attention_providers
from benchmarks.attention.report import attention_tables, plot_attention, unavailable_table
from benchmarks.harness.command_run import Command, CommandRun, add_dtype_option

MASKED_NOTE = (
    "masked rows count the dense FLOPs (every query-key pair, only is_causal halves them), whatever the mask "
    "excludes: a kernel that skips masked tiles shows a rate above the work it did, so compare providers by "
    "time and the speed-up over SDPA's default; the score variants run on causal attention, the window "
    "counting the pairs in its band, and rate_vs_causal is a variant's TFLOP/s over the same provider's on "
    "the causal case"
)


@dataclass(frozen=True)
class Sweep:
    name: str  # the subcommand: also the JSON's "benchmark", its file name and the plots' prefix
    title: str  # what the plots say was measured
    help: str
    modes: tuple[Mode, ...]
    case_set: CaseSet = ATTENTION_CASES
    note: str | None = None  # what else a reader of the tables must know (printed and written to the JSON)

    @property
    def gradients(self) -> bool:
        return any(mode.needs_gradients for mode in self.modes)

    def run(self, args: argparse.Namespace) -> int:
        run = CommandRun.start(self.name, args, describe_modes(self.modes), note=self.note)
        providers = attention_providers(args.device, check_ours_in_child=not self.gradients)
        run.settings["modes"] = [mode.value for mode in self.modes]
        run.settings["providers"] = {p.name: p.label for p in providers}
        ceilings = run.measure_ceilings()
        cases = attention_cases(args.device, args.quick, self.gradients, self.case_set)
        with run.progress(len(cases) * len(self.modes) * len(providers)) as on_step:
            rows = with_rates_vs_causal(run.collect(
                measure_cases(cases, providers, run.dtype, run.stopwatch, ceilings, on_step, self.modes)))
        run.print_tables([*attention_tables(rows), unavailable_table(rows)])
        title = f"{self.title}, {run.settings['dtype']}, {run.metadata['card']}"
        return run.finish(rows, args.out, plot_attention(rows, ceilings, title, args.out, self.name))


SWEEPS = (
    Sweep("attention", "attention forward", "attention forward: ours vs torch SDPA backends vs reference",
          (Mode.FORWARD,)),
    Sweep("backward", "attention backward", "attention backward and fwd+bwd: ours vs torch SDPA backends vs reference",
          (Mode.BACKWARD, Mode.FORWARD_BACKWARD)),
    Sweep("masked", "masked attention forward",
          "attention forward with real masks and the score variants: ours vs SDPA vs flex",
          (Mode.FORWARD,), MASKED_CASES, MASKED_NOTE),
)
COMMANDS = tuple(Command(sweep.name, sweep.help, sweep.run, add_dtype_option) for sweep in SWEEPS)
