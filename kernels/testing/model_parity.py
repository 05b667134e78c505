"""The `--model` check (`python -m kernels.testing --model PATH_OR_NAME`, also `python -m benchmarks parity
--model`): a Hugging Face model run with transformers' `sdpa` attention against the very same weights run
with ours (attn_implementation="triton"), compared layer by layer with kernels.testing.compare_models.

Offline only: a local model directory, or a hub id whose files are already in the local cache.
Inputs are two sentences of different lengths, right-padded so that no query row is fully masked
(sdpa's output there is undefined): from the model's own tokenizer when it has one, else random ids.
"""
import copy
from dataclasses import dataclass

import torch

from kernels.testing.model_comparison import ModelComparison, compare_models

SENTENCES = (
    "the fused kernel reads every key once and keeps the scores on chip",
    "padding is never attended",
)


class ModelNotAvailable(Exception):
    """The model cannot be loaded without the network."""


@dataclass(frozen=True)
class ModelParity:
    model: str
    comparison: ModelComparison
    threshold: float

    @property
    def first_divergence(self):
        return self.comparison.first_divergence(self.threshold)

    @property
    def passed(self) -> bool:
        return self.first_divergence is None

    def as_record(self) -> dict:
        divergence = self.first_divergence
        return {
            "model": self.model,
            "threshold": self.threshold,
            "passed": self.passed,
            "first_divergence": None if divergence is None else divergence.label,
            "layers": [
                {
                    "output": layer.label,
                    "type": layer.module_type,
                    "max_abs_error": None if layer.error is None else layer.error.max_abs_error,
                    "mean_abs_error": None if layer.error is None else layer.error.mean_abs_error,
                    "max_rel_error": None if layer.error is None else layer.error.max_rel_error,
                    "problem": layer.problem,
                }
                for layer in self.comparison.layers
            ],
        }


def load_stock_model(path_or_name: str, device: torch.device) -> torch.nn.Module:
    import transformers

    try:
        model = transformers.AutoModel.from_pretrained(path_or_name, local_files_only=True, attn_implementation="sdpa")
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0]
        raise ModelNotAvailable(
            f"cannot load {path_or_name!r} offline: it is neither a model directory nor a model in the local "
            f"Hugging Face cache ({type(error).__name__}: {reason})"
        ) from error
    return model.to(device).eval()


def sample_inputs(path_or_name: str, model: torch.nn.Module, device: torch.device) -> dict:
    config = model.config
    inputs = _tokenized(path_or_name) or _random_ids(config.vocab_size)
    if config.is_encoder_decoder:
        inputs["decoder_input_ids"] = inputs["input_ids"][:, :4]
    return {name: tensor.to(device) for name, tensor in inputs.items()}


def _tokenized(path_or_name: str) -> dict | None:
    import transformers

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path_or_name, local_files_only=True)
    except (OSError, ValueError, TypeError):
        return None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    batch = tokenizer(list(SENTENCES), padding=True, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def _random_ids(vocab_size: int) -> dict:
    input_ids = torch.randint(3, vocab_size, (2, 16))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 10:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def check_model(path_or_name: str, device: torch.device, threshold: float) -> ModelParity:
    """Load the model once, copy it, switch the copy to our attention and compare every layer."""
    import kernels.hf  # noqa: F401  (registers attn_implementation="triton")

    stock = load_stock_model(path_or_name, device)
    ours = copy.deepcopy(stock)
    ours.set_attn_implementation("triton")
    inputs = sample_inputs(path_or_name, stock, device)
    with kernels.record_backends() as ran:
        comparison = compare_models(stock, ours, inputs)
    if "triton" not in ran:
        raise ModelNotAvailable(
            f"{path_or_name!r} did not route its attention through attn_implementation='triton' (its "
            "architecture does not use transformers' AttentionInterface in this transformers version)"
        )
    return ModelParity(path_or_name, comparison, threshold)
