"""Hugging Face transformers integration: `import kernels.hf`, then load or build any model whose
attention goes through transformers' AttentionInterface with attn_implementation="triton".

Importing this module registers, under the one name "triton":
- the attention function (`AttentionInterface`): `triton_attention_forward`, over `kernels.attention`;
- the mask function (`AttentionMaskInterface`): `triton_mask`. transformers builds a model's padding
  and causal mask only for names registered there; for any other name it passes attention_mask=None,
  and padded tokens would silently be attended to.

    import kernels.hf
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="triton")
    model.set_attn_implementation("triton")  # or switch a loaded model

BLOOM computes its ALiBi attention in its own modules, which the name cannot reach:
`kernels.hf.patch_alibi_attention(model)` patches a loaded one (kernels/hf/alibi.py).
"""
try:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface
except ImportError as error:
    raise ImportError(
        "kernels.hf needs transformers with AttentionInterface and AttentionMaskInterface "
        "(verified: 4.57 and 5.x); install it with `pip install -e '.[hf]'`"
    ) from error

from kernels.hf.attention import triton_attention_forward
from kernels.hf.masks import triton_mask

ATTENTION_NAME = "triton"


def _registered(interface: type, name: str):
    return interface().get(name)  # a fresh instance holds only the library-wide mapping


def _ours(function, expected) -> bool:
    """The same function, or its twin from a reloaded copy of this package."""
    return function is expected or (
        getattr(function, "__module__", None) == expected.__module__
        and getattr(function, "__qualname__", None) == expected.__qualname__
    )


def register(name: str = ATTENTION_NAME) -> str:
    """Register the attention and mask functions under `name` (again: a no-op); returns the name.
    Refuses to replace something else registered under that name."""
    pairs = ((AttentionInterface, triton_attention_forward), (AttentionMaskInterface, triton_mask))
    for interface, function in pairs:
        existing = _registered(interface, name)
        if existing is not None and not _ours(existing, function):
            raise ValueError(
                f"{interface.__name__} already holds {existing!r} under {name!r}; "
                f"pass another name to kernels.hf.register()"
            )
    for interface, function in pairs:
        interface.register(name, function)
    return name


def is_registered(name: str = ATTENTION_NAME) -> bool:
    return _ours(_registered(AttentionInterface, name), triton_attention_forward) and _ours(
        _registered(AttentionMaskInterface, name), triton_mask
    )


register()

from kernels.hf.alibi import AlibiPatch, alibi_slopes, patch_alibi_attention  # noqa: E402 (uses register)

__all__ = ["ATTENTION_NAME", "register", "is_registered", "triton_attention_forward", "triton_mask",
           "patch_alibi_attention", "AlibiPatch", "alibi_slopes"]
