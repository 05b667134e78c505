"""kernels.MultiheadAttention against torch.nn.MultiheadAttention holding the same weights.

The pass rule of docs/design.md: ours (float32) against torch's module in float64, allowed
2x the error of torch's module in float32.
"""
import copy
import math

import pytest
import torch
from torch import nn

import kernels
from kernels.nn.torch_multihead_attention import MultiheadAttention
from kernels.testing import assert_parity
from support.devices import DEVICE

E, H, B, L, S = 36, 3, 2, 5, 7  # head_dim 12


def paired(embed_dim=E, num_heads=H, **options):
    """torch's module and ours with the same weights, in eval mode."""
    theirs = nn.MultiheadAttention(embed_dim, num_heads, device=DEVICE, **options).eval()
    ours = MultiheadAttention(embed_dim, num_heads, device=DEVICE, **options).eval()
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def inputs(layout="seq_first", kdim=E, vdim=E):
    """query, key, value for cross-attention (L queries, S keys) in torch's layouts."""
    query, key, value = (torch.randn(B, n, dim, device=DEVICE) for n, dim in ((L, E), (S, kdim), (S, vdim)))
    if layout == "seq_first":
        return query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    if layout == "unbatched":
        return query[0], key[0], value[0]
    return query, key, value


def as_float64(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.double()
    return value


def assert_matches_torch(theirs, ours, args, **kwargs):
    """Ours ran the Triton kernel and passes the rule on the output and, if any, the weights."""
    with torch.no_grad():
        with kernels.record_backends() as ran:
            out, weights = ours(*args, **kwargs)
        exact = copy.deepcopy(theirs).double()(*map(as_float64, args), **{k: as_float64(v) for k, v in kwargs.items()})
        baseline = theirs(*args, **kwargs)
    assert "triton" in ran
    assert_parity(out, exact[0], baseline[0])
    assert (weights is None) == (baseline[1] is None)
    if weights is not None:
        assert_parity(weights, exact[1], baseline[1])
    return out, weights


def visible_first_key(masked_out: torch.Tensor) -> torch.Tensor:
    """Unmask key 0 in every row (torch-convention mask), so no row is fully masked."""
    masked_out = masked_out.clone()
    masked_out[..., 0] = False if masked_out.dtype == torch.bool else 0.0
    return masked_out


def random_mask(shape, kind):
    masked_out = torch.rand(shape, device=DEVICE) < 0.3
    if kind == "bool":
        return visible_first_key(masked_out)
    return visible_first_key(torch.randn(shape, device=DEVICE).masked_fill(masked_out, float("-inf")))


@pytest.mark.parametrize("average_attn_weights", [True, False])
@pytest.mark.parametrize("layout", ["seq_first", "batch_first", "unbatched"])
def test_layouts_and_weights_match_torch(layout, average_attn_weights):
    theirs, ours = paired(batch_first=layout == "batch_first")
    padding = random_mask((S,) if layout == "unbatched" else (B, S), "bool")
    out, weights = assert_matches_torch(theirs, ours, inputs(layout), key_padding_mask=padding,
                                        average_attn_weights=average_attn_weights)
    expected_weights = (L, S) if average_attn_weights else (H, L, S)
    assert weights.shape == expected_weights if layout == "unbatched" else (B, *expected_weights)


@pytest.mark.parametrize("options", [
    dict(kdim=20, vdim=13), dict(bias=False), dict(add_bias_kv=True), dict(add_zero_attn=True),
    dict(add_bias_kv=True, add_zero_attn=True, kdim=20),
], ids=str)
def test_projection_options_match_torch(options):
    theirs, ours = paired(**options)
    padding = random_mask((B, S), "bool")
    args = inputs(kdim=options.get("kdim", E), vdim=options.get("vdim", E))
    assert_matches_torch(theirs, ours, args, key_padding_mask=padding)


MASKS = {
    "padding_bool": lambda: dict(key_padding_mask=random_mask((B, S), "bool")),
    "padding_float": lambda: dict(key_padding_mask=random_mask((B, S), "float")),
    "attn_2d_bool": lambda: dict(attn_mask=random_mask((L, S), "bool")),
    "attn_2d_float": lambda: dict(attn_mask=random_mask((L, S), "float")),
    "attn_3d_bool": lambda: dict(attn_mask=random_mask((B * H, L, S), "bool")),
    "attn_3d_float": lambda: dict(attn_mask=random_mask((B * H, L, S), "float")),
    "padding_bool_and_attn_2d_bool": lambda: dict(
        key_padding_mask=random_mask((B, S), "bool"), attn_mask=random_mask((L, S), "bool")),
    "padding_float_and_attn_3d_float": lambda: dict(
        key_padding_mask=random_mask((B, S), "float"), attn_mask=random_mask((B * H, L, S), "float")),
}


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("mask_name", list(MASKS))
def test_masks_match_torch(mask_name, need_weights):
    theirs, ours = paired()
    assert_matches_torch(theirs, ours, inputs(), need_weights=need_weights, **MASKS[mask_name]())


def self_attention_inputs(n=9):
    x = torch.randn(n, B, E, device=DEVICE)
    return x, x, x


def causal_masked_out(n):
    return torch.ones(n, n, dtype=torch.bool, device=DEVICE).triu(1)


@pytest.mark.parametrize("need_weights", [True, False])
def test_is_causal_with_its_mask_matches_torch(need_weights):
    theirs, ours = paired()
    assert_matches_torch(theirs, ours, self_attention_inputs(), attn_mask=causal_masked_out(9), is_causal=True,
                         need_weights=need_weights)


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("with_padding", [False, True])
def test_is_causal_alone_applies_the_causal_mask(with_padding, need_weights):
    """torch requires attn_mask with is_causal; ours applies the causal mask itself (checked against
    torch with that mask in the test above)."""
    _, ours = paired()
    args = self_attention_inputs()
    padding = dict(key_padding_mask=random_mask((B, 9), "bool")) if with_padding else {}
    with torch.no_grad():
        with kernels.record_backends() as ran:
            out, weights = ours(*args, is_causal=True, need_weights=need_weights, **padding)
        expected, expected_weights = ours(*args, attn_mask=causal_masked_out(9), need_weights=need_weights, **padding)
    assert "triton" in ran
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    if need_weights:
        torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=1e-6)


