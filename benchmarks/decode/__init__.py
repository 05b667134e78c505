"""The decode benchmark (`python -m benchmarks decode`): few queries over a KV cache, ours with and without
split-K vs SDPA vs the reference, in GB/s."""
