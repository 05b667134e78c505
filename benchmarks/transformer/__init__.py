"""The transformer benchmark (`python -m benchmarks transformer`): the course's Transformer forward and
KV-cached greedy decoding, ours vs torch vs the reference build, in tokens/s."""
