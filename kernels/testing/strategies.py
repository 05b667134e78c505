"""Hypothesis strategies for attention inputs, for property tests of any SDPA-like function:

    from hypothesis import given
    from kernels.testing import assert_attention_close
    from kernels.testing.strategies import attention_args

    @given(attention_args(device="cuda"))
    def test_my_attention(args):
        out = my_attention(args.query, args.key, args.value, **args.kwargs)
        assert_attention_close(out, args.query, args.key, args.value, **args.kwargs)

Needs hypothesis (the `test` extra); nothing else in `kernels` imports it.
"""
try:
    from hypothesis import strategies as st
except ImportError as missing:
    raise ImportError(
        "kernels.testing.strategies needs hypothesis: pip install 'triton-attention-kernels[test]'"
    ) from missing

import torch

from kernels.testing.attention_specs import (
    DTYPES,
    HEAD_DIMS,
    LAYOUTS,
    MASK_KINDS,
    MASK_SHAPES,
    MASK_TENSOR_KINDS,
    AttentionArgs,
    AttentionSpec,
)


@st.composite
def attention_specs(
    draw: st.DrawFn,
    *,
    dtypes: tuple[torch.dtype, ...] = DTYPES,
    head_dims: tuple[int, ...] = HEAD_DIMS,
    max_batch: int = 2,
    max_heads_kv: int = 3,
    max_group: int = 3,
    max_len: int = 70,
    mask_kinds: tuple[str, ...] = MASK_KINDS,
    mask_shapes: tuple[str, ...] = MASK_SHAPES,
    layouts: tuple[str, ...] = LAYOUTS,
) -> AttentionSpec:
    """Any valid combination: batch, GQA group (query heads a multiple of key/value heads), lengths
    Nq != Nk down to 1, head dims (the value's sometimes different), dtype, mask kind and broadcast
    shape, memory layout, and the seed of the values."""
    heads_kv = draw(st.integers(1, max_heads_kv))
    head_dim = draw(st.sampled_from(head_dims))
    mask = draw(st.sampled_from(mask_kinds))
    return AttentionSpec(
        batch=draw(st.integers(1, max_batch)),
        heads_q=heads_kv * draw(st.integers(1, max_group)),
        heads_kv=heads_kv,
        n_q=draw(st.integers(1, max_len)),
        n_k=draw(st.integers(1, max_len)),
        head_dim=head_dim,
        head_dim_v=draw(st.sampled_from(head_dims)) if draw(st.booleans()) else head_dim,
        dtype=draw(st.sampled_from(dtypes)),
        mask=mask,
        mask_shape=draw(st.sampled_from(mask_shapes)) if mask in MASK_TENSOR_KINDS else None,
        layout=draw(st.sampled_from(layouts)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def attention_args(device: torch.device | str = "cpu", **spec_options) -> st.SearchStrategy[AttentionArgs]:
    """The inputs of `attention_specs(**spec_options)`, built on `device`."""
    return attention_specs(**spec_options).map(lambda spec: spec.make(device))
