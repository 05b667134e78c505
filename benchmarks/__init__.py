"""Benchmarks of `kernels` against torch SDPA and the `reference` eager code.

Run `python -m benchmarks --help`. Each subcommand lives in one module of `benchmarks.commands`; the
measuring pieces (timing, ceilings, FLOP counts, accuracy, reports) are shared modules beside it.
"""
