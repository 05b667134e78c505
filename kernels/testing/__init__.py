"""Numerical parity checks for attention kernels and whole models, the ones our own tests use.

- `check_attention(out, q, k, v, **sdpa_kwargs)` / `assert_attention_close(...)`: an attention
  output against the float64 reference, by the pass rule of docs/design.md (max error at most
  `error_ratio` x PyTorch's own error in the same precision + `absolute_floor`, per `TOLERANCES`).
- `check_parity(actual, exact, baseline)` / `assert_parity(...)`: the same rule for any op.
- `compare_models(model_a, model_b, inputs)`: every submodule's output of one model against the
  other's, in execution order, to find the first layer that diverges.
- `AttentionSpec`: seeded recipes for attention inputs; `kernels.testing.strategies` draws them
  with hypothesis (imported only there: it is a test extra).

`python -m kernels.testing` runs the parity sweep (parity_sweep.py: our Triton attention on shapes x
dtypes x masks, pass or fail by the rule above), `--model PATH_OR_NAME` the layer-by-layer check of a
Hugging Face model (model_parity.py); parity_command.py is their body, shared with
`python -m benchmarks parity`, which also writes the results as JSON.
"""
from kernels.testing.attention import assert_attention_close, check_attention
from kernels.testing.attention_specs import AttentionArgs, AttentionSpec
from kernels.testing.dropout import dropout_disabled
from kernels.testing.errors import ErrorStats, measure_error
from kernels.testing.model_comparison import LayerDifference, ModelComparison, compare_models
from kernels.testing.parity import ParityResult, assert_parity, check_parity
from kernels.testing.tolerances import TOLERANCES, Tolerance

__all__ = [
    "check_attention",
    "assert_attention_close",
    "check_parity",
    "assert_parity",
    "ParityResult",
    "ErrorStats",
    "measure_error",
    "TOLERANCES",
    "Tolerance",
    "compare_models",
    "ModelComparison",
    "LayerDifference",
    "dropout_disabled",
    "AttentionSpec",
    "AttentionArgs",
]
