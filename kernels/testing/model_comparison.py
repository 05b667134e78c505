"""compare_models: where, layer by layer, two models' outputs part ways on the same inputs."""
import contextlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from kernels.testing.dropout import dropout_disabled
from kernels.testing.errors import ErrorStats, measure_error
from kernels.testing.outputs import named_tensors

# (qualified module name, index of the module's call in the forward, path inside the module's output)
OutputKey = tuple[str, int, str]


def output_label(module: str, call: int, output: str) -> str:
    """How a report names an output: encoder.attention[0], (model)['logits'], block (call 2), ..."""
    name = module or "(model)"
    return (name if call == 0 else f"{name} (call {call + 1})") + output


@dataclass(frozen=True)
class LayerDifference:
    """One tensor of one module call's output: model_b's value compared with model_a's."""

    module: str  # qualified name, the same in both models; "" is the model itself
    call: int  # 0 for the module's first call in the forward, 1 for its second, ...
    output: str  # where in the module's output: "" for a bare tensor, "[0]", "['logits']", ...
    module_type: str  # the class name, or "package.A -> package.B" where the models differ
    error: ErrorStats | None  # of model_b's tensor against model_a's; None when the shapes differ
    problem: str | None = None

    @property
    def label(self) -> str:
        return output_label(self.module, self.call, self.output)

    def diverges(self, threshold: float) -> bool:
        return self.error is None or not self.error.max_abs_error <= threshold


@dataclass(frozen=True, repr=False)
class ModelComparison:
    layers: tuple[LayerDifference, ...]  # in model_a's execution order: a module when its forward returns
    only_in_a: tuple[str, ...]  # labels of outputs that only model_a produced
    only_in_b: tuple[str, ...]

    def first_divergence(self, threshold: float) -> LayerDifference | None:
        """The first output, in execution order, whose max |b - a| exceeds `threshold` (or whose
        shape differs); None when every compared output stays within it."""
        return next((layer for layer in self.layers if layer.diverges(threshold)), None)

    def __str__(self) -> str:
        headers = ("module output", "type", "max |b-a|", "mean |b-a|", "max rel", "worst element: a -> b")
        rows = [_row(layer) for layer in self.layers]
        widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
        lines = [f"compare_models: {len(self.layers)} outputs compared (b against a), in model_a's execution order"]
        for row in (headers, *rows):
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        for model, labels in (("model_a", self.only_in_a), ("model_b", self.only_in_b)):
            if labels:
                lines.append(f"only in {model}: {', '.join(labels)}")
        return "\n".join(lines)

    __repr__ = __str__


def _row(layer: LayerDifference) -> tuple[str, ...]:
    error = layer.error
    if error is None:
        return (layer.label, layer.module_type, "", "", "", layer.problem)
    worst = "-" if error.max_abs_error == 0 else (
        f"{list(error.worst_index)}: {error.worst_expected:.6g} -> {error.worst_actual:.6g}"
    )
    numbers = (error.max_abs_error, error.mean_abs_error, error.max_rel_error)
    return (layer.label, layer.module_type, *(f"{number:.2e}" for number in numbers), worst)


def compare_models(model_a: nn.Module, model_b: nn.Module, inputs: object) -> ModelComparison:
    """Run both models on the same inputs and compare the output of every submodule call.

    Submodules are matched by qualified name (and by call count, for a module that runs more than
    once), so model_b can be model_a with modules swapped: reference.MultiHeadAttention for
    kernels.MultiHeadAttention with the same weights, or a Hugging Face model loaded with another
    attn_implementation. `inputs` is a tensor, a tuple of positional arguments or a dict of keyword
    arguments, passed as is to both models. Runs under torch.no_grad(), in each model's own
    train/eval mode, with dropout turned off (and restored afterwards). model_a's outputs are kept
    until model_b produces the matching one: memory grows like one forward's activations.
    """
    args, kwargs = _call_arguments(inputs)
    kept: dict[OutputKey, tuple[type, torch.Tensor]] = {}
    order: list[OutputKey] = []
    compared: dict[OutputKey, LayerDifference] = {}
    only_in_b: list[OutputKey] = []

    def keep(key: OutputKey, module: nn.Module, tensor: torch.Tensor) -> None:
        order.append(key)
        kept[key] = (type(module), tensor.detach().clone())  # a later in-place op must not change it

    def compare(key: OutputKey, module: nn.Module, tensor: torch.Tensor) -> None:
        if key not in kept:
            only_in_b.append(key)
            return
        type_a, tensor_a = kept.pop(key)
        compared[key] = _difference(key, _type_label(type_a, type(module)), tensor_a, tensor)

    with torch.no_grad(), dropout_disabled(model_a, model_b):
        with _each_output_tensor(model_a, keep):
            model_a(*args, **kwargs)
        with _each_output_tensor(model_b, compare):
            model_b(*args, **kwargs)
    return ModelComparison(
        layers=tuple(compared[key] for key in order if key in compared),
        only_in_a=tuple(output_label(*key) for key in order if key not in compared),
        only_in_b=tuple(output_label(*key) for key in only_in_b),
    )


def _call_arguments(inputs: object) -> tuple[tuple, dict]:
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, tuple):
        return inputs, {}
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    raise TypeError(
        f"inputs must be a tensor, a tuple of positional arguments or a dict of keyword arguments, "
        f"got {type(inputs).__name__}"
    )


@contextlib.contextmanager
def _each_output_tensor(
    model: nn.Module, on_tensor: Callable[[OutputKey, nn.Module, torch.Tensor], None]
) -> Iterator[None]:
    """Inside the block, every tensor output of every module call of `model` goes to `on_tensor`."""
    calls: Counter[str] = Counter()

    def hook_for(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            call = calls[name]
            calls[name] += 1
            for path, tensor in named_tensors(output):
                on_tensor((name, call, path), module, tensor)

        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in model.named_modules()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _difference(
    key: OutputKey, module_type: str, tensor_a: torch.Tensor, tensor_b: torch.Tensor
) -> LayerDifference:
    if tensor_a.shape != tensor_b.shape:
        problem = f"shape {list(tensor_b.shape)} in model_b, {list(tensor_a.shape)} in model_a"
        return LayerDifference(*key, module_type, None, problem)
    return LayerDifference(*key, module_type, measure_error(tensor_b, tensor_a))


def _type_label(type_a: type, type_b: type) -> str:
    if type_a is type_b:
        return type_a.__qualname__
    return " -> ".join(f"{t.__module__.split('.')[0]}.{t.__qualname__}" for t in (type_a, type_b))
