"""The attention kernels (@triton.jit) and their launchers: the only attention modules that import triton."""
