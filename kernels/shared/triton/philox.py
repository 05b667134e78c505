"""The one Philox call of the package: every dropout mask, attention's and the positional encoding's,
is drawn by `philox_draws`.

Philox-4x32 maps (key, counter) to four independent uint32 words; the key is the call's 64-bit seed,
so the mask is a pure function of (seed, counter) and any kernel can regenerate it.

The two families use it differently, and keep doing so, because their masks are fixed by what users
replay (`kernels.attention_dropout_mask`, `torch.manual_seed` repeating a call):
- attention (kernels/sdpa/triton/common.py, `dropout_keep`): counter = (the element's key index, its
  query index, batch * heads + head); only the first word is used, as a uniform float in [0, 1),
  kept when >= p. Seeds come from [0, 2**62) (`ATTENTION_SEED_HIGH`).
- positional encoding (kernels/positional/triton/encoding.py, `_keep_mask`): counter = the 64-bit
  index of a group of four neighbouring columns, row * ceil(d / 4) + column // 4; all four words are
  used, one per column, and an element is kept when its raw uint32 word is >= round(p * 2**32).
  Seeds come from [0, 2**31 - 1) (`POSITIONAL_SEED_HIGH`), so the kernel's seed argument is an int32
  (one compiled specialisation).
"""
import triton
import triton.language as tl


@triton.jit
def philox_draws(seed, counter_0, counter_1, counter_2):
    """Four uint32 draws per element: Philox-4x32 under the 64-bit key `seed` at the counter
    (counter_0, counter_1, counter_2, 0); the counter words are uint32 blocks of one shape."""
    return tl.philox(seed, counter_0, counter_1, counter_2, tl.zeros(counter_0.shape, dtype=tl.uint32))
