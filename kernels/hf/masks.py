"""The masks the "triton" attention uses inside Hugging Face models.

- `triton_mask`: what transformers calls (through `AttentionMaskInterface`) to build a model's
  attention mask: transformers' own boolean sdpa mask (True = attend), except that
  - it may drop the mask in favour of `is_causal` only where the queries and keys are aligned both
    ways: one query, or as many queries as keys. transformers' sdpa mask also drops it when a prefill
    writes into a longer, empty static cache; that relies on torch's top-left causal alignment and
    would make a mask-less call with more keys than queries mean two different things;
  - a bidirectional mask (encoders, cross-attention), which depends on the key alone, is built for one
    query and expanded over the queries as a stride-0 view: the kernel then reads O(B * Nk) mask bytes
    and skips the padded key tiles, where a materialised (B, 1, Nq, Nk) mask is read per tile;
  - a causal mask with padding over as many queries as keys (a padded prefill) is that key-padding
    view too, its base tensor flagged (`CAUSAL_KEY_PADDING`) so that the attention function runs it
    as causal + key padding in one kernel call (tiles above the diagonal and padded tiles skipped).
    `causal_key_padding` reads the flag; a flagged mask means "causal, and these keys are real".
- `with_position_bias`: an additive mask that carries a position bias (T5's) and a mask together.
"""
import functools
import inspect
import sys

import torch
from transformers import masking_utils
from transformers.masking_utils import sdpa_mask

_SDPA_MASK_SIGNATURE = inspect.signature(sdpa_mask)

# Models whose attention modules add the mask to their scores themselves, never calling the attention
# function: with a boolean mask of ours they would silently attend to every key. Each runs in the kernels
# only through its patch, which sets the attention implementation named here.
PATCHED_MODELS = {"bloom": ("triton_alibi", "kernels.hf.patch_alibi_attention(model)")}


def _query_length(arguments: dict) -> int:
    if "q_length" in arguments:
        return arguments["q_length"]
    return arguments["cache_position"].shape[0]  # transformers before q_length was an argument


def triton_mask(*args, **kwargs) -> torch.Tensor | None:
    """A boolean (batch, 1, q_length, kv_length) mask, True = attend, or None where none is needed.
    Takes whatever transformers' `sdpa_mask` takes, in the installed version of transformers."""
    call = _SDPA_MASK_SIGNATURE.bind(*args, **kwargs)
    call.apply_defaults()
    _refuse_unpatched(call.arguments.get("kwargs", {}).get("config"))
    q_length, kv_length = _query_length(call.arguments), call.arguments["kv_length"]
    aligned = q_length == 1 or q_length == kv_length
    call.arguments["allow_is_causal_skip"] = call.arguments["allow_is_causal_skip"] and aligned
    causal_prefill = _is_causal_prefill(call.arguments, q_length, kv_length)
    if causal_prefill:
        call.arguments["mask_function"] = masking_utils.bidirectional_mask_function  # the padding part only
        call.arguments["allow_is_bidirectional_skip"] = call.arguments["allow_is_causal_skip"]
    elif not _is_key_only(call.arguments):
        return sdpa_mask(*call.args, **call.kwargs)
    if "q_length" in call.arguments:
        call.arguments["q_length"] = 1
    else:
        call.arguments["cache_position"] = call.arguments["cache_position"][:1]
    mask = sdpa_mask(*call.args, **call.kwargs)  # (batch, 1, 1, kv_length) or None
    if mask is None:  # no padding: nothing (causal prefills then use is_causal)
        return None
    if causal_prefill:
        setattr(mask if mask._base is None else mask._base, CAUSAL_KEY_PADDING, True)
    return mask.expand(-1, -1, q_length, -1)


def _refuse_unpatched(config) -> None:
    """A model whose attention modules never call the attention function by name (transformers 5.x
    still builds their masks through this interface, and they would read our boolean mask as their
    own: every key attended, silently) is refused, naming its patch where one exists."""
    model_type = getattr(config, "model_type", None)
    if model_type in PATCHED_MODELS:
        if config._attn_implementation == PATCHED_MODELS[model_type][0]:
            return
        remedy = f"load the model with attn_implementation='eager' and call {PATCHED_MODELS[model_type][1]}"
    elif config is None or _calls_attention_functions(type(config)):
        return
    else:
        remedy = "load the model with attn_implementation='eager' or 'sdpa'"
    raise ValueError(
        f"attn_implementation={config._attn_implementation!r} cannot run {model_type}: its attention modules "
        f"compute the attention themselves and would add this boolean mask to their scores; {remedy}"
    )


@functools.lru_cache(maxsize=None)
def _calls_attention_functions(config_class: type) -> bool:
    """Whether the modeling module of a config class dispatches attention through transformers'
    AttentionInterface (it imports ALL_ATTENTION_FUNCTIONS); True when that module is not loaded (a
    model of unknown make: not refused)."""
    modeling = sys.modules.get(config_class.__module__.replace(".configuration_", ".modeling_"))
    return modeling is None or hasattr(modeling, "ALL_ATTENTION_FUNCTIONS")


CAUSAL_KEY_PADDING = "_kernels_hf_causal_key_padding"  # the flag on a causal-with-padding mask's base tensor


def causal_key_padding(mask: torch.Tensor | None) -> torch.Tensor | None:
    """The (batch, kv_length) key padding, True = real, of a mask `triton_mask` built for a causal prefill
    with padding (the whole mask then means: causal, over these keys); None for any other mask."""
    if mask is None or torch.compiler.is_compiling() or mask.dtype != torch.bool or mask.dim() != 4:
        return None  # under torch.compile `triton_mask` never flags a mask
    base = mask if mask._base is None else mask._base
    return mask[:, 0, 0, :] if getattr(base, CAUSAL_KEY_PADDING, False) else None


def _is_causal_prefill(arguments: dict, q_length: int, kv_length: int) -> bool:
    """transformers' plain causal mask (padding at most) over as many queries as keys from position 0,
    in eager mode (the flag is a Python attribute, which torch.compile does not trace)."""
    causal = getattr(masking_utils, "causal_mask_function", None)
    return (causal is not None and arguments["mask_function"] is causal and "q_length" in arguments
            and hasattr(masking_utils, "bidirectional_mask_function")
            and arguments.get("local_size") is None and not arguments.get("use_vmap", False)
            and q_length == kv_length > 1 and arguments.get("q_offset", 0) == 0 and arguments.get("kv_offset", 0) == 0
            and arguments.get("attention_mask") is not None and not torch.compiler.is_compiling())


def _is_key_only(arguments: dict) -> bool:
    """Whether the mask asked for depends on the key position alone: transformers' plain bidirectional
    mask, with padding at most (no local window, no mask function of the caller's)."""
    bidirectional = getattr(masking_utils, "bidirectional_mask_function", None)
    return (bidirectional is not None and arguments["mask_function"] is bidirectional
            and arguments.get("local_size") is None and not arguments.get("use_vmap", False))


def with_position_bias(position_bias: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """One additive mask: the bias where `mask` attends, the bias' dtype minimum where a boolean mask
    masks out (a tiny weight, as in transformers' eager and sdpa paths), plus a float mask as is."""
    if mask is None:
        return position_bias
    if mask.dtype == torch.bool:
        return torch.where(mask, position_bias, torch.finfo(position_bias.dtype).min)
    return position_bias + mask
