"""What the launchers derive from a mask (the key-padding span, the block map's tile lists), computed
once per mask and remembered on the mask's base tensor.

A model hands the same mask to every layer (Hugging Face passes one mask object down the stack), and
each derived value costs a few small device ops a call: remembered, the layers after the first reuse
it. An entry is keyed by the view's layout and the base's version counter (which any in-place write
bumps), so a mask rewritten in place is summarised again. Never while a CUDA graph is being captured
(a graph replays with the mask rewritten in place, so the ops must be in the graph) nor for an
inference tensor (it has no version counter): then the value is computed every call.
"""
from collections.abc import Callable, Hashable

import torch


def remembered(mask: torch.Tensor, name: str, key: Hashable, compute: Callable[[], object]):
    """compute(), or the value it returned for this view of the same unchanged base under `name` and `key`.
    One entry per name: a new view or key replaces the last one."""
    strides = tuple(0 if size == 1 else stride for size, stride in zip(mask.shape, mask.stride()))  # size 1: any
    return remembered_view(mask, mask.storage_offset(), tuple(mask.shape), strides, name, key, compute)


def remembered_view(tensor: torch.Tensor, storage_offset: int, shape: tuple, strides: tuple, name: str,
                    key: Hashable, compute: Callable[[], object]):
    """`remembered` for the view of `tensor`'s base that `storage_offset`, `shape` and `strides` (those of
    size-1 dims given as 0) describe, without making that view (a slice costs more than the lookup)."""
    base = tensor if tensor._base is None else tensor._base
    if base.is_inference() or (tensor.is_cuda and torch.cuda.is_current_stream_capturing()):
        return compute()
    view = (base._version, storage_offset, shape, strides, key)
    attribute = f"_kernels_{name}"
    entry = getattr(base, attribute, None)
    if entry is not None and entry[0] == view:
        return entry[1]
    value = compute()
    setattr(base, attribute, (view, value))
    return value
