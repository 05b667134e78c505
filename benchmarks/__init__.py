"""Benchmarks of `kernels` against torch SDPA and the `reference` eager code.

Run `python -m benchmarks --help`. Command X lives in `benchmarks/X/run.py` (the attention folder holds
`attention`, `backward` and `masked`; `report` is `results/run.py`), each registered in `commands.py`.
A suite's folder has the same few files: `cases.py` (what is measured, its inputs and float64 results),
`providers.py` (the implementations compared), `measure.py` (the sweep, one row per case x provider),
`report.py` (tables and plots), `run.py` (the command), and its pytest-benchmark file.
`harness/` is what every suite shares: timing, ceilings, environment, the row type, the JSON writer,
tables, plots and the command runner. `results/` keeps the GPU runs and generates their README.
"""
