"""The Triton path's host time per call, level by level, without a GPU (see host_only.py).

Each level is timed on its own, from the outermost in: `kernels.attention`; the custom op's body, as an
inference call on plain tensors runs it (without `torch.ops`: kernels/shared/custom_ops.py,
runs_without_dispatcher); our launcher; the `kernel[grid](...)` calls the launcher makes ("kernel call") (Triton's
autotuner and heuristics, then the binding); Triton's binding alone. A level's own time is its median
minus the next level's. Validation and the backend choice are timed apart too: they are parts of the
outermost level's own time; and so is the op called through `torch.ops` (what a call that needs a
gradient, or one traced by torch.compile or a dispatch mode, pays instead of the body alone).
"""
from collections.abc import Callable, Iterator

import torch

import kernels
import reference
from benchmarks.harness.measure import measure_row
from benchmarks.harness.providers import Provider
from benchmarks.harness.rows import Row
from benchmarks.harness.timing import Stopwatch
from benchmarks.overhead.cases import OverheadCase
from benchmarks.overhead.host_only import host_only_launches, recording_kernel_calls
from kernels.sdpa.custom_ops import attention_forward_body
from kernels.sdpa.triton.common import empty_attention_output
from kernels.sdpa.triton.decode import launch_decode, plan_num_splits
from kernels.sdpa.triton.forward import launch_forward
from kernels.sdpa.validation import check_attention_inputs, check_attention_kernel_limits
from kernels.shared.backends import note_backend_ran, resolve_backend

LEVELS = ("kernels.attention", "custom op", "launcher", "kernel call", "Triton binding")
PARTS = ("validation", "backend choice", "torch.ops call")
OWN_TIME = {
    "kernels.attention": "validation, backend choice, the functional wrapper",
    "custom op": "the op's body, no torch.ops dispatch (inference): output allocation, split plan",
    "launcher": "our launcher's Python: mask arguments and key range, flags, grid",
    "kernel call": "Triton's autotuner (key, cache lookup) and heuristics",
    "Triton binding": "Triton's binder and specialisation, kernel cache key, grid",
    "validation": "check_attention_inputs + check_attention_kernel_limits",
    "backend choice": "resolve_backend + note_backend_ran",
    "torch.ops call": "the custom op through torch.ops, its autograd layer included (training, compile)",
}


def _level_calls(case: OverheadCase, dtype: torch.dtype) -> dict[str, Callable[[], object]]:
    """What each level and part runs for `case`; call inside `host_only_launches`."""
    inputs = case.inputs(dtype)
    query, key, value = inputs["query"], inputs["key"], inputs["value"]
    mask, is_causal = inputs.get("attn_mask"), inputs.get("is_causal", False)
    batch, heads, n_queries, head_dim = query.shape
    expanded = None if mask is None else mask.expand(batch, heads, n_queries, key.shape[2])
    scale = reference.default_scale(head_dim)
    num_splits = plan_num_splits(query, key, is_causal, None)
    out = empty_attention_output(query, value)

    def launcher():
        if num_splits > 1:
            return launch_decode(query, key, value, expanded, scale, num_splits, out=out)
        return launch_forward(query, key, value, expanded, is_causal, scale, out=out)

    launcher()  # the autotuners pick their tiles here, so that the recorded calls hit their caches
    with recording_kernel_calls() as (kernel_calls, binder_calls):
        launcher()
    op = torch.ops.triton_attention_kernels.attention_forward
    op_arguments = (query, key, value, expanded, is_causal, scale, 0.0, None, False)
    return {
        "kernels.attention": lambda: kernels.attention(**inputs),
        "custom op": lambda: attention_forward_body(*op_arguments),
        "launcher": launcher,
        "kernel call": lambda: [call() for call in kernel_calls],
        "Triton binding": lambda: [call() for call in binder_calls],
        "validation": lambda: (check_attention_inputs(query, key, value, mask, 0.0, is_causal, None, False),
                               check_attention_kernel_limits(query, value)),
        "backend choice": lambda: (resolve_backend(None, query.device), note_backend_ran("triton")),
        "torch.ops call": lambda: op(*op_arguments),
    }


def _provider(level: str) -> Provider:
    backend = "triton" if level == "kernels.attention" else None
    return Provider(level, f"{level}: {OWN_TIME[level]}", lambda call: call(), kernels_backend=backend)


def _with_own_times(rows: list[Row]) -> list[Row]:
    """Each level's own time (its median minus the next level's); a part's is its median."""
    medians = {row.provider: row["median_us"] for row in rows}
    own = []
    for row in rows:
        deeper = LEVELS[LEVELS.index(row.provider) + 1] if row.provider in LEVELS[:-1] else None
        if row["median_us"] is None or (deeper is not None and medians.get(deeper) is None):
            own.append(row)
        else:
            own.append(row.with_values(own_us=row["median_us"] - (medians[deeper] if deeper else 0.0)))
    return own


def measure_triton_path(cases: list[OverheadCase], dtype: torch.dtype, stopwatch: Stopwatch,
                        on_step: Callable[[str], None]) -> Iterator[list[Row]]:
    """Per case, a row per level and part (see the module docstring)."""
    with torch.no_grad(), host_only_launches():
        for case in cases:
            calls = _level_calls(case, dtype)
            rows = []
            for level in (*LEVELS, *PARTS):
                on_step(f"{case.label}: {level}")
                call, provider = calls[level], _provider(level)
                rows.append(measure_row(case, provider, True, stopwatch,
                                        lambda call=call, provider=provider: provider.checked(call),
                                        lambda call=call: [call],
                                        lambda measured: {"median_us": measured.timing.median_ms * 1e3}))
            yield _with_own_times(rows)
