"""replace_attention: swap a model's attention modules for the fused ones, in place.

torch 2.13's nn.TransformerEncoderLayer has an inference fast path (eval mode, no grad, batch_first,
biases, even num_heads, ...) that calls torch._transformer_encoder_layer_fwd with
`self_attn.in_proj_weight` and never calls `self_attn`; it checks attributes, not the class. It is
skipped when a submodule has a forward hook, so kernels.MultiheadAttention carries a no-op pre-hook
on its out_proj (which its forward never calls).
nn.TransformerEncoder's own fast path (`use_nested_tensor`, taken with a src_key_padding_mask in
eval/no_grad) turns the input into a NestedTensor; it is switched off on every encoder whose layers
got swapped. On that path torch returns zeros at padded positions; after the swap they hold the
layer's output, as they do on torch's own slow path.
"""
from torch import nn

import reference
from kernels.nn.course_multi_head_attention import MultiHeadAttention
from kernels.nn.torch_multihead_attention import MultiheadAttention


def _course_module_to_fused(module: reference.MultiHeadAttention) -> MultiHeadAttention:
    weight = module.output_linear.weight
    with weight.device:
        fused = MultiHeadAttention(module.d_model, module.num_heads)
    fused = fused.to(weight.dtype)
    fused.load_state_dict(module.state_dict())
    return fused.train(module.training)


# Exact types only: a subclass may have changed forward, and swapping it would drop that change.
_FUSED_REPLACEMENTS = {
    nn.MultiheadAttention: MultiheadAttention.from_torch,
    reference.MultiHeadAttention: _course_module_to_fused,
}


def _fused_copy(module: nn.Module) -> nn.Module:
    fused = _FUSED_REPLACEMENTS[type(module)](module)
    for (_, old), (_, new) in zip(module.named_parameters(), fused.named_parameters()):
        new.requires_grad_(old.requires_grad)  # frozen weights stay frozen
    return fused


def replace_attention(model: nn.Module) -> list[str]:
    """Swap every torch.nn.MultiheadAttention for kernels.MultiheadAttention and every
    reference.MultiHeadAttention (the course's) for kernels.MultiHeadAttention, in place.

    Weights, requires_grad, device, dtype and training mode are kept; hooks registered on the old
    modules are not. A module shared by several parents is replaced by one shared fused module.
    Returns the qualified names swapped (empty when there was nothing to swap, e.g. a second call).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if type(model) in _FUSED_REPLACEMENTS:
        raise ValueError(
            f"model is itself a {type(model).__qualname__} and cannot be swapped in place: use "
            "kernels.MultiheadAttention.from_torch(model), or load its state_dict into kernels.MultiHeadAttention"
        )
    swapped, fused_by_id = [], {}
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) not in _FUSED_REPLACEMENTS:
                continue
            if id(child) not in fused_by_id:
                fused_by_id[id(child)] = _fused_copy(child)
            setattr(parent, child_name, fused_by_id[id(child)])
            swapped.append(f"{parent_name}.{child_name}" if parent_name else child_name)
    _disable_nested_tensor_fast_path(model)
    return swapped


def _disable_nested_tensor_fast_path(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.TransformerEncoder) and any(
            isinstance(sub, MultiheadAttention) for sub in module.modules()
        ):
            module.use_nested_tensor = False
