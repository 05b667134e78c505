"""`python -m benchmarks all`: every benchmark in turn (run.py)."""
