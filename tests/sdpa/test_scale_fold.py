"""FOLD_SCALE (common.scale_folds): the forward, decode and backward kernels apply the softmax scale
inside the exp2 when that is exact, and keep scaling each score first otherwise. Both paths against
float64: output and log-sum-exp (which the backward reads: the fold must not change its meaning), and
the gradients."""
import pytest
import torch

from kernels.sdpa.triton import backward, decode, forward
from kernels.sdpa.triton.common import LOG2E, MASK_ADDITIVE, MASK_BOOL, MASK_NONE, scale_folds
from kernels.testing import assert_attention_close
from test_attention_backward import assert_gradients_match
from test_attention_decode import poisoned_outputs
from test_attention_forward import make_qkv

NO_VARIANTS = dict(SOFTCAP=False, ALIBI=False, USE_SINKS=False, WINDOW_LEFT=False, WINDOW_RIGHT=False)


@pytest.mark.parametrize("scale, mask_kind, variants, folds", [
    (0.125, MASK_NONE.value, {}, True),
    (0.125, MASK_BOOL.value, dict(USE_SINKS=True, WINDOW_LEFT=True, WINDOW_RIGHT=True), True),
    (1e30, MASK_NONE.value, {}, True),
    (0.0, MASK_NONE.value, {}, False),
    (-0.125, MASK_BOOL.value, {}, False),
    (1e-40, MASK_NONE.value, {}, False),  # an fp32 subnormal: a GPU may flush it to 0, and -inf * 0 is NaN
    (1e39, MASK_NONE.value, {}, False),  # inf as an fp32
    (0.125, MASK_ADDITIVE.value, {}, False),
    (0.125, MASK_NONE.value, dict(SOFTCAP=True), False),
    (0.125, MASK_NONE.value, dict(ALIBI=True), False),
])
def test_scale_folds_only_where_exact(scale, mask_kind, variants, folds):
    assert scale_folds(scale * LOG2E.value, mask_kind, {**NO_VARIANTS, **variants}) is folds


def _mask(kind, batch, n_q, n_k, device):
    """A bool mask with a fully masked row, key padding with a batch element of no key, or an
    additive mask with -inf entries."""
    if kind == "bool":
        mask = torch.rand(batch, 1, n_q, n_k, device=device) < 0.7
        mask[0, 0, 2] = False
        return mask
    if kind == "key_padding":
        lengths = torch.tensor([n_k - 9, 0], device=device)  # 28: inside a key tile
        return (torch.arange(n_k, device=device) < lengths[:, None])[:, None, None, :]
    bias = torch.randn(batch, 1, n_q, n_k, device=device)
    return bias.masked_fill(torch.rand(batch, 1, n_q, n_k, device=device) < 0.2, float("-inf"))


def _exact_lse(q, k, mask, scale, is_causal):
    k = k.double().repeat_interleave(q.size(1) // k.size(1), dim=1)
    scores = q.double() @ k.transpose(-2, -1) * scale
    if is_causal:
        scores = scores.masked_fill(~torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).tril(),
                                    float("-inf"))
    scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.double()
    return scores.logsumexp(-1)


# (scale, mask, causal, whether the fold applies): each path with a positive, zero and negative scale
# where it may run, fully masked rows (bool mask, key padding), causal, and the additive mask.
CASES = {
    "positive_bool_causal": (0.3, "bool", True, True),
    "positive_key_padding": (0.3, "key_padding", False, True),
    "zero_bool": (0.0, "bool", False, False),
    "negative_bool_causal": (-0.4, "bool", True, False),
    "negative_key_padding": (-0.4, "key_padding", False, False),
    "positive_additive": (0.3, "additive", False, False),
}


def _record_decisions(monkeypatch, *modules):
    """The list that receives each scale_folds answer the launchers of `modules` get."""
    decided = []

    def recording(*args):
        decided.append(scale_folds(*args))
        return decided[-1]

    for module in modules:
        monkeypatch.setattr(module, "scale_folds", recording)
    return decided


@pytest.mark.parametrize("case", list(CASES))
def test_both_paths_match_float64(case, device, monkeypatch):
    scale, mask_kind, is_causal, folds = CASES[case]
    batch, n_q, n_k = 2, 7, 37  # 7 queries of 2 heads a key/value head: one decode tile, ragged keys
    q, k, v = make_qkv(batch, 4, 2, n_q, n_k, 24, torch.float32, device)
    mask = _mask(mask_kind, batch, n_q, n_k, device)
    decided = _record_decisions(monkeypatch, forward, decode)
    full_mask = mask.expand(batch, 4, n_q, n_k)
    results = [forward.launch_forward(q, k, v, full_mask, is_causal, scale, *poisoned_outputs(q, v))]
    if not is_causal:  # the split-K decode kernel takes no causal calls
        results.append(decode.launch_decode(q, k, v, full_mask, scale, 3, *poisoned_outputs(q, v)))

    assert decided == [folds] * len(results)
    expected_lse = _exact_lse(q, k, full_mask, scale, is_causal)
    for out, lse in results:
        assert_attention_close(out, q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale, enable_gqa=True)
        torch.testing.assert_close(lse.double(), expected_lse, atol=2e-5, rtol=1e-5)
    if mask_kind in ("bool", "key_padding"):  # the rows with no key: zeros, lse -inf, never NaN
        empty = expected_lse == float("-inf")
        assert empty.any()
        for out, lse in results:
            assert (out[empty] == 0).all() and (lse[empty] == float("-inf")).all()


@pytest.mark.parametrize("scale, mask_kind, folds", [(0.3, "bool", True), (0.0, "bool", False),
                                                     (-0.4, "key_padding", False)])
def test_both_paths_give_float64_gradients(scale, mask_kind, folds, device, monkeypatch):
    q, k, v = make_qkv(2, 2, 2, 19, 37, 24, torch.float32, device)
    mask = _mask(mask_kind, 2, 19, 37, device)
    decided = _record_decisions(monkeypatch, forward, backward)
    assert_gradients_match(q, k, v, torch.randn_like(q), attn_mask=mask, scale=scale)
    assert decided == [folds, folds]  # the forward's, then the backward's
