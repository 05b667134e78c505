"""pytest-benchmark suite: ours vs torch SDPA default vs FlexAttention (compiled) vs the eager reference,
one group per shape.

    pytest benchmarks/ --benchmark-only --benchmark-json=out.json
    pytest benchmarks/ --benchmark-only --benchmark-autosave      # then, later:
    pytest benchmarks/ --benchmark-only --benchmark-compare

pytest-benchmark times with the host clock (each call waits for the GPU). Use
`python -m benchmarks attention` for the GPU tables: CUDA events, every SDPA backend, ceilings.
On the CPU our kernels only run in Triton's interpreter (TRITON_INTERPRET=1), on the smallest shape,
as an error check whose time is not a speed.
"""

import pytest

from benchmarks.attention_inputs import AttentionCase, smallest_shape_cases
from benchmarks.attention_modes import Mode
from benchmarks.attention_providers import FLEX, OURS, REFERENCE, SDPA_DEFAULT, Provider, attention_providers
from benchmarks.attention_suite import ATTENTION_CASES
from benchmarks.pytest_measure import DEVICE, ON_CUDA, measure

CASES = [
    AttentionCase(batch, heads, n, d, mask)
    for batch, heads, n, d in ([(16, 16, 1024, 128), (4, 16, 4096, 128)] if ON_CUDA else [(2, 4, 128, 64)])
    for mask in ATTENTION_CASES.masks
]
SMALLEST = smallest_shape_cases(CASES)
PROVIDERS = attention_providers(DEVICE, [OURS, SDPA_DEFAULT, FLEX, REFERENCE])


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label.replace(" ", "-"))
def test_attention_forward(benchmark, case: AttentionCase, provider: Provider) -> None:
    measure(benchmark, case, Mode.FORWARD, provider, case in SMALLEST)
