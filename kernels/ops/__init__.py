"""One module per op: the @triton.jit kernels and their launchers."""
