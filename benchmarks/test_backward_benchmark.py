"""pytest-benchmark suite of the attention backward: ours vs torch SDPA default vs the eager reference,
backward alone (`torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)`, the forward outside
the timing) and forward + backward, one group per shape and mode.

    pytest benchmarks/test_backward_benchmark.py --benchmark-only

Use `python -m benchmarks backward` for the GPU tables: CUDA events, every SDPA backend, ceilings.
On the CPU our kernels only run in Triton's interpreter (TRITON_INTERPRET=1), on the smallest shape,
as an error check of dq, dk, dv whose time is not a speed.
"""

import pytest

from benchmarks.attention_inputs import AttentionCase, smallest_shape_cases
from benchmarks.attention_modes import Mode
from benchmarks.attention_providers import OURS, REFERENCE, SDPA_DEFAULT, Provider, attention_providers
from benchmarks.attention_suite import ATTENTION_CASES
from benchmarks.pytest_measure import DEVICE, ON_CUDA, measure

CASES = [
    AttentionCase(batch, heads, n, d, mask)
    for batch, heads, n, d in ([(16, 16, 1024, 128), (4, 16, 4096, 128)] if ON_CUDA else [(2, 4, 64, 64)])
    for mask in ATTENTION_CASES.masks
]
SMALLEST = smallest_shape_cases(CASES)
PROVIDERS = attention_providers(DEVICE, [OURS, SDPA_DEFAULT, REFERENCE])


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
@pytest.mark.parametrize("mode", [Mode.BACKWARD, Mode.FORWARD_BACKWARD], ids=lambda m: m.value)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label.replace(" ", "-"))
def test_attention_backward(benchmark, case: AttentionCase, mode: Mode, provider: Provider) -> None:
    measure(benchmark, case, mode, provider, case in SMALLEST)
