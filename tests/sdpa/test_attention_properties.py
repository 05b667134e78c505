"""Property test: any valid combination of shape, GQA, dtype, mask, causal and layout matches the
float64 reference. Hypothesis finds the combinations the hand-picked cases miss; the strategy is the
public one users get (kernels.testing.strategies)."""
from hypothesis import HealthCheck, given, settings

from kernels.testing import assert_attention_close
from kernels.testing.strategies import attention_args
from test_attention_forward import run_triton
from support.devices import DEVICE


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=attention_args(device=DEVICE))
def test_any_valid_input_matches_reference(args):
    out = run_triton(args.query, args.key, args.value, **args.kwargs)
    assert_attention_close(out, args.query, args.key, args.value, **args.kwargs)
