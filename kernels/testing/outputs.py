"""The tensors inside a module's output, each named by where it sits."""
from collections.abc import Mapping

import torch


def named_tensors(output: object, path: str = "") -> list[tuple[str, torch.Tensor]]:
    """(path, tensor) for every tensor in `output`: path "" for a bare tensor, "[0]" inside a tuple or
    list, "['logits']" inside a dict or a Hugging Face ModelOutput, nested as deep as they go. Other
    values (None, numbers, cache objects) hold nothing to compare and are skipped."""
    if isinstance(output, torch.Tensor):
        return [(path, output)]
    if isinstance(output, Mapping):
        items = [(f"[{name!r}]", value) for name, value in output.items()]
    elif isinstance(output, (tuple, list)):
        items = [(f"[{index}]", value) for index, value in enumerate(output)]
    else:
        return []
    return [pair for step, value in items for pair in named_tensors(value, path + step)]
