"""How precise float32 attention is with each way a GPU can compute its dots, emulated on the CPU:
the study behind the fp32 default (`python -m benchmarks.fp32_precision`)."""
