"""The attention benchmarks: `attention` (forward), `backward` (backward alone and fwd+bwd) and `masked`
(the masks users pass, packed documents, the padded vs packed training step), ours vs every torch SDPA
backend vs FlexAttention vs the eager reference (and on packed documents ours through varlen_attention).

- cases.py (+ modes.py, flops.py, documents.py): the cases, their modes and FLOP counts, their inputs
- providers.py (+ flex.py): the implementations compared
- calls.py, accuracy.py: what is timed and checked in each mode, the float64 results
- measure.py: the sweep; report.py: tables and plots; run.py: the three commands
- summary.py: `python -m benchmarks.attention.summary`, the short table a GPU session prints last
- test_attention_benchmark.py: the pytest-benchmark suite
"""
