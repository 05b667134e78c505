"""Block-sparse skipping of dense masks (kernels/sdpa/block_mask.py): the map and its tile lists,
exactly; the kernels against the float64 reference with every kind of map tile (EMPTY, FULL,
PARTIAL), causality and a window folded in, per-head masks, GQA and lengths that end inside a map tile;
and proof that the tiles a mask hides whole are never read (NaN planted there would reach the results,
and does with the maps turned off)."""
import pytest
import torch

import kernels
import reference
from kernels.sdpa.block_mask import EMPTY, FULL, MAP_BLOCK, PARTIAL, BlockMask, _tile_states, tile_lists, tile_states
from kernels.sdpa.masks import causal_keep_mask, window_keep_mask
from kernels.sdpa.triton.backward import launch_backward
from kernels.sdpa.triton.common import accumulator_dtype
from kernels.sdpa.triton.forward import launch_forward
from kernels.sdpa.variants import attention_variants

# The maps' tests: 3 x 3 map tiles, the last ones short.
N_QUERIES, N_KEYS = 300, 270
# The kernels' tests (the interpreter is slow): 2 x 2 map tiles, the last ones short, so the listed
# tiles run past both ends (EVEN_M and EVEN_N off).
KERNEL_QUERIES, KERNEL_KEYS = 200, 190


def documents(length: int, starts: tuple[int, ...], device) -> torch.Tensor:
    """The document index of each position of a packed row whose documents start at `starts`."""
    return (torch.arange(length, device=device)[:, None] >= torch.tensor(starts, device=device)).sum(1)


def document_mask(device, starts=(0, 140, 262), n_queries=N_QUERIES, n_keys=N_KEYS) -> torch.Tensor:
    """(n_queries, n_keys) bool: a query attends the keys of its own document. With the default starts,
    map tile (0, 0) lies in the first document (FULL), tiles (0, 2) and (2, 0) in none (EMPTY), the
    others straddle a document's edge (PARTIAL)."""
    return documents(n_queries, starts, device)[:, None] == documents(n_keys, starts, device)[None, :]


def kernel_documents(device, starts=(0, 128, 170)) -> torch.Tensor:
    """The kernels' tests' document mask: with the default starts map tile (0, 0) is FULL, (0, 1) and
    (1, 0) EMPTY, (1, 1) PARTIAL."""
    return document_mask(device, starts, KERNEL_QUERIES, KERNEL_KEYS)


def test_the_map_of_bool_and_float_masks(device):
    mask = torch.zeros(N_QUERIES, N_KEYS, dtype=torch.bool, device=device)
    mask[:128, :128] = True
    mask[5, 200] = True
    mask[128:256] = True
    mask[299, 269] = True
    expected = torch.tensor([[FULL, PARTIAL, EMPTY], [FULL, FULL, FULL], [EMPTY, EMPTY, PARTIAL]], dtype=torch.uint8)
    assert torch.equal(_tile_states(mask[None, None]).cpu(), expected[None, None])
    bias = torch.zeros(N_QUERIES, N_KEYS, device=device).masked_fill(~mask, float("-inf"))
    bias[130, 3] = 0.5  # a bias that is not 0 makes its tile PARTIAL, though every score there is kept
    expected[1, 0] = PARTIAL
    assert torch.equal(_tile_states(bias[None, None]).cpu(), expected[None, None])
    # Broadcast dims are summarised once; a mask per batch element gets a map per batch element.
    assert tile_states(mask.expand(3, 4, N_QUERIES, N_KEYS)).shape == (1, 1, 3, 3)
    per_batch = torch.stack([mask, ~mask])[:, None]
    assert torch.equal(tile_states(per_batch.expand(2, 4, N_QUERIES, N_KEYS))[1, 0].cpu(),
                       torch.tensor([[EMPTY, PARTIAL, FULL], [EMPTY, EMPTY, EMPTY], [FULL, FULL, PARTIAL]]))


