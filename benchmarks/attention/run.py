"""The attention commands, each a `Sweep` of cases, modes and every provider:

- `python -m benchmarks attention`: the forward, ours vs every torch SDPA backend vs FlexAttention vs
  the reference, on no mask, causal and key padding;
- `python -m benchmarks backward`: the backward alone and forward + backward on the same masks, with
  dq/dk/dv errors against float64 autograd;
- `python -m benchmarks masked`: the forward with the masks users pass (key padding at ~25% and ~50%, a
  bool sliding window, an additive ALiBi-like bias, causal + key padding in one bool mask) and the score
  variants (sliding window, soft-capping, ALiBi, sinks) beside plain causal attention, and packed
  documents (a dense block-diagonal causal mask, FlexAttention's document block mask, varlen_attention);
  then the padded vs packed training step, forward + backward on the same documents padded and packed.
  The goals: ours >= 3x SDPA's default on key padding; variants within 5% (the window 10%) of the causal
  rate, and at least FlexAttention; packed documents within 10% of the causal rate per attended score,
  at least FlexAttention, and packed training faster than padded by the padding fraction.

Each measures every case with a progress bar, prints the tables, writes the JSON and the plots.
"""

import argparse
import itertools
from dataclasses import dataclass, replace

from benchmarks.attention.cases import (
    ATTENTION_CASES,
    MASKED_CASES,
    TRAINING_MASKS,
    CaseSet,
    MaskKind,
    attention_cases,
)
from benchmarks.attention.measure import has_row, measure_cases, with_twin_comparisons
from benchmarks.attention.modes import Mode, describe_modes
from benchmarks.attention.providers import attention_providers
from benchmarks.attention.report import attention_tables, plot_attention, unavailable_table
from benchmarks.harness.command_run import Command, CommandRun, add_dtype_option

MASKED_NOTE = (
    "masked rows count the dense FLOPs (every query-key pair, only is_causal halves them), whatever the mask "
    "excludes: a kernel that skips masked tiles shows a rate above the work it did, so compare providers by "
    "time and the speed-up over SDPA's default; the score variants run on causal attention, the window "
    "counting the pairs in its band, and rate_vs_causal is a variant's TFLOP/s over the same provider's on "
    "the causal case; packed documents count the pairs within each document, padded or packed, their "
    "rate_vs_causal likewise, and speedup_vs_padded is the padded documents' time over the packed ones'"
)


@dataclass(frozen=True)
class Sweep:
    name: str  # the subcommand: also the JSON's "benchmark", its file name and the plots' prefix
    title: str  # what the plots say was measured
    help: str
    modes: tuple[Mode, ...]
    case_set: CaseSet = ATTENTION_CASES
    note: str | None = None  # what else a reader of the tables must know (printed and written to the JSON)
    # Masks measured after the sweep in forward + backward too, ours also through varlen_attention: the
    # masked sweep's padded vs packed training step.
    training_masks: tuple[MaskKind, ...] = ()

    @property
    def gradients(self) -> bool:
        return any(mode.needs_gradients for mode in self.modes)

    @property
    def all_modes(self) -> tuple[Mode, ...]:
        training = (Mode.FORWARD_BACKWARD,) if self.training_masks else ()
        return tuple(dict.fromkeys((*self.modes, *training)))

    def run(self, args: argparse.Namespace) -> int:
        run = CommandRun.start(self.name, args, describe_modes(self.all_modes), note=self.note)
        varlen = bool(self.training_masks)
        providers = attention_providers(args.device, check_ours_in_child=not self.gradients, varlen=varlen)
        training_providers = attention_providers(args.device, varlen=varlen)
        run.settings["modes"] = [mode.value for mode in self.all_modes]
        run.settings["providers"] = {p.name: p.label for p in providers}
        ceilings = run.measure_ceilings()
        cases = attention_cases(args.device, args.quick, self.gradients, self.case_set)
        training = attention_cases(args.device, args.quick, True, replace(self.case_set, masks=self.training_masks))
        steps = (len(self.modes) * sum(has_row(p, case) for case in cases for p in providers)
                 + sum(has_row(p, case) for case in training for p in training_providers))
        with run.progress(steps) as on_step:
            sweeps = [measure_cases(cases, providers, run.dtype, run.stopwatch, ceilings, on_step, self.modes)]
            if training:
                sweeps.append(measure_cases(training, training_providers, run.dtype, run.stopwatch, ceilings,
                                            on_step, (Mode.FORWARD_BACKWARD,)))
            rows = with_twin_comparisons(run.collect(itertools.chain(*sweeps)))
        run.print_tables([*attention_tables(rows), unavailable_table(rows)])
        title = f"{self.title}, {run.settings['dtype']}, {run.metadata['card']}"
        return run.finish(rows, args.out, plot_attention(rows, ceilings, title, args.out, self.name))


SWEEPS = (
    Sweep("attention", "attention forward", "attention forward: ours vs torch SDPA backends vs reference",
          (Mode.FORWARD,)),
    Sweep("backward", "attention backward", "attention backward and fwd+bwd: ours vs torch SDPA backends vs reference",
          (Mode.BACKWARD, Mode.FORWARD_BACKWARD)),
    Sweep("masked", "masked attention",
          "attention forward with real masks, the score variants and packed documents, and the padded vs packed "
          "training step: ours vs SDPA vs flex",
          (Mode.FORWARD,), MASKED_CASES, MASKED_NOTE, TRAINING_MASKS),
)
COMMANDS = tuple(Command(sweep.name, sweep.help, sweep.run, add_dtype_option) for sweep in SWEEPS)
