"""Times turned into rates: TFLOP/s for compute-bound work, GB/s (bytes read + written) for memory-bound."""


def tflops_per_second(flops: int, milliseconds: float) -> float:
    return flops / (milliseconds * 1e-3) / 1e12


def gigabytes_per_second(bytes_moved: int, milliseconds: float) -> float:
    return bytes_moved / (milliseconds * 1e-3) / 1e9