def test_tile_lists_fold_in_the_causal_diagonal_and_the_window(device):
    everything = torch.ones(1, 1, N_QUERIES, N_QUERIES, dtype=torch.bool, device=device)
    by_queries = tile_lists(everything, True, None, by_keys=False)[0, 0].tolist()
    # per query block: FULL count, listed count, then key blocks FULL first, then PARTIAL
    assert [row[:2 + row[1]] for row in by_queries] == [[0, 1, 0], [1, 2, 0, 1], [2, 3, 0, 1, 2]]
    by_keys = tile_lists(everything, True, None, by_keys=True)[0, 0].tolist()
    assert [row[:2 + row[1]] for row in by_keys] == [[2, 3, 1, 2, 0], [1, 2, 2, 1], [0, 1, 2]]
    # A folded band is never wrong: FULL exactly where the map of mask & band is, every tile that map
    # does not call EMPTY listed, each group in ascending order.
    mask = document_mask(device)[None, None]
    for is_causal, window in ((True, None), (False, (40, 10)), (True, (200, None)), (False, (None, 0))):
        exact_mask = mask & causal_keep_mask(N_QUERIES, N_KEYS, device) if is_causal else mask
        if window is not None:
            exact_mask = exact_mask & window_keep_mask(N_QUERIES, N_KEYS, device, left=window[0], right=window[1])
        exact = _tile_states(exact_mask)[0, 0].tolist()
        for row, (full, listed, *blocks) in enumerate(tile_lists(mask, is_causal, window, False)[0, 0].tolist()):
            assert blocks[:full] == [col for col in range(3) if exact[row][col] == FULL]
            assert blocks[full:listed] == sorted(blocks[full:listed])
            assert {col for col in range(3) if exact[row][col] == PARTIAL} <= set(blocks[full:listed])


def test_the_map_is_remembered_until_the_mask_changes(device):
    mask = document_mask(device)
    lists = tile_lists(mask.expand(2, 4, N_QUERIES, N_KEYS), False, None, by_keys=False)
    assert tile_lists(mask.expand(2, 4, N_QUERIES, N_KEYS), False, None, by_keys=False) is lists  # the next layer
    block_mask = BlockMask.from_mask(mask)
    assert tile_states(mask.expand(2, 4, N_QUERIES, N_KEYS)) is block_mask.states  # what the launchers read
    strided = torch.rand(N_QUERIES, 2 * N_KEYS, device=device)[:, ::2] < 0.5  # from_mask copies nothing
    assert tile_states(strided.expand(2, 4, N_QUERIES, N_KEYS)) is BlockMask.from_mask(strided).states
    mask[:, :] = True  # written in place: summarised again
    again = tile_lists(mask.expand(2, 4, N_QUERIES, N_KEYS), False, None, by_keys=False)
    assert again is not lists and again[0, 0, :, :2].tolist() == [[3, 3]] * 3


