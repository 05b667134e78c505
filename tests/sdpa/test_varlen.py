"""kernels.varlen_attention (packed variable-length sequences) on the torch and reference backends, against
a float64 reference computed one sequence at a time; every bad input on every backend (on CPU tensors the
triton backend checks the offsets' values too). The triton kernels: test_varlen_triton.py."""
import itertools

import pytest
import torch

import kernels
import reference
from kernels.shared.backends import resolve_backend
from kernels.testing import assert_parity
from kernels.testing.tolerances import tolerance_for
from test_attention_backward import gradient_tolerance

# Per sequence (query length, key length): empty sequences on either side, single tokens, odd
# lengths, lengths past a 64-row tile, and Nq != Nk both ways.
LENGTHS = [(5, 5), (0, 0), (1, 1), (0, 3), (3, 0), (17, 9), (9, 17), (70, 70), (1, 130), (33, 33)]
BACKENDS = ["torch", "reference"]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def offsets(lengths: list[int], device) -> torch.Tensor:
    return torch.tensor(list(itertools.accumulate(lengths, initial=0)), dtype=torch.int32, device=device)


def make_packed(lengths, heads_q, heads_kv, head_dim, dtype, device, head_dim_v=None):
    """q, k, v packed along dim 0, their int32 offsets and max lengths, for (Nq, Nk) per sequence."""
    lengths_q, lengths_k = zip(*lengths)
    q = torch.randn(sum(lengths_q), heads_q, head_dim, dtype=dtype, device=device)
    k = torch.randn(sum(lengths_k), heads_kv, head_dim, dtype=dtype, device=device)
    v = torch.randn(sum(lengths_k), heads_kv, head_dim_v or head_dim, dtype=dtype, device=device)
    return q, k, v, offsets(lengths_q, device), offsets(lengths_k, device), max(lengths_q), max(lengths_k)


def per_sequence_reference(q, k, v, cu_seqlens_q, cu_seqlens_k, **kwargs) -> torch.Tensor:
    """The reference SDPA on each sequence alone, outputs concatenated: what "varlen" means. (B, Hq)
    ALiBi slopes give sequence b their row b."""
    outputs = []
    bounds_q, bounds_k = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
    slopes = kwargs.pop("alibi_slopes", None)
    for b in range(len(bounds_q) - 1):
        rows_q, rows_k = slice(bounds_q[b], bounds_q[b + 1]), slice(bounds_k[b], bounds_k[b + 1])
        if slopes is not None:
            kwargs["alibi_slopes"] = slopes if slopes.dim() == 1 else slopes[b]
        out = reference.scaled_dot_product_attention(q[rows_q].transpose(0, 1), k[rows_k].transpose(0, 1),
                                                     v[rows_k].transpose(0, 1), **kwargs)
        outputs.append(out.transpose(0, 1))
    return torch.cat(outputs)


def variant_options(name: str, batch: int, heads: int, device, dtype=torch.float32) -> dict:
    """varlen_attention's keywords for one attention variant (and the causality it is used with)."""
    return {
        "window": dict(window=(3, 1)),
        "causal_window": dict(window=(4, 0), is_causal=True),
        "softcap": dict(softcap=2.0),
        "alibi_per_sequence": dict(alibi_slopes=torch.rand(batch, heads, device=device, dtype=dtype),
                                   is_causal=True),
        "sinks": dict(sinks=torch.randn(heads, device=device, dtype=dtype), window=(None, 2)),
    }[name]


VARIANTS = ["window", "causal_window", "softcap", "alibi_per_sequence", "sinks"]
VARIANT_LENGTHS = [(5, 5), (0, 3), (17, 9), (9, 17), (1, 1), (3, 0), (33, 20)]


def float64_options(options: dict) -> dict:
    return {name: value.double() if torch.is_tensor(value) else value for name, value in options.items()}


def run_varlen(backend, q, k, v, cu_q, cu_k, max_q, max_k, **kwargs) -> torch.Tensor:
    with kernels.record_backends() as ran:
        out = kernels.varlen_attention(q, k, v, cu_q, cu_k, max_q, max_k, backend=backend, **kwargs)
    assert ran == [backend]
    return out


