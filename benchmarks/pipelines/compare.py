"""One task run with every attention variant on the same model object, switched in place with
`model.set_attn_implementation(...)`: stock `eager` and `sdpa`, and ours (`triton`, from kernels.hf).

Each variant's predictions are compared with the reference variant's (sdpa, or eager where the model
has no sdpa path) by the task's rule; its logits likewise (max |difference| over real positions).
`kernels.record_backends()` shows whether our kernel really ran in the triton variant (a model whose
attention does not go through transformers' AttentionInterface would silently keep its own).
"""
from dataclasses import dataclass, field

import torch

from benchmarks.pipelines.tasks import Mismatch, RunSettings, Task
from benchmarks.harness.timing import Stopwatch, Timing, timing_record
from kernels.shared.backends import record_backends, triton_runs_on

VARIANTS = ("eager", "sdpa", "triton")
INTERPRETER_NOTE = "Triton's interpreter on the CPU: an equality check, its time is not a speed (not timed)"


@dataclass
class VariantResult:
    variant: str
    predictions: list[dict]
    kernel_calls: int  # calls of our Triton kernel while predicting
    timing: Timing | None
    timing_note: str | None
    logits: torch.Tensor | None = None
    mismatches: list[Mismatch] = field(default_factory=list)
    max_logit_difference: float | None = None

    @property
    def problem(self) -> str | None:
        if self.variant == "triton" and self.kernel_calls == 0:
            return "our Triton kernel never ran (the model does not call attention through AttentionInterface)"
        return None

    def as_record(self, examples: int, generated_tokens: int | None, reference_ms: float | None) -> dict:
        seconds = self.timing.median_ms / 1e3 if self.timing else None
        return {
            "variant": self.variant,
            "agrees_with_reference": not self.mismatches and self.problem is None,
            "mismatches": [str(mismatch) for mismatch in self.mismatches],
            "problem": self.problem,
            "max_logit_difference": self.max_logit_difference,
            "triton_kernel_calls": self.kernel_calls,
            **timing_record(self.timing),
            "timing_note": self.timing_note,
            "examples_per_s": examples / seconds if seconds else None,
            "tokens_per_s": generated_tokens / seconds if seconds and generated_tokens is not None else None,
            "speedup_vs_reference": reference_ms / self.timing.median_ms if self.timing and reference_ms else None,
            "predictions": self.predictions,
        }


@dataclass
class TaskResult:
    task: Task
    model: str
    settings: RunSettings
    examples: list
    reference: str
    variants: list[VariantResult]
    unavailable: dict[str, str]  # variant -> why it did not run

    @property
    def agrees(self) -> bool:
        return all(not v.mismatches and v.problem is None for v in self.variants)

    @property
    def reference_result(self) -> VariantResult:
        return next(v for v in self.variants if v.variant == self.reference)

    def as_record(self) -> dict:
        reference = self.reference_result
        reference_ms = reference.timing.median_ms if reference.timing else None
        tokens = self.task.generated_tokens(reference.predictions)
        return {
            "task": self.task.name,
            "model": self.model,
            "implementation": self.task.implementation(),
            "rule": self.task.rule(self.settings),
            "score_tolerance": self.settings.score_tolerance,
            "reference": self.reference,
            "agrees": self.agrees,
            "examples": self.examples,
            "generated_tokens": tokens,
            "variants": [v.as_record(len(self.examples), tokens, reference_ms) for v in self.variants],
            "unavailable": self.unavailable,
        }


def goal_rows(task_record: dict) -> list[dict]:
    """One flat row per variant of a task record, in the fields benchmarks/results/goals.py reads: "provider"
    ("ours" for the triton variant), "available" (it was timed), "agrees_with_reference" and
    "speedup_vs_sdpa" (sdpa's median time / this variant's, when sdpa is the reference)."""
    rows = []
    for variant in task_record["variants"]:
        speedup = variant["speedup_vs_reference"] if task_record["reference"] == "sdpa" else None
        rows.append({
            "task": task_record["task"],
            "variant": variant["variant"],
            "provider": "ours" if variant["variant"] == "triton" else variant["variant"],
            "available": variant.get("median_ms") is not None,
            "agrees_with_reference": variant["agrees_with_reference"],
            "speedup_vs_sdpa": speedup,
        })
    return rows


def _switch(model, variant: str) -> str | None:
    """Switch the model's attention in place; the reason when this variant cannot run here."""
    if variant == "triton" and not triton_runs_on(model.device):
        return ("our kernel needs CUDA, or Triton's interpreter on the CPU (TRITON_INTERPRET=1 set before "
                "triton is imported)")
    if variant == "triton" and not getattr(type(model), "_can_set_attn_implementation", lambda: True)():
        import transformers

        return (f"{type(model).__name__} does not call attention through AttentionInterface in transformers "
                f"{transformers.__version__}")
    try:
        model.set_attn_implementation(variant)
    except (ValueError, ImportError) as error:
        return f"{type(model).__name__} cannot use attn_implementation={variant!r}: {str(error).splitlines()[0]}"
    return None


def _timed(variant: str, device: torch.device) -> bool:
    return not (variant == "triton" and device.type == "cpu")


def run_task(task: Task, model, tokenizer, examples: list, settings: RunSettings, stopwatch: Stopwatch,
             model_description: str) -> TaskResult:
    import kernels.hf  # noqa: F401  (registers attn_implementation="triton")

    original = model.config._attn_implementation
    tokenizer.padding_side = task.padding_side
    predict = task.predictor(model, tokenizer, settings)
    results, unavailable = [], {}
    try:
        for variant in VARIANTS:
            reason = _switch(model, variant)
            if reason:
                unavailable[variant] = reason
                continue
            with record_backends() as ran:
                predictions = predict(examples)
            timed = _timed(variant, settings.device)
            timing = stopwatch.measure(lambda: predict(examples)) if timed else None
            results.append(VariantResult(variant, predictions, ran.count("triton"), timing,
                                         None if timed else INTERPRETER_NOTE))
        reference = "sdpa" if "sdpa" not in unavailable else "eager"
        expected = next(r for r in results if r.variant == reference).predictions
        for result in results:
            _switch(model, result.variant)
            result.logits = task.logits(model, tokenizer, examples, expected, settings)
    finally:
        model.set_attn_implementation(original)
    reference_logits = next(r for r in results if r.variant == reference).logits
    for result in results:
        result.mismatches = task.mismatches(expected, result.predictions, settings)
        result.max_logit_difference = float((result.logits - reference_logits).abs().max())
    return TaskResult(task, model_description, settings, examples, reference, results, unavailable)
