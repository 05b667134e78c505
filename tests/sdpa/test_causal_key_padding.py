"""kernels.causal_attention_with_key_padding: causal attention over the real keys of a padded batch, in
one Triton call that takes is_causal and the (B, 1, 1, Nk) key padding together (torch SDPA needs a
materialised mask for this). Checked against the reference with the equivalent explicit mask."""
import pytest
import torch

import kernels
from kernels.sdpa.triton.common import attended_key_range
from kernels.testing import assert_attention_close
from test_attention_backward import gradient_tolerance, reference_gradients
from test_attention_forward import make_qkv
from kernels.testing import assert_parity


def padding_of(lengths, n_keys, left, device):
    """(B, Nk) True = real key: `lengths[b]` real keys at the end (left padding) or the start."""
    positions = torch.arange(n_keys, device=device)
    lengths = torch.tensor(lengths, device=device)[:, None]
    return positions >= n_keys - lengths if left else positions < lengths


def explicit_mask(key_padding, n_queries):
    causal = torch.ones(n_queries, key_padding.size(1), dtype=torch.bool, device=key_padding.device).tril()
    return causal & key_padding[:, None, None, :]


def run_triton(q, k, v, key_padding, **kwargs):
    with kernels.record_backends() as ran:
        out = kernels.causal_attention_with_key_padding(q, k, v, key_padding, backend="triton", **kwargs)
    assert ran == ["triton"]
    return out


@pytest.mark.parametrize("left", [True, False], ids=["left-padded", "right-padded"])
@pytest.mark.parametrize("shape", [(3, 2, 2, 37, 37, 32), (2, 4, 2, 50, 50, 24), (2, 2, 1, 19, 45, 64)],
                         ids=lambda s: "x".join(map(str, s)))
def test_matches_the_explicit_mask(shape, left, device):
    batch, heads_q, heads_kv, n_q, n_k, head_dim = shape
    q, k, v = make_qkv(*shape, torch.float16, device)
    key_padding = padding_of([n_k, n_k // 2, 1][:batch], n_k, left, device)
    out = run_triton(q, k, v, key_padding, enable_gqa=heads_q != heads_kv)
    assert_attention_close(out, q, k, v, attn_mask=explicit_mask(key_padding, n_q), enable_gqa=heads_q != heads_kv)
    torch.testing.assert_close(  # the torch backend: the same function, a materialised mask
        kernels.causal_attention_with_key_padding(q, k, v, key_padding, enable_gqa=heads_q != heads_kv,
                                                  backend="torch").float(), out.float(), atol=2e-3, rtol=0)


def test_variants_match_the_explicit_mask(device):
    """Soft-capping, ALiBi and sinks at once (what Gemma 2, a patched BLOOM and gpt-oss pass on a padded
    prefill), in the one Triton call and on the torch backend."""
    q, k, v = make_qkv(2, 4, 2, 21, 21, 16, torch.float32, device)
    key_padding = padding_of([21, 8], 21, left=True, device=device)
    variants = dict(softcap=4.0, alibi_slopes=torch.rand(4, device=device), sinks=torch.randn(4, device=device))
    out = run_triton(q, k, v, key_padding, enable_gqa=True, **variants)
    assert_attention_close(out, q, k, v, attn_mask=explicit_mask(key_padding, 21), enable_gqa=True, **variants)
    torch.testing.assert_close(kernels.causal_attention_with_key_padding(q, k, v, key_padding, enable_gqa=True,
                                                                         backend="torch", **variants),
                               out, atol=1e-5, rtol=1e-5)


def test_rows_without_a_real_key_are_zero_and_the_kernel_gets_causal_plus_key_range(device, monkeypatch):
    from kernels.sdpa import custom_ops as attention_ops

    seen = []
    real = attention_ops.attention_forward_body  # what an inference call runs (runs_without_dispatcher)

    def spy(query, key, value, mask, is_causal, *args):
        seen.append((attended_key_range(mask) is not None, is_causal))
        return real(query, key, value, mask, is_causal, *args)

    monkeypatch.setattr(attention_ops, "attention_forward_body", spy)
    q, k, v = make_qkv(2, 2, 2, 33, 33, 16, torch.float32, device)
    key_padding = padding_of([33, 10], 33, left=True, device=device)  # row 1: 23 pad tokens first
    out = run_triton(q, k, v, key_padding)
    assert seen == [(True, True)]
    assert torch.equal(out[1, :, :23], torch.zeros_like(out[1, :, :23]))  # padded queries see no real key
    assert_attention_close(out, q, k, v, attn_mask=explicit_mask(key_padding, 33))


def test_gradients_match_the_explicit_mask(device):
    q, k, v = make_qkv(2, 2, 2, 29, 29, 32, torch.float32, device)
    key_padding = padding_of([29, 13], 29, left=True, device=device)
    dout = torch.randn_like(q)
    mask = explicit_mask(key_padding, 29)
    exact = reference_gradients(q.double(), k.double(), v.double(), dout.double(), attn_mask=mask)
    plain = reference_gradients(q, k, v, dout, attn_mask=mask)
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    ours = torch.autograd.grad(run_triton(*leaves, key_padding), leaves, dout)
    for got, want, baseline in zip(ours, exact, plain, strict=True):
        assert_parity(got, want, baseline, tolerance=gradient_tolerance(q.dtype, want))


@pytest.mark.parametrize("bad, error, match", [
    (lambda kp: kp.int(), TypeError, "key_padding must be a bool tensor"),
    (lambda kp: kp[:, :-1], ValueError, r"key_padding must have shape \(batch, key_len\) = \(2, 9\)"),
    (lambda kp: "mask", TypeError, "key_padding must be a bool tensor"),
])
def test_bad_key_padding_is_named(bad, error, match, device):
    q, k, v = make_qkv(2, 2, 2, 9, 9, 16, torch.float32, device)
    key_padding = torch.ones(2, 9, dtype=torch.bool, device=device)
    with pytest.raises(error, match=match):
        kernels.causal_attention_with_key_padding(q, k, v, bad(key_padding))
