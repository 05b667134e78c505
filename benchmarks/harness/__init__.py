"""What every benchmark shares:

- timing.py: the one timing method (do_bench median with warm-up on CUDA; on the CPU, fixed threads, a
  warm-up and enough sample blocks for a spread; the flag on timings too noisy to rank; input rotation);
  pytest_timing.py hands its samples to pytest-benchmark
- ceilings.py: the card's measured matmul TFLOP/s and copy GB/s; rates.py: times turned into rates
- environment.py: device, dtypes and the metadata written with every result
- providers.py: `Provider`, one implementation compared; measure.py: measuring one on one case;
  interpreter_child.py: our kernels checked in a Triton-interpreter child process (a CPU run without it)
- rows.py: `Row`, the one row type; results_file.py: the one JSON writer
- tables.py, plots.py: terminal tables and PNG plots
- command_run.py: `Command` and `CommandRun`, what every command does around its measurements
"""
