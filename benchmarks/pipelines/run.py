"""`python -m benchmarks pipelines`: the course's four tasks (sentiment text-classification,
text-generation, summarization, extractive question-answering), and feature extraction (all-MiniLM-L6-v2's
real weights when its package is installed), run with stock attention (`eager`, `sdpa`) and with ours
(`triton`) on the same model objects, switched with `model.set_attn_implementation`.

Prints the outputs side by side, the max logit difference, latency and throughput per variant, and
writes `pipelines.json`. Exit code 0 when every variant predicts what the reference (sdpa) predicts,
1 when any prediction differs or our kernel did not run, 2 when a model cannot be loaded offline.
"""
import argparse

import torch
from rich.markup import escape

from benchmarks.harness.command_run import INTERRUPTED, Command
from benchmarks.harness.environment import DTYPES, dtype_name, run_metadata
from benchmarks.harness.results_file import write_results
from benchmarks.harness.tables import header, make_console
from benchmarks.harness.timing import Stopwatch
from benchmarks.pipelines.compare import INTERPRETER_NOTE, goal_rows, run_task
from benchmarks.pipelines.examples import task_examples
from benchmarks.pipelines.loading import parse_model_choices, task_model
from benchmarks.pipelines.report import outputs_table, performance_table, problem_lines
from benchmarks.pipelines.sizes import SIZES
from benchmarks.pipelines.tasks import TASKS, RunSettings
from kernels.shared.backends import triton_runs_on
from kernels.testing.model_parity import ModelNotAvailable


def _model_choice(value: str) -> str:
    try:
        parse_model_choices([value])
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return value


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", action="append", choices=list(TASKS), help="run only this task (repeatable)")
    parser.add_argument("--size", choices=list(SIZES),
                        help="random models: tiny (CPU, tests) or base (BERT-base / GPT-2 small / BART-base sized); "
                             "default: base on CUDA, tiny on the CPU")
    parser.add_argument("--model", action="append", type=_model_choice, metavar="TASK=PATH_OR_ID",
                        help="a model directory or a hub id in the local cache for TASK instead of a random model "
                             "(repeatable; offline only)")
    parser.add_argument("--dtype", choices=list(DTYPES), help="default: fp16 on CUDA, fp32 on the CPU")


def _settings_text(device: torch.device, size_name: str, dtype: torch.dtype, stopwatch: Stopwatch,
                   quick: bool) -> dict[str, str]:
    settings = {"size": size_name, "dtype": dtype_name(dtype), "timing": stopwatch.describe(), "quick": str(quick),
                "variants": "eager, sdpa (reference), triton (ours, kernels.hf), switched on the same model objects"}
    if device.type == "cpu":
        settings["note"] = INTERPRETER_NOTE if triton_runs_on(device) else (
            "no CUDA and no TRITON_INTERPRET=1: our kernel cannot run here, only eager and sdpa are compared")
    return settings


def run(args: argparse.Namespace) -> int:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    console = make_console()
    device = args.device
    size_name = args.size or ("base" if device.type == "cuda" else "tiny")
    size = SIZES[size_name].quick() if args.quick else SIZES[size_name]
    dtype = DTYPES[args.dtype or ("fp16" if device.type == "cuda" else "fp32")]
    stopwatch = Stopwatch(device, args.quick)
    metadata = run_metadata(device)
    settings = _settings_text(device, size_name, dtype, stopwatch, args.quick)
    console.print(header("pipelines", metadata, settings))

    sources = parse_model_choices(args.model)
    try:
        models = {task: task_model(task, size, sources.get(task), device, dtype) for task in (args.task or TASKS)}
    except ModelNotAvailable as error:
        console.print(f"[bold red]{escape(str(error))}")
        return 2
    results, interrupted = [], False
    try:  # Ctrl-C (or `timeout --signal=INT`) keeps the tasks finished so far
        for task_name, (model, tokenizer, description) in models.items():
            max_length = min(size.max_positions, tokenizer.model_max_length)
            run_settings = RunSettings(device, dtype, size.new_tokens, max_length)
            with console.status(f"{task_name}: running every variant"):
                result = run_task(TASKS[task_name], model, tokenizer, task_examples(task_name, size), run_settings,
                                  stopwatch, description)
            console.print(outputs_table(result))
            console.print(performance_table(result))
            results.append(result)
    except KeyboardInterrupt:
        interrupted = True

    tasks = [result.as_record() for result in results]
    payload = {"benchmark": "pipelines", "interrupted": interrupted, "environment": metadata, "settings": settings,
               "tasks": tasks, "rows": [row for task in tasks for row in goal_rows(task)]}
    path = write_results(args.out, "pipelines", payload)
    problems = [line for result in results for line in problem_lines(result)]
    for line in problems:
        console.print(f"[bold red]{escape(line)}")
    agreeing = sum(result.agrees for result in results)
    console.print(f"{agreeing} of {len(results)} tasks: every variant predicts what the reference does; wrote {path}")
    if interrupted:
        console.print(f"[bold red]interrupted after {len(results)} of {len(models)} tasks")
        return INTERRUPTED
    return 1 if problems else 0


COMMAND = Command(
    "pipelines", "four Hugging Face tasks with eager, sdpa and our attention on the same models: outputs, speed",
    run, add_options,
)
