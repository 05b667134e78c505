"""`python -m benchmarks parity`: kernels.testing's parity checks with a header and a JSON file (run.py)."""
