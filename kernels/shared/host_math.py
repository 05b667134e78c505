"""Integer helpers for launchers' host code.

`triton.cdiv` and `triton.next_power_of_2` are `constexpr_function`s in Triton 3.6: called from the host,
each one unwraps its arguments through Triton's JIT machinery, several microseconds a call, and a
launcher calls them a handful of times per launch. These are the same arithmetic in plain Python.
"""


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()
