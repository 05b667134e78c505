"""Sinusoidal positional encoding, in the same layers as `kernels.sdpa`:

- `functional`: `add_positional_encoding` and `sinusoidal_embedding`, backend choice;
- `validation` and `limits`: argument checks;
- `torch_fallback`: the same math in PyTorch (the "torch" and "reference" backends);
- `custom_ops`: the torch.library custom ops;
- `triton/`: the kernel and its launcher, the only positional module that imports triton.
"""