def test_is_causal_hint_is_ignored_when_a_mask_is_given():
    _, ours = paired()
    args = self_attention_inputs()
    not_causal = random_mask((9, 9), "bool")
    with torch.no_grad():
        hinted, _ = ours(*args, attn_mask=not_causal, is_causal=True, need_weights=False)
        plain, _ = ours(*args, attn_mask=not_causal, need_weights=False)
    torch.testing.assert_close(hinted, plain, rtol=0, atol=0)


@pytest.mark.parametrize("mask_name", ["padding", "attn_2d"])
def test_fully_masked_rows_give_zero_attention_where_torch_gives_nan(mask_name):
    theirs, ours = paired()
    masked_out = torch.zeros(L, S, dtype=torch.bool, device=DEVICE)
    masked_out[2] = True  # query 2 sees no key
    padding = torch.zeros(B, S, dtype=torch.bool, device=DEVICE)
    padding[1] = True  # batch element 1 sees no key
    masks = dict(key_padding_mask=padding) if mask_name == "padding" else dict(attn_mask=masked_out)
    dead = (slice(None), 1) if mask_name == "padding" else (2, slice(None))  # (L, B) indices of the dead rows
    args = inputs()
    with torch.no_grad():
        out, weights = ours(*args, **masks)
        their_out, their_weights = theirs(*args, **masks)
    assert their_out[dead].isnan().all()  # torch's documented behaviour; ours differs on purpose
    torch.testing.assert_close(out[dead], ours.out_proj.bias.expand_as(out[dead]))  # attention 0, then out_proj
    weights_dead = weights[1] if mask_name == "padding" else weights[:, 2]
    assert (weights_dead == 0).all()
    alive = ~their_out.isnan().any(-1)
    torch.testing.assert_close(out[alive], their_out[alive], atol=1e-5, rtol=1e-5)


