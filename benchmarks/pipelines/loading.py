"""The model of each task: a random one with a trained tokenizer (`--size`), or a local model directory or
a hub id already in the local Hugging Face cache (`--model TASK=PATH_OR_ID`). Feature extraction uses
all-MiniLM-L6-v2's real weights when its package is installed (minilm.py). Nothing touches the network:
`local_files_only=True`, so a hub id that is not cached is a clear `ModelNotAvailable`."""
import torch

from benchmarks.pipelines.minilm import MINILM_PACKAGE, minilm_directory
from benchmarks.pipelines.random_models import describe, random_model
from benchmarks.pipelines.sizes import ModelSize
from benchmarks.pipelines.tasks import TASKS
from kernels.testing.model_parity import ModelNotAvailable


def parse_model_choices(values: list[str] | None) -> dict[str, str]:
    """`["text-generation=./gpt2", ...]` -> {task: path or id}."""
    choices = {}
    for value in values or []:
        task, separator, source = value.partition("=")
        if not separator or task not in TASKS or not source:
            raise ValueError(f"--model expects TASK=PATH_OR_ID with TASK one of {', '.join(TASKS)}, got {value!r}")
        choices[task] = source
    return choices


def load_cached_model(task: str, path_or_id: str):
    """(model, tokenizer) from a directory or the local cache; ModelNotAvailable when it is not there."""
    import transformers

    auto_class = getattr(transformers, TASKS[task].auto_class)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path_or_id, local_files_only=True)
        model = auto_class.from_pretrained(path_or_id, local_files_only=True)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelNotAvailable(
            f"cannot load {path_or_id!r} for {task}: it is not a model directory and not in the local Hugging Face "
            f"cache, and nothing is downloaded (offline, as with HF_HUB_OFFLINE=1). {type(error).__name__}: {reason}"
        ) from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return model.eval(), tokenizer


def task_model(task: str, size: ModelSize, source: str | None, device: torch.device, dtype: torch.dtype):
    """(model on `device` in `dtype`, tokenizer, description)."""
    if source is None and task == "feature-extraction" and minilm_directory() is not None:
        model, tokenizer = load_cached_model(task, str(minilm_directory()))
        description = f"all-MiniLM-L6-v2, real weights (from the {MINILM_PACKAGE} package)"
    elif source is None:
        model, tokenizer = random_model(task, size)
        description = describe(task, size)
    else:
        model, tokenizer = load_cached_model(task, source)
        description = source
    return model.to(device=device, dtype=dtype), tokenizer, description
