"""The Triton varlen path (the attention kernels' VARLEN mode, kernels/sdpa/triton/sequences.py) against a
float64 reference computed one sequence at a time: forward and backward, on both forward paths (pointers
and TMA descriptors), with dropout replayed exactly; rows of other sequences are never read (they hold
NaN); and no host synchronisation when the offsets' values are not checked."""
import pytest
import torch

import kernels
import reference
from kernels.sdpa.triton.descriptors import force_tensor_descriptors
from kernels.sdpa.triton.dropout import dropout_keep_mask
from kernels.sdpa.triton.sequences import PackedSequences
from kernels.sdpa.triton.varlen import launch_varlen_backward, launch_varlen_forward
from kernels.shared.backends import resolve_backend
from kernels.shared.custom_ops import ATTENTION_SEED_HIGH, draw_seed
from kernels.shared.dropout import Dropout
from kernels.testing import assert_parity
from kernels.testing.tolerances import tolerance_for
from support.devices import DEVICE
from test_attention_backward import gradient_tolerance
from test_no_host_sync import host_reads_refused
from test_varlen import (VARIANTS, check_variant_per_sequence, exact_and_plain, make_packed, per_sequence_reference,
                         run_varlen)

pytestmark = pytest.mark.skipif(resolve_backend(None, torch.device(DEVICE)) != "triton",
                                reason="the triton backend does not run here (no CUDA, no TRITON_INTERPRET)")

