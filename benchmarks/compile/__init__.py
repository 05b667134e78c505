"""`python -m benchmarks compile`: what the compiler makes of every shipped kernel, without a GPU.

Each kernel launch is recorded from the real launchers (so constexprs, heuristics and argument
specialisation are a real launch's), compiled for a GPU target with `triton.compile`, and read back
from ptxas and the SASS: registers, spills, shared memory, occupancy, MMA and TMA instructions.
See README.md for how to read the report.
"""