def exact_and_plain(q, k, v, cu_q, cu_k, **kwargs):
    """The float64 per-sequence result and the same math in the inputs' dtype (the pass rule's baseline)."""
    exact = per_sequence_reference(q.double(), k.double(), v.double(), cu_q, cu_k, **kwargs)
    return exact, per_sequence_reference(q, k, v, cu_q, cu_k, **kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("heads", [(2, 2), (4, 2), (3, 1)], ids=["mha", "gqa", "mqa"])
def test_forward_matches_the_per_sequence_reference(heads, is_causal, dtype, backend, device):
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed(LENGTHS, *heads, 24, dtype, device, head_dim_v=16)
    options = dict(is_causal=is_causal, enable_gqa=heads[0] != heads[1])
    out = run_varlen(backend, q, k, v, cu_q, cu_k, max_q, max_k, **options)
    assert out.shape == (q.size(0), heads[0], 16) and out.dtype == dtype
    exact, plain = exact_and_plain(q, k, v, cu_q, cu_k, **options)
    assert_parity(out, exact, plain, tolerance=tolerance_for(dtype))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("is_causal", [False, True])
def test_each_sequence_attends_only_within_itself(is_causal, backend, device):
    """Changing one sequence's keys and values leaves every other sequence's output as it was."""
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed([(6, 6), (7, 5), (4, 9)], 2, 2, 16, torch.float32, device)
    before = run_varlen(backend, q, k, v, cu_q, cu_k, max_q, max_k, is_causal=is_causal)
    middle = slice(*cu_k[1:3].tolist())
    k2, v2 = k.clone(), v.clone()
    k2[middle] += torch.randn_like(k2[middle])
    v2[middle] += torch.randn_like(v2[middle])
    after = run_varlen(backend, q, k2, v2, cu_q, cu_k, max_q, max_k, is_causal=is_causal)
    changed = slice(*cu_q[1:3].tolist())
    assert not torch.allclose(after[changed], before[changed])
    assert torch.equal(after[: changed.start], before[: changed.start])
    assert torch.equal(after[changed.stop:], before[changed.stop:])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("heads", [(2, 2), (4, 2)], ids=["mha", "gqa"])
def test_gradients_match_the_per_sequence_reference(heads, is_causal, backend, device):
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed(LENGTHS, *heads, 16, torch.float32, device)
    options = dict(is_causal=is_causal, enable_gqa=heads[0] != heads[1])
    dout = torch.randn(q.size(0), heads[0], v.size(-1), device=device)

    def gradients(run, dtype):
        leaves = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
        return torch.autograd.grad(run(*leaves), leaves, dout.to(dtype))

    ours = gradients(lambda *t: run_varlen(backend, *t, cu_q, cu_k, max_q, max_k, **options), torch.float32)
    exact = gradients(lambda *t: per_sequence_reference(*t, cu_q, cu_k, **options), torch.float64)
    plain = gradients(lambda *t: per_sequence_reference(*t, cu_q, cu_k, **options), torch.float32)
    for name, got, want, baseline in zip(("dq", "dk", "dv"), ours, exact, plain):
        try:
            assert_parity(got, want, baseline, tolerance=gradient_tolerance(torch.float32, want))
        except AssertionError as failure:
            raise AssertionError(f"{name}: {failure}") from None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_apply_within_each_sequence(variant, backend, device):
    check_variant_per_sequence(backend, variant, device)


def check_variant_per_sequence(backend: str, variant: str, device) -> None:
    """One attention variant per sequence (positions within it; per-sequence ALiBi slopes), forward
    and gradients, sinks' included, against the reference run one sequence at a time in float64."""
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed(VARIANT_LENGTHS, 4, 2, 16, torch.float32, device)
    options = dict(enable_gqa=True, **variant_options(variant, len(VARIANT_LENGTHS), 4, device))
    sinks = options.get("sinks")
    if sinks is not None:
        options["sinks"] = sinks = sinks.clone().requires_grad_()
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = run_varlen(backend, *leaves, cu_q, cu_k, max_q, max_k, **options)
    dout = torch.randn_like(out)
    grads = torch.autograd.grad(out, [*leaves, *([sinks] if sinks is not None else [])], dout)

    exact_options = float64_options(options)
    exact_leaves = [t.double().requires_grad_() for t in (q, k, v)]
    exact = per_sequence_reference(*exact_leaves, cu_q, cu_k, **exact_options)
    wrt = [*exact_leaves, *([exact_options["sinks"]] if sinks is not None else [])]
    exact_grads = torch.autograd.grad(exact, wrt, dout.double())
    plain = per_sequence_reference(q, k, v, cu_q, cu_k, **{**options, "sinks": None if sinks is None
                                                              else sinks.detach()})
    assert_parity(out.detach(), exact.detach(), plain, tolerance=tolerance_for(torch.float32))
    for name, got, want in zip(("dq", "dk", "dv", "dsinks"), grads, exact_grads):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")


def test_variant_slopes_are_per_sequence_or_per_head(device):
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed([(4, 5), (3, 2)], 4, 2, 8, torch.float32, device)
    with pytest.raises(ValueError, match=r"alibi_slopes must have shape \(Hq,\) = \(4,\) or \(B, Hq\) = \(2, 4\)"):
        kernels.varlen_attention(q, k, v, cu_q, cu_k, max_q, max_k, enable_gqa=True, alibi_slopes=torch.rand(3, 4))
    with pytest.raises(ValueError, match=r"softcap must be > 0"):
        kernels.varlen_attention(q, k, v, cu_q, cu_k, max_q, max_k, enable_gqa=True, softcap=0.0)


def test_reference_backend_is_exact_in_float64(device):
    """The block-diagonal formulation of `reference.varlen_attention` and the per-sequence loop agree
    to float64 rounding, values and gradients (gradcheck on a small packed batch)."""
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed([(3, 4), (0, 2), (5, 5), (2, 0)], 4, 2, 8, torch.float64,
                                                    device)
    options = dict(is_causal=True, enable_gqa=True)
    out = run_varlen("reference", q, k, v, cu_q, cu_k, max_q, max_k, **options)
    torch.testing.assert_close(out, per_sequence_reference(q, k, v, cu_q, cu_k, **options), rtol=1e-12, atol=1e-12)
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    assert torch.autograd.gradcheck(
        lambda *t: kernels.varlen_attention(*t, cu_q, cu_k, max_q, max_k, backend="reference", **options), leaves)


@pytest.mark.parametrize("backend", BACKENDS)
def test_larger_max_seqlen_is_accepted(backend, device):
    """max_seqlen_* bound the lengths (they size a grid): a larger bound gives the same result."""
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed([(4, 6), (7, 3)], 2, 2, 8, torch.float32, device)
    tight = run_varlen(backend, q, k, v, cu_q, cu_k, max_q, max_k)
    loose = run_varlen(backend, q, k, v, cu_q, cu_k, max_q + 9, max_k + 100)
    assert torch.equal(tight, loose)


def test_use_backend_selects_a_varlen_backend(device):
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed([(4, 4), (3, 3)], 2, 2, 8, torch.float32, device)
    with kernels.use_backend("torch"), kernels.record_backends() as ran:
        kernels.varlen_attention(q, k, v, cu_q, cu_k, max_q, max_k)
    assert ran == ["torch"]


def _good(device):
    """Valid arguments of a call, as a dict to spoil one at a time."""
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed([(4, 5), (3, 2)], 4, 2, 8, torch.float32, device)
    return dict(q=q, k=k, v=v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, max_seqlen_q=max_q, max_seqlen_k=max_k,
                enable_gqa=True)


def _int32(values, device):
    return torch.tensor(values, dtype=torch.int32, device=device)


BAD_INPUTS = {
    "offsets not int32": (lambda a, d: dict(cu_seqlens_q=a["cu_seqlens_q"].long()),
                          TypeError, r"cu_seqlens_q must have dtype torch.int32"),
    "offsets not 1-D": (lambda a, d: dict(cu_seqlens_k=a["cu_seqlens_k"][None]),
                        ValueError, r"cu_seqlens_k must be 1-D"),
    "offsets a list": (lambda a, d: dict(cu_seqlens_q=[0, 4, 7]), TypeError, r"cu_seqlens_q must be a torch.Tensor"),
    "no sequence": (lambda a, d: dict(cu_seqlens_q=_int32([0], d), cu_seqlens_k=_int32([0], d)),
                    ValueError, r"cu_seqlens_q must be 1-D of size batch \+ 1 >= 2"),
    "not starting at 0": (lambda a, d: dict(cu_seqlens_q=_int32([1, 4, 7], d)),
                          ValueError, r"cu_seqlens_q must start at 0, got 1"),
    "decreasing": (lambda a, d: dict(cu_seqlens_k=_int32([0, 5, 4, 7], d), cu_seqlens_q=_int32([0, 4, 4, 7], d)),
                   ValueError, r"cu_seqlens_k must be non-decreasing, but entry 2 \(4\) is below entry 1 \(5\)"),
    "last entry not the total": (lambda a, d: dict(cu_seqlens_k=_int32([0, 5, 6], d)),
                                 ValueError, r"cu_seqlens_k must end at k.size\(0\) = 7, got 6"),
    "a length over max_seqlen_q": (lambda a, d: dict(max_seqlen_q=3),
                                   ValueError, r"cu_seqlens_q holds a sequence of 4 tokens, more than max_seqlen_q = 3"),
    "a length over max_seqlen_k": (lambda a, d: dict(max_seqlen_k=4),
                                   ValueError, r"cu_seqlens_k holds a sequence of 5 tokens, more than max_seqlen_k = 4"),
    "max_seqlen a tensor": (lambda a, d: dict(max_seqlen_q=torch.tensor(4)),
                            TypeError, r"max_seqlen_q must be a non-negative int"),
    "max_seqlen negative": (lambda a, d: dict(max_seqlen_k=-1), TypeError, r"max_seqlen_k must be a non-negative int"),
    "offsets on another device": (lambda a, d: dict(cu_seqlens_k=a["cu_seqlens_k"].to("meta")),
                                  ValueError, r"cu_seqlens_k is on meta but q is on"),
    "batch mismatch": (lambda a, d: dict(cu_seqlens_k=_int32([0, 2, 5, 7], d)),
                       ValueError, r"cu_seqlens_q describes 2 sequences but cu_seqlens_k 3"),
    "q not packed": (lambda a, d: dict(q=a["q"][None]), ValueError, r"q must have rank 3 \(total_tokens, heads"),
    "k and v totals differ": (lambda a, d: dict(v=a["v"][:-1]), ValueError, r"k .* and v .* must match in total_k"),
    "integer q": (lambda a, d: dict(q=a["q"].long()), TypeError, r"query must be a floating-point tensor"),
    "dtypes differ": (lambda a, d: dict(k=a["k"].double()), TypeError, r"must share one dtype"),
    "head dims differ": (lambda a, d: dict(k=a["k"][..., :4]), ValueError, r"head_dim 8 differs from key head_dim 4"),
    "heads without enable_gqa": (lambda a, d: dict(enable_gqa=False), ValueError, r"pass enable_gqa=True"),
    "dropout_p out of range": (lambda a, d: dict(dropout_p=1.5), ValueError, r"dropout_p must be a float in"),
    "is_causal not a bool": (lambda a, d: dict(is_causal=1), TypeError, r"is_causal must be a bool"),
    "check_offsets not a bool": (lambda a, d: dict(check_offsets=1), TypeError, r"check_offsets must be a bool"),
}

VALUE_CHECKS = ("not starting at 0", "decreasing", "last entry not the total", "a length over max_seqlen_q",
                "a length over max_seqlen_k")


@pytest.mark.parametrize("backend", [*BACKENDS, "triton"])
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_a_clear_error(case, backend, device):
    arguments = _good(device)
    if backend == "triton" and resolve_backend(None, arguments["q"].device) != "triton":
        pytest.skip("the triton backend does not run on these tensors here")
    spoil, error, message = BAD_INPUTS[case]
    arguments.update(spoil(arguments, device))
    if backend == "triton" and case in VALUE_CHECKS and arguments["q"].device.type == "cuda":
        arguments["check_offsets"] = True  # skipped by default there: it costs a host synchronisation
    with kernels.record_backends() as ran, pytest.raises(error, match=message):
        kernels.varlen_attention(backend=backend, **arguments)
    assert ran == []
