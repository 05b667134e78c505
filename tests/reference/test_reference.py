"""reference/ is the definition of correct: check it against torch and against first principles."""
import math

import pytest
import torch
import torch.nn.functional as F

import reference


def double_qkv(batch, heads_q, heads_kv, n_q, n_k, head_dim):
    q = torch.randn(batch, heads_q, n_q, head_dim, dtype=torch.float64)
    k = torch.randn(batch, heads_kv, n_k, head_dim, dtype=torch.float64)
    v = torch.randn(batch, heads_kv, n_k, head_dim, dtype=torch.float64)
    return q, k, v


@pytest.mark.parametrize("mask_kind", [None, "bool", "additive", "causal"])
@pytest.mark.parametrize("shape", [(2, 4, 4, 9, 9, 16), (1, 6, 2, 5, 13, 8), (2, 2, 1, 13, 5, 24)])
def test_equals_torch_sdpa(shape, mask_kind):
    q, k, v = double_qkv(*shape)
    gqa = shape[1] != shape[2]
    mask = None
    if mask_kind == "bool":
        mask = torch.rand(shape[0], 1, shape[3], shape[4]) > 0.4
    elif mask_kind == "additive":
        mask = torch.randn(shape[3], shape[4], dtype=torch.float64)
    kwargs = dict(attn_mask=mask, is_causal=mask_kind == "causal", enable_gqa=gqa, scale=0.3)
    torch.testing.assert_close(reference.scaled_dot_product_attention(q, k, v, **kwargs),
                               F.scaled_dot_product_attention(q, k, v, **kwargs))


def test_fully_masked_rows_are_zero():
    q, k, v = double_qkv(1, 2, 2, 4, 6, 8)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[2] = False
    out = reference.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert (out[:, :, 2] == 0).all() and out[:, :, [0, 1, 3]].abs().sum() > 0
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_matches_the_softmax_formula_by_hand():
    q, k, v = double_qkv(1, 1, 1, 3, 4, 5)
    weights = torch.softmax(q[0, 0] @ k[0, 0].T / math.sqrt(5), dim=-1)
    torch.testing.assert_close(reference.scaled_dot_product_attention(q, k, v)[0, 0], weights @ v[0, 0])


def test_multi_head_attention_is_correct_math():
    torch.manual_seed(0)
    module = reference.MultiHeadAttention(d_model=24, num_heads=3).double()
    query, key = torch.randn(2, 5, 24, dtype=torch.float64), torch.randn(2, 7, 24, dtype=torch.float64)
    mask = torch.randint(0, 2, (2, 1, 1, 7))
    mask[..., 0] = 1

    def heads(x, linear):  # (B, N, d_model) -> (B, H, N, Dh)
        return linear(x).view(2, -1, 3, 8).transpose(1, 2)

    expected = F.scaled_dot_product_attention(
        heads(query, module.query_linear), heads(key, module.key_linear), heads(key, module.value_linear),
        attn_mask=mask.bool())
    expected = module.output_linear(expected.transpose(1, 2).reshape(2, 5, 24))
    torch.testing.assert_close(module(query, key, key, mask), expected)
    assert set(module.state_dict()) == {"query_linear.weight", "key_linear.weight", "value_linear.weight",
                                        "output_linear.weight", "output_linear.bias"}


@pytest.mark.parametrize("d_model", [16, 7])
def test_positional_encoder_table_is_the_sinusoid(d_model):
    encoder = reference.PositionalEncoder(d_model, max_seq_length=50)
    expected = torch.empty(50, d_model, dtype=torch.float64)
    for pos in range(50):
        for i in range(d_model):
            angle = pos / 10000 ** ((i - i % 2) / d_model)
            expected[pos, i] = math.sin(angle) if i % 2 == 0 else math.cos(angle)
    assert encoder.pe.shape == (1, 50, d_model)
    torch.testing.assert_close(encoder.pe[0].double(), expected, atol=2e-5, rtol=0)
    x = torch.randn(3, 20, d_model)
    torch.testing.assert_close(encoder(x), x + encoder.pe[:, :20])
    with pytest.raises(ValueError, match="exceeds max_seq_length"):
        encoder(torch.randn(1, 51, d_model))