# Per sequence (query length, key length): empty on either side, single tokens, odd lengths, lengths
# past the interpreter's tiles (forward 32x16, backward 16x32) and Nq != Nk both ways.
LENGTHS = [(5, 5), (0, 0), (1, 1), (0, 3), (3, 0), (17, 9), (9, 17), (40, 40), (1, 37), (33, 20)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
HEADS = {"mha": (2, 2), "gqa": (4, 2), "mqa": (3, 1)}
SCALE = 0.3


def assert_gradients_match(got, exact, plain, dtype=torch.float32) -> None:
    for name, ours, want, baseline in zip(("dq", "dk", "dv"), got, exact, plain):
        try:
            assert_parity(ours, want, baseline, tolerance=gradient_tolerance(dtype, want))
        except AssertionError as failure:
            raise AssertionError(f"{name}: {failure}") from None


def reference_gradients(q, k, v, dout, cu_q, cu_k, dtype, **options):
    leaves = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
    out = per_sequence_reference(*leaves, cu_q, cu_k, **options)
    return torch.autograd.grad(out, leaves, dout.to(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("heads", list(HEADS.values()), ids=list(HEADS))
def test_forward_matches_the_per_sequence_reference(heads, is_causal, dtype, device):
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed(LENGTHS, *heads, 24, dtype, device, head_dim_v=16)
    options = dict(is_causal=is_causal, enable_gqa=heads[0] != heads[1], scale=SCALE)
    out = run_varlen("triton", q, k, v, cu_q, cu_k, max_q, max_k, **options)
    assert out.shape == (q.size(0), heads[0], 16) and out.dtype == dtype and out.is_contiguous()
    assert_parity(out, *exact_and_plain(q, k, v, cu_q, cu_k, **options), tolerance=tolerance_for(dtype))


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_apply_within_each_sequence(variant, device):
    """The kernels' variant flags in VARLEN mode: window, soft cap, per-sequence ALiBi, sinks (and their
    gradient), forward and backward, against the float64 reference one sequence at a time."""
    check_variant_per_sequence("triton", variant, device)


def test_a_gradient_for_the_slopes_is_refused_by_name(device):
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed([(4, 5), (3, 2)], 2, 2, 8, torch.float32, device)
    slopes = torch.rand(2, device=device, requires_grad=True)
    out = run_varlen("triton", q.requires_grad_(), k, v, cu_q, cu_k, max_q, max_k, alibi_slopes=slopes)
    with pytest.raises(NotImplementedError, match="does not compute gradients for alibi_slopes"):
        out.sum().backward()


@pytest.mark.parametrize("is_causal", [False, True])
def test_descriptor_path_bounds_each_sequence(is_causal, device):
    """On the TMA path each program's descriptors span its own sequence's rows only."""
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed(LENGTHS, 4, 2, 32, torch.float16, device)
    options = dict(is_causal=is_causal, enable_gqa=True)
    with force_tensor_descriptors(True):
        out = run_varlen("triton", q, k, v, cu_q, cu_k, max_q, max_k, **options)
    assert_parity(out, *exact_and_plain(q, k, v, cu_q, cu_k, **options), tolerance=tolerance_for(torch.float16))


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("heads", [HEADS["mha"], HEADS["gqa"]], ids=["mha", "gqa"])
def test_gradients_match_the_per_sequence_reference(heads, is_causal, device):
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed(LENGTHS, *heads, 24, torch.float32, device, head_dim_v=16)
    options = dict(is_causal=is_causal, enable_gqa=heads[0] != heads[1], scale=SCALE)
    dout = torch.randn(q.size(0), heads[0], 16, device=device)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = run_varlen("triton", *leaves, cu_q, cu_k, max_q, max_k, **options)
    ours = torch.autograd.grad(out, leaves, dout)
    assert_gradients_match(ours, reference_gradients(q, k, v, dout, cu_q, cu_k, torch.float64, **options),
                           reference_gradients(q, k, v, dout, cu_q, cu_k, torch.float32, **options))


def outside(tensor: torch.Tensor, rows: slice) -> torch.Tensor:
    """`tensor` with NaN in every row outside `rows`."""
    poisoned = torch.full_like(tensor, float("nan"))
    poisoned[rows] = tensor[rows]
    return poisoned


@pytest.mark.parametrize("is_causal", [False, True])
def test_rows_of_other_sequences_are_never_read(is_causal, device):
    """Every row of q, k, v and dO outside the middle sequence is NaN: one such row in any tile the
    middle sequence's programs use would turn its output or gradients into NaN. The boundaries fall
    inside tiles, and the outputs are poisoned before the kernels write them."""
    lengths = [(21, 13), (37, 45), (11, 19)]
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed(lengths, 4, 2, 16, torch.float32, device)
    rows_q, rows_k = slice(*cu_q[1:3].tolist()), slice(*cu_k[1:3].tolist())
    dout = torch.randn(q.size(0), 4, 16, device=device)
    q_, k_, v_, dout_ = outside(q, rows_q), outside(k, rows_k), outside(v, rows_k), outside(dout, rows_q)
    sequences = PackedSequences(cu_q, cu_k, max_q, max_k)
    outputs = torch.full_like(q, float("nan")), torch.full((4, q.size(0)), float("nan"), device=device)
    out, lse = launch_varlen_forward(q_, k_, v_, sequences, is_causal, SCALE, outputs=outputs)
    grads = tuple(torch.full_like(t, float("nan")) for t in (q, k, v))
    launch_varlen_backward(q_, k_, v_, out, lse, dout_, sequences, is_causal, SCALE, grads=grads)

    alone = [t[rows] for t, rows in ((q, rows_q), (k, rows_k), (v, rows_k))]
    cu_alone_q, cu_alone_k = (torch.tensor([0, n], dtype=torch.int32, device=device) for n in lengths[1])
    options = dict(is_causal=is_causal, enable_gqa=True, scale=SCALE)
    assert_parity(out[rows_q], *exact_and_plain(*alone, cu_alone_q, cu_alone_k, **options),
                  tolerance=tolerance_for(torch.float32))
    ours = (grads[0][rows_q], grads[1][rows_k], grads[2][rows_k])
    assert_gradients_match(
        ours, reference_gradients(*alone, dout[rows_q], cu_alone_q, cu_alone_k, torch.float64, **options),
        reference_gradients(*alone, dout[rows_q], cu_alone_q, cu_alone_k, torch.float32, **options))


def test_dropout_replays_per_sequence(device):
    """The kernels' dropout mask of sequence b is the dense mask's (b, :, :Nq_b, :Nk_b) corner (the Philox
    counter is the position within the sequence and the (sequence, head) index): forward and gradients
    match the float64 reference with that mask."""
    lengths = [(5, 9), (0, 4), (33, 12), (17, 17)]
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed(lengths, 4, 2, 16, torch.float32, device)
    dout = torch.randn(q.size(0), 4, 16, device=device)
    generator_state = torch.get_rng_state()
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = run_varlen("triton", *leaves, cu_q, cu_k, max_q, max_k, dropout_p=0.3, enable_gqa=True, scale=SCALE)
    ours = torch.autograd.grad(out, leaves, dout)
    torch.set_rng_state(generator_state)  # draw the seed the call drew
    dropout = Dropout(0.3, int(draw_seed(ATTENTION_SEED_HIGH)))
    keep = dropout_keep_mask(len(lengths), 4, max_q, max_k, dropout, device)
    assert 0.5 < keep.float().mean() < 0.9  # dropout acted

    def with_mask(dtype):
        leaves = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
        pieces = []
        for b, ((n_q, n_k), start_q, start_k) in enumerate(zip(lengths, cu_q.tolist(), cu_k.tolist())):
            q_b, k_b, v_b = (t[start:start + n].transpose(0, 1)
                             for t, start, n in zip(leaves, (start_q, start_k, start_k), (n_q, n_k, n_k)))
            pieces.append(reference.scaled_dot_product_attention(
                q_b, k_b, v_b, dropout_p=0.3, dropout_mask=keep[b, :, :n_q, :n_k], enable_gqa=True, scale=SCALE,
            ).transpose(0, 1))
        result = torch.cat(pieces)
        return result.detach(), torch.autograd.grad(result, leaves, dout.to(dtype))

    (exact, exact_grads), (plain, plain_grads) = with_mask(torch.float64), with_mask(torch.float32)
    assert_parity(out, exact, plain, tolerance=tolerance_for(torch.float32))
    assert_gradients_match(ours, exact_grads, plain_grads)


def test_no_host_synchronisation_without_the_offset_checks(monkeypatch, device):
    """check_offsets=False (the default on CUDA): forward and backward read no tensor on the host; the
    four kernels ran."""
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed([(6, 6), (19, 7), (3, 12)], 4, 2, 16, torch.float32, device)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    dout = torch.randn(q.size(0), 4, 16, device=device)
    with host_reads_refused(monkeypatch) as ran:
        out = kernels.varlen_attention(*leaves, cu_q, cu_k, max_q, max_k, is_causal=True, enable_gqa=True,
                                       backend="triton", check_offsets=False)
        grads = torch.autograd.grad(out, leaves, dout)
    assert ran == ["attention_forward_kernel", "row_sum_of_products_kernel", "attention_backward_dk_dv_kernel",
                   "attention_backward_dq_kernel"]
    options = dict(is_causal=True, enable_gqa=True)
    assert_parity(out, *exact_and_plain(q, k, v, cu_q, cu_k, **options), tolerance=tolerance_for(torch.float32))
    assert_gradients_match(grads, reference_gradients(q, k, v, dout, cu_q, cu_k, torch.float64, **options),
                           reference_gradients(q, k, v, dout, cu_q, cu_k, torch.float32, **options))


def test_the_offset_checks_read_the_offsets(monkeypatch, device):
    """check_offsets=True reads them (the one host synchronisation it costs on CUDA)."""
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed([(6, 6), (3, 12)], 2, 2, 16, torch.float32, device)
    with host_reads_refused(monkeypatch), pytest.raises(AssertionError, match="host synchronisation"):
        kernels.varlen_attention(q, k, v, cu_q, cu_k, max_q, max_k, backend="triton", check_offsets=True)


@pytest.mark.parametrize("lengths", [[(3, 0), (2, 0)], [(0, 4), (0, 0)]], ids=["no keys", "no queries"])
def test_batches_with_nothing_to_attend(lengths, device):
    """No key anywhere: zero outputs and gradients, lse -inf; no query: empty outputs, zero dk and dv."""
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed(lengths, 2, 2, 8, torch.float32, device)
    sequences = PackedSequences(cu_q, cu_k, max_q, max_k)
    outputs = torch.full_like(q, float("nan")), torch.full((2, q.size(0)), float("nan"), device=device)
    out, lse = launch_varlen_forward(q, k, v, sequences, False, SCALE, outputs=outputs)
    grads = tuple(torch.full_like(t, float("nan")) for t in (q, k, v))
    launch_varlen_backward(q, k, v, out, lse, torch.randn_like(out), sequences, False, SCALE, grads=grads)
    assert torch.equal(out, torch.zeros_like(q)) and torch.equal(lse, torch.full_like(lse, float("-inf")))
    for grad in grads:
        assert torch.equal(grad, torch.zeros_like(grad))


def test_strided_offsets_are_read_by_their_strides(device):
    q, k, v, cu_q, cu_k, max_q, max_k = make_packed([(6, 6), (19, 7), (3, 12)], 2, 2, 16, torch.float32, device)
    strided = [torch.stack([offsets, torch.zeros_like(offsets)], dim=1)[:, 0] for offsets in (cu_q, cu_k)]
    assert strided[0].stride() == (2,)
    out = run_varlen("triton", q, k, v, *strided, max_q, max_k)
    assert_parity(out, *exact_and_plain(q, k, v, cu_q, cu_k), tolerance=tolerance_for(torch.float32))