def one_input(layout):
    """The tensor a self-attention call passes as query, key and value, in `layout`."""
    x = torch.randn(L, B, E, device=DEVICE)
    return {"seq_first": x, "batch_first": x.transpose(0, 1).contiguous(), "unbatched": x[:, 0]}[layout]


@pytest.mark.parametrize("options", [dict(), dict(bias=False), dict(add_bias_kv=True, add_zero_attn=True)], ids=str)
@pytest.mark.parametrize("layout", ["seq_first", "batch_first", "unbatched"])
def test_self_attention_matches_torch(layout, options):
    """One tensor as query, key and value: projected in one matmul over the packed weights (without
    extra keys), in its own layout."""
    theirs, ours = paired(batch_first=layout == "batch_first", **options)
    x = one_input(layout)
    padding = random_mask((L,) if layout == "unbatched" else (B, L), "bool")
    for need_weights in (False, True):
        assert_matches_torch(theirs, ours, (x, x, x), key_padding_mask=padding, need_weights=need_weights)


@pytest.mark.parametrize("layout", ["seq_first", "batch_first"])
def test_self_attention_projects_with_the_packed_weight_and_out_proj_weight_as_torch(layout, monkeypatch):
    """The matmuls of torch's module: one over in_proj_weight (3E, E) for q, k and v together, one over
    out_proj.weight applied with F.linear, so a hook on out_proj runs in neither module."""
    theirs, ours = paired(batch_first=layout == "batch_first")
    x = one_input(layout)
    projected = []
    linear = nn.functional.linear

    def spy(input, weight, bias=None):
        projected.append(tuple(weight.shape))
        return linear(input, weight, bias)
    monkeypatch.setattr(nn.functional, "linear", spy)
    out_proj_calls = []
    for module in (theirs, ours):
        module.out_proj.register_forward_hook(lambda *args: out_proj_calls.append(args))
    with torch.no_grad():
        ours(x, x, x, need_weights=False)
        assert projected == [(3 * E, E), (E, E)]
        theirs(x, x, x, need_weights=False)
    assert out_proj_calls == []


