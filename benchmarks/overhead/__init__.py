"""`python -m benchmarks overhead`: what Python does per call before a kernel starts (host time).

- torch_path.py: `kernels.attention` on the torch backend vs `F.scaled_dot_product_attention` itself,
  and the drop-in module vs `torch.nn.MultiheadAttention`, on CPU tensors: the difference is ours;
- host_only.py: the Triton path without a GPU, every step up to the launch, the launch itself
  replaced by Triton's own argument binding (triton_path.py measures it level by level);
- cases.py, report.py, run.py: the cases, the tables, the command.
"""
