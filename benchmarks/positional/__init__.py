"""The positional benchmark (`python -m benchmarks positional`): the fused sinusoidal encoding and embedding
vs the course's table add vs torch eager, in GB/s; precision.py: the encoding's error at large positions."""