def merged_heads_attention(ours, value, weights):
    """out_proj(weights @ v) computed by hand from per-head weights (B, H, L, S), seq-first value."""
    v_weight, v_bias = ours.in_proj_weight.chunk(3)[2], ours.in_proj_bias.chunk(3)[2]
    v = nn.functional.linear(value.transpose(0, 1), v_weight, v_bias).unflatten(-1, (H, E // H)).transpose(1, 2)
    return ours.out_proj((weights @ v).transpose(1, 2).flatten(2)).transpose(0, 1)


def test_dropout_in_training_drops_weights_at_its_rate_and_returns_the_kernels_mask():
    _, ours = paired(dropout=0.4)
    ours.train()
    query = torch.randn(40, B, E, device=DEVICE)
    memory = torch.randn(48, B, E, device=DEVICE)
    with torch.no_grad():
        with kernels.record_backends() as ran:
            out, weights = ours(query, memory, memory, average_attn_weights=False)
    assert "triton" in ran
    rate = (weights == 0).float().mean().item()
    n = weights.numel()
    assert abs(rate - 0.4) < 5 * math.sqrt(0.4 * 0.6 / n)
    torch.testing.assert_close(out, merged_heads_attention(ours, memory, weights), atol=1e-5, rtol=1e-5)
    ours.eval()
    with torch.no_grad():
        first, _ = ours(query, memory, memory)
        second, _ = ours(query, memory, memory)
    assert torch.equal(first, second)  # no dropout in eval mode


@pytest.mark.parametrize("need_weights, self_attention", [(True, False), (False, False), (False, True)])
def test_gradients_match_torch(need_weights, self_attention):
    theirs, ours = paired(batch_first=True, add_bias_kv=not self_attention)
    exact_module = copy.deepcopy(theirs).double()
    query, key, value = inputs("batch_first")
    padding = random_mask((B, L if self_attention else S), "bool")
    results = []
    for module, dtype in ((ours, torch.float32), (exact_module, torch.float64), (theirs, torch.float32)):
        module.train()
        leaf = query.detach().to(dtype).requires_grad_()
        args = (leaf, leaf, leaf) if self_attention else (leaf, key.to(dtype), value.to(dtype))
        out, weights = module(*args, key_padding_mask=padding, need_weights=need_weights)
        loss = (out * torch.linspace(-1, 1, E, device=DEVICE, dtype=dtype)).sum()
        loss.backward()
        results.append([leaf.grad] + [p.grad for p in module.parameters()])
    for actual, exact, baseline in zip(*results):
        assert actual is not None
        assert_parity(actual, exact, baseline)


@pytest.mark.parametrize("options", [dict(), dict(kdim=20, vdim=13, bias=False), dict(add_bias_kv=True)], ids=str)
def test_state_dicts_load_both_ways(options):
    theirs, ours = paired(**options)
    assert list(theirs.state_dict()) == list(ours.state_dict())
    assert type(ours.out_proj) is type(theirs.out_proj)
    fresh = nn.MultiheadAttention(E, H, device=DEVICE, **options)
    fresh.load_state_dict(ours.state_dict())
    for name, tensor in ours.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor)


def test_from_torch_keeps_weights_dtype_and_mode():
    theirs = nn.MultiheadAttention(E, H, dropout=0.1, add_zero_attn=True, device=DEVICE, dtype=torch.float64).train()
    ours = MultiheadAttention.from_torch(theirs)
    assert type(ours) is MultiheadAttention and ours.training and ours.dropout == 0.1 and ours.add_zero_attn
    assert all(torch.equal(a, b) for a, b in zip(theirs.state_dict().values(), ours.state_dict().values()))
    assert ours.in_proj_weight.dtype == torch.float64 and ours.in_proj_weight.device.type == DEVICE


BAD_CALLS = {
    "query_features": (lambda q, k, v: dict(query=q[..., :-1]), ValueError, "query must have 36 features"),
    "rank_mismatch": (lambda q, k, v: dict(query=q[0]), ValueError, "must all be 3-D"),
    "batch_mismatch": (lambda q, k, v: dict(key=k[:, :1], value=v[:, :1]), ValueError, "batch sizes"),
    "padding_shape": (lambda q, k, v: dict(key_padding_mask=torch.zeros(B, S + 1, dtype=torch.bool)), ValueError,
                      "key_padding_mask must have shape"),
    "padding_dtype": (lambda q, k, v: dict(key_padding_mask=torch.zeros(B, S, dtype=torch.int64)), TypeError,
                      "key_padding_mask must be bool"),
    "attn_mask_shape": (lambda q, k, v: dict(attn_mask=torch.zeros(B, L, S, dtype=torch.bool)), ValueError,
                        "attn_mask must have shape"),
    "nested": (lambda q, k, v: dict(query=torch.nested.nested_tensor([q[:, 0], q[:, 1]], layout=torch.jagged)),
               NotImplementedError, "NestedTensor"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_inputs_raise_errors_naming_the_argument(case):
    _, ours = paired()
    query, key, value = inputs()
    make_arguments, error, message = BAD_CALLS[case]
    arguments = dict(query=query, key=key, value=value)
    arguments.update({name: (x.to(DEVICE) if isinstance(x, torch.Tensor) else x)
                      for name, x in make_arguments(query, key, value).items()})
    with pytest.raises(error, match=message):
        ours(**arguments)


def test_fully_masked_rows_keep_gradients_finite():
    _, ours = paired()
    query, key, value = (x.detach().requires_grad_() for x in inputs())
    padding = torch.zeros(B, S, device=DEVICE)
    padding[1] = float("-inf")  # a float mask: every key of batch element 1 masked out
    out, weights = ours(query, key, value, key_padding_mask=padding)
    (out.sum() + weights.sum()).backward()
    for tensor in (query, key, value, ours.in_proj_weight):
        assert tensor.grad.isfinite().all()
