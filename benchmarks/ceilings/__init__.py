"""`python -m benchmarks ceilings`: the card's measured matmul and copy ceilings (run.py; measured by
harness/ceilings.py)."""
