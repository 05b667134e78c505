"""Scaled dot-product attention, layer by layer (each imports only the ones below it):

- `functional`: the public functions (`kernels.attention` has SDPA's signature), backend choice and
  the torch / reference fallbacks;
- `variants`: the attention variants (sliding window, soft-capping, ALiBi, sinks): their options
  checked into one frozen value, and their dispatch (`torch_variants` is the torch backend's math);
- `validation`: argument checks, with errors that name the argument;
- `masks`: the causal and window masks as tensors, for the calls that cannot use the kernels' flags;
- `custom_ops`: the torch.library custom ops (fake + autograd) that `torch.compile` traces;
- `triton/`: the only place that imports triton: shared jit pieces (`common`), tiles (`configs`), the
  forward, backward, split-K decode kernels and the dropout-mask replay, each with its launcher.

Named `sdpa`, not `attention`: `kernels.attention` is the public function, which a subpackage of
the same name would collide with.
"""
