"""`python -m benchmarks context-parallel`: kernels.distributed's methods on real process groups.

On the CPU (gloo, loopback): correctness against single-device `kernels.attention` and the bytes
each rank sends against the formulas of cases.py. On a machine with at least W GPUs (NCCL): also
per-rank TFLOP/s and the scaling efficiency against one GPU running the whole sequence.
"""
