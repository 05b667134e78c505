"""pytest-benchmark suite of the masked attention forward: ours vs torch SDPA default vs FlexAttention
(compiled) vs the eager reference, with the masks of `python -m benchmarks masked`, one group per shape.

    pytest benchmarks/test_masked_benchmark.py --benchmark-only

Use `python -m benchmarks masked` for the GPU tables: CUDA events, every SDPA backend, ceilings.
FlexAttention compiles once per mask kind and shape, in the untimed first call (seconds on the CPU).
On the CPU our kernels only run in Triton's interpreter (TRITON_INTERPRET=1), on the smallest shape,
as an error check whose time is not a speed.
"""

import pytest

from benchmarks.attention_inputs import AttentionCase, smallest_shape_cases
from benchmarks.attention_modes import Mode
from benchmarks.attention_providers import FLEX, OURS, REFERENCE, SDPA_DEFAULT, Provider, attention_providers
from benchmarks.attention_suite import MASKED_CASES
from benchmarks.pytest_measure import DEVICE, ON_CUDA, measure

CASES = [
    AttentionCase(batch, heads, n, d, mask)
    for batch, heads, n, d in ([(8, 16, 2048, 128), (2, 16, 8192, 128)] if ON_CUDA else [(2, 4, 128, 64)])
    for mask in MASKED_CASES.masks
]
SMALLEST = smallest_shape_cases(CASES)
PROVIDERS = attention_providers(DEVICE, [OURS, SDPA_DEFAULT, FLEX, REFERENCE])


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label.replace(" ", "-"))
def test_masked_forward(benchmark, case: AttentionCase, provider: Provider) -> None:
    measure(benchmark, case, Mode.FORWARD, provider, case in SMALLEST)