def test_block_mask_arguments_and_every_backend(device):
    with pytest.raises(TypeError, match="mask must be a torch.Tensor"):
        BlockMask.from_mask([[True]])
    with pytest.raises(ValueError, match="mask must have rank 2, 3 or 4"):
        BlockMask.from_mask(torch.ones(5, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be bool"):
        BlockMask.from_mask(torch.ones(5, 5, dtype=torch.int32))
    mask = document_mask(device)
    block_mask = BlockMask.from_mask(mask)
    assert repr(block_mask) == "BlockMask(shape=(300, 270), block_size=128, empty=2, full=1, partial=6)"
    assert block_mask.sparsity() == pytest.approx(2 / 9)
    q = torch.randn(1, 2, N_QUERIES, 16, device=device)
    k, v = (torch.randn(1, 2, N_KEYS, 16, device=device) for _ in range(2))
    for backend in ("torch", "reference"):
        torch.testing.assert_close(kernels.attention(q, k, v, attn_mask=block_mask, backend=backend),
                                   kernels.attention(q, k, v, attn_mask=mask, backend=backend), atol=0, rtol=0)


def _poisoned(like: torch.Tensor) -> torch.Tensor:
    return torch.full_like(like, float("nan"))


def trainable_bias(device) -> torch.Tensor:
    """A float64 bias over the documents (-inf elsewhere): random, but 0 over map tile (0, 0) (FULL)."""
    bias = torch.randn(KERNEL_QUERIES, KERNEL_KEYS, device=device, dtype=torch.float64)
    bias[:MAP_BLOCK, :MAP_BLOCK] = 0.0
    return bias.masked_fill(~kernel_documents(device), float("-inf"))


# name -> (mask maker, is_causal, window); two query heads share one key/value head. The causal case's
# window is wide enough to leave map tile (0, 0) FULL for the mask and the window, but not for
# causality: the backward's causal compare on that tile then depends on the fold.
CASES = {
    "documents-per-head": (lambda device: torch.stack([kernel_documents(device),
                                                       kernel_documents(device, (0, 60, 150))]), False, None),
    "documents-causal-window": (kernel_documents, True, (150, None)),
    "trainable-bias": (trainable_bias, False, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_kernels_with_a_map_match_the_float64_reference(case, device):
    """float64 through the launchers, outputs poisoned first: any tile dropped, visited twice or read
    without its mask shows far above rounding."""
    make_mask, is_causal, window = CASES[case]
    q = torch.randn(1, 2, KERNEL_QUERIES, 16, device=device, dtype=torch.float64)
    k, v = (torch.randn(1, 1, KERNEL_KEYS, 16, device=device, dtype=torch.float64) for _ in range(2))
    grad_out = torch.randn_like(q)
    user_mask = make_mask(device)
    mask = user_mask.expand(1, 2, KERNEL_QUERIES, KERNEL_KEYS)
    variants = None if window is None else attention_variants(q, window=window, softcap=None, alibi_slopes=None,
                                                              sinks=None)
    scale = 0.3
    out, lse = launch_forward(q, k, v, mask, is_causal, scale, out=_poisoned(q),
                              lse=_poisoned(q[..., 0]).to(accumulator_dtype(q.dtype)).contiguous(), variants=variants)
    bias_grad = None if user_mask.dtype == torch.bool else _poisoned(mask).contiguous()
    grads = launch_backward(q, k, v, out, lse, grad_out, mask, is_causal, scale, grads=tuple(map(_poisoned, (q, k, v))),
                            variants=variants, mask_grad=bias_grad)

    leaves = [tensor.clone().requires_grad_() for tensor in (q, k, v)]
    exact_mask = mask & causal_keep_mask(KERNEL_QUERIES, KERNEL_KEYS, device) if is_causal else mask
    if user_mask.dtype != torch.bool:
        leaves.append(mask.clone().requires_grad_())
        exact_mask = leaves[-1]
    exact = reference.scaled_dot_product_attention(*leaves[:3], attn_mask=exact_mask, scale=scale, enable_gqa=True,
                                                   window=window)
    torch.testing.assert_close(out, exact, atol=1e-12, rtol=1e-10)
    exact_grads = torch.autograd.grad(exact, leaves, grad_out)
    for name, ours, want in zip(("q", "k", "v", "attn_mask"), (*grads, bias_grad), exact_grads):
        torch.testing.assert_close(ours, want, atol=1e-12, rtol=1e-10, msg=lambda text, name=name: f"d{name}: {text}")


def test_tiles_a_mask_hides_are_never_read(device, monkeypatch):
    """Keys from 128 on are attended by no query, queries from 128 on attend no key: whole map tiles
    (column 1, row 1) are EMPTY. NaN planted in those rows of q, k, v and dO reaches the output and
    the gradients (all of them 0 there) only if a kernel reads an EMPTY tile, and does when the maps
    are turned off."""
    mask = kernel_documents(device, (0, 50))
    mask[:, MAP_BLOCK:] = False
    mask[MAP_BLOCK:] = False
    q, k, v, grad_out = (torch.randn(1, 2, KERNEL_QUERIES if index in (0, 3) else KERNEL_KEYS, 16, device=device)
                         for index in range(4))
    poisoned = [tensor.clone() for tensor in (q, k, v, grad_out)]
    for tensor in poisoned:
        tensor[:, :, MAP_BLOCK:] = float("nan")
    leaves = [tensor.requires_grad_() for tensor in poisoned[:3]]
    with kernels.record_backends() as ran:
        out = kernels.attention(*leaves, attn_mask=BlockMask.from_mask(mask), backend="triton")
    assert ran == ["triton"]
    grads = torch.autograd.grad(out, leaves, poisoned[3])
    exact_leaves = [tensor.double().requires_grad_() for tensor in (q, k, v)]
    exact = reference.scaled_dot_product_attention(*exact_leaves, attn_mask=mask)
    torch.testing.assert_close(out.double(), exact, atol=2e-6, rtol=1e-5)
    for name, ours, want in zip("qkv", grads, torch.autograd.grad(exact, exact_leaves, grad_out.double())):
        torch.testing.assert_close(ours.double(), want, atol=2e-5, rtol=1e-5,
                                   msg=lambda text, name=name: f"d{name}: {text}")
    monkeypatch.setenv("KERNELS_BLOCK_MAPS", "0")  # the control: every tile read, the poison with it
    assert kernels.attention(*poisoned[:3], attn_mask=mask, backend="triton").isnan().any()
