"""Tests of kernels.testing itself: the pass rule catches deliberately wrong attention, compare_models
finds the first layer that diverges in any output structure and leaves dropout as it found it, the
strategies build what their specs say, and `python -m benchmarks parity` reports and exits by the verdict."""
import contextlib
import copy
import io
import json
import math
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from torch import nn

import kernels
import reference
from benchmarks.__main__ import main as benchmarks_main
from kernels.testing import (
    AttentionSpec,
    Tolerance,
    assert_attention_close,
    assert_parity,
    check_attention,
    check_parity,
    compare_models,
)
from kernels.testing.attention_specs import DTYPES
from kernels.testing.parity_sweep import MASKS, parity_specs
from kernels.testing.strategies import attention_args

CPU = torch.device("cpu")


# --- the pass rule on any op -------------------------------------------------------------------


def _exact_and_baseline():
    exact = torch.linspace(-3, 3, 6, dtype=torch.float64).reshape(2, 3)
    return exact, (exact + 1e-4).float()  # the baseline is off by 1e-4 everywhere


def test_within_twice_the_baseline_error_passes():
    exact, baseline = _exact_and_baseline()
    result = assert_parity(exact.float() - 1.5e-4, exact, baseline)
    assert result.passed and result.dtype == torch.float32
    assert result.error_ratio == pytest.approx(1.5, rel=1e-3)
    assert result.allowed_max_abs_error == pytest.approx(2 * 1e-4 + 2e-5, rel=1e-3)
    assert repr(result).startswith("ParityResult(PASS, float32 [2, 3]: max |error| 0.00015 <= allowed")


def test_a_failure_names_the_worst_element_and_its_values():
    exact, baseline = _exact_and_baseline()
    actual = exact.float()
    actual[1, 2] += 0.5
    result = check_parity(actual, exact, baseline)
    assert not result.passed
    assert result.worst_index == (1, 2)
    assert (result.worst_actual, result.worst_expected) == (pytest.approx(3.5), pytest.approx(3.0))
    assert result.max_abs_error == pytest.approx(0.5) and result.mean_abs_error == pytest.approx(0.5 / 6)
    assert result.max_rel_error == pytest.approx(0.5 / 3)  # normwise: against the largest |exact|
    with pytest.raises(AssertionError, match=r"(?s)FAIL.*> allowed.*worst at \[1, 2\]: got 3\.5, expected 3"):
        assert_parity(actual, exact, baseline)


def test_non_finite_values_fail_unless_the_exact_result_holds_the_same():
    exact, baseline = _exact_and_baseline()
    actual = exact.float()
    actual[0, 1] = float("nan")
    result = check_parity(actual, exact, baseline)
    assert not result.passed and result.max_abs_error == math.inf and result.worst_index == (0, 1)

    exact[0, 1], baseline[0, 1], actual[0, 1] = -math.inf, -math.inf, -math.inf
    assert check_parity(actual, exact, baseline).passed


def test_wrong_dtype_fails_and_says_so():
    exact, baseline = _exact_and_baseline()
    result = check_parity(exact, exact, baseline)  # float64 where the float32 baseline says float32
    assert not result.passed and result.max_abs_error == 0
    assert "dtype torch.float64, expected torch.float32" in repr(result)


def test_shapes_must_match_and_unknown_dtypes_need_a_tolerance():
    exact, baseline = _exact_and_baseline()
    with pytest.raises(ValueError, match="shapes differ"):
        check_parity(exact.float().T, exact, baseline)
    with pytest.raises(ValueError, match="pass tolerance="):
        check_parity(exact, exact, exact)
    assert check_parity(exact, exact, exact, tolerance=Tolerance(error_ratio=2.0, absolute_floor=0.0)).passed


# --- deliberately wrong attention is caught ----------------------------------------------------


def attention_with_bug(bug, query, key, value, attn_mask=None, is_causal=False, enable_gqa=False):
    """Plain attention in the inputs' precision, with one named mistake (bug=None: none)."""
    group = query.size(1) // key.size(1)
    if bug == "gqa_head_modulo":  # query head h reads key head h % Hkv instead of h // group
        key, value = key.repeat(1, group, 1, 1), value.repeat(1, group, 1, 1)
    else:
        key, value = key.repeat_interleave(group, 1), value.repeat_interleave(group, 1)
    scale = 1.0 if bug == "missing_scale" else query.size(-1) ** -0.5
    scores = (query @ key.transpose(-2, -1)).float() * scale  # (B, H, Nq, Nk)
    keep = attn_mask
    if is_causal:
        keep = torch.ones(scores.shape[-2:], dtype=torch.bool).tril(1 if bug == "causal_off_by_one" else 0)
    if keep is not None:
        keep = keep.transpose(-2, -1) if bug == "transposed_mask" else keep
        scores = scores.masked_fill(~keep, -math.inf)
    return scores.softmax(-1).nan_to_num(0.0).to(value.dtype) @ value


def _spec(heads_q=2, heads_kv=2, n=24, mask="none", mask_shape=None):
    seed = torch.initial_seed()  # the test's fresh seed (conftest prints it)
    return AttentionSpec(1, heads_q, heads_kv, n, n, 64, 64, torch.float16, mask, mask_shape, seed=seed)


WRONG_ATTENTION_CASES = {
    "missing_scale": dict(),
    "transposed_mask": dict(mask="bool", mask_shape="shared_2d"),
    "causal_off_by_one": dict(mask="causal"),
    "gqa_head_modulo": dict(heads_q=4, heads_kv=2),
}


@pytest.mark.parametrize("bug", list(WRONG_ATTENTION_CASES))
def test_wrong_attention_fails_loudly_where_the_right_one_passes(bug):
    args = _spec(**WRONG_ATTENTION_CASES[bug]).make()
    inputs = (args.query, args.key, args.value)
    assert_attention_close(attention_with_bug(None, *inputs, **args.kwargs), *inputs, **args.kwargs)
    wrong = attention_with_bug(bug, *inputs, **args.kwargs)
    assert check_attention(wrong, *inputs, **args.kwargs).error_ratio > 10
    with pytest.raises(AssertionError, match=r"(?s)FAIL, float16 .* > allowed .*worst at"):
        assert_attention_close(wrong, *inputs, **args.kwargs)


def test_check_attention_refuses_dropout():
    args = _spec().make()
    with pytest.raises(ValueError, match="dropout_p must be 0.0"):
        check_attention(args.query, args.query, args.key, args.value, dropout_p=0.1)


# --- compare_models ----------------------------------------------------------------------------


class TinyBlock(nn.Module):
    """embed -> attention (any class with the course's signature) -> residual, norm -> head."""

    def __init__(self, attention_class, d_model=32, num_heads=4):
        super().__init__()
        self.embed = nn.Linear(d_model, d_model)
        self.attention = attention_class(d_model, num_heads)
        self.dropout = nn.Dropout(0.5)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 8)

    def forward(self, x, mask=None):
        x = self.embed(x)
        x = self.norm(x + self.dropout(self.attention(x, x, x, mask)))
        return self.head(x)


BLOCK_ORDER = [
    "embed",
    "attention.query_linear",
    "attention.key_linear",
    "attention.value_linear",
    "attention.output_linear",
    "attention",
    "dropout",
    "norm",
    "head",
    "(model)",
]


def test_reference_and_fused_attention_models_agree_layer_by_layer():
    ours = TinyBlock(kernels.MultiHeadAttention).eval()
    theirs = TinyBlock(reference.MultiHeadAttention).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 13, 32)
    padding = torch.ones(2, 1, 1, 13)
    padding[1, ..., 9:] = 0
    with kernels.record_backends() as ran:
        comparison = compare_models(theirs, ours, (x, padding))
    assert ran == ["triton"]
    assert [layer.label for layer in comparison.layers] == BLOCK_ORDER
    assert comparison.first_divergence(1e-5) is None
    assert comparison.layers[5].module_type == "reference.MultiHeadAttention -> kernels.MultiHeadAttention"
    assert comparison.layers[5].error.max_abs_error > 0  # a different kernel really ran
    assert not comparison.only_in_a and not comparison.only_in_b
    header = str(comparison).splitlines()[1]
    assert header.startswith("module output") and header.endswith("worst element: a -> b")


def test_first_divergence_names_the_perturbed_layer():
    model = TinyBlock(reference.MultiHeadAttention).eval()
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        perturbed.norm.weight[3] += 0.1
    comparison = compare_models(model, perturbed, torch.randn(2, 7, 32))
    diverged = comparison.first_divergence(1e-6)
    assert diverged.module == "norm" and diverged.error.worst_index[-1] == 3
    assert all(layer.error.max_abs_error == 0 for layer in comparison.layers[:7])
    assert comparison.first_divergence(1.0) is None
    assert "norm" in str(comparison) and repr(comparison) == str(comparison)


class Structured(nn.Module):
    """Nested tuple/dict outputs, a module called twice, a non-tensor output, optional extras."""

    def __init__(self, extra_output=False, wider=False):
        super().__init__()
        self.linear = nn.Linear(4, 5 if wider else 4)
        self.extra_output = extra_output

    def forward(self, x, scale=1.0):
        y = self.linear(x) * scale
        z = self.linear(y[..., :4])
        extras = (z.sum(),) if self.extra_output else ()
        return {"logits": z, "pair": (y, None, *extras), "count": 3}


def test_nested_outputs_and_repeated_calls_are_labelled():
    model = Structured()
    comparison = compare_models(model, copy.deepcopy(model), torch.randn(3, 4))
    labels = [layer.label for layer in comparison.layers]
    assert labels == ["linear", "linear (call 2)", "(model)['logits']", "(model)['pair'][0]"]


def test_outputs_only_one_model_has_are_listed_and_shape_changes_diverge():
    x = torch.randn(3, 4)
    comparison = compare_models(Structured(), Structured(extra_output=True), x)
    assert comparison.only_in_b == ("(model)['pair'][2]",) and not comparison.only_in_a

    comparison = compare_models(Structured(), Structured(wider=True), x)
    diverged = comparison.first_divergence(math.inf)
    assert diverged.label == "linear" and diverged.problem == "shape [3, 5] in model_b, [3, 4] in model_a"
    assert "shape [3, 5] in model_b" in str(comparison)


def test_hugging_face_model_outputs_are_read_by_key():
    modeling_outputs = pytest.importorskip("transformers.modeling_outputs")

    class HuggingFaceStyle(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4)

        def forward(self, x):
            hidden = self.linear(x)
            return modeling_outputs.BaseModelOutput(last_hidden_state=hidden, hidden_states=(x, hidden))

    model = HuggingFaceStyle()
    comparison = compare_models(model, copy.deepcopy(model), torch.randn(2, 4))
    assert [layer.label for layer in comparison.layers] == [
        "linear",
        "(model)['last_hidden_state']",
        "(model)['hidden_states'][0]",
        "(model)['hidden_states'][1]",
    ]


def test_outputs_are_kept_as_they_left_the_module_before_in_place_ops():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(inplace=True))
    assert compare_models(model, copy.deepcopy(model), torch.randn(3, 4)).first_divergence(0.0) is None


@pytest.mark.parametrize("form", ["tensor", "tuple", "dict"])
def test_inputs_as_a_tensor_a_tuple_or_keyword_arguments(form):
    x = torch.randn(3, 4)
    inputs = {"tensor": x, "tuple": (x, 2.0), "dict": {"x": x, "scale": 2.0}}[form]
    model = Structured()
    assert compare_models(model, copy.deepcopy(model), inputs).first_divergence(0.0) is None


def test_inputs_of_another_kind_are_refused():
    model = Structured()
    with pytest.raises(TypeError, match="a tensor, a tuple of positional arguments or a dict"):
        compare_models(model, model, [torch.randn(3, 4)])


class WithDropouts(nn.Module):
    def __init__(self, fail=False):
        super().__init__()
        self.attention = nn.MultiheadAttention(16, 2, dropout=0.3, batch_first=True)
        self.dropout = nn.Dropout(0.5)
        self.fail = fail

    def forward(self, x):
        out = self.dropout(self.attention(x, x, x)[0])
        if self.fail:
            raise RuntimeError("model_b broke")
        return out


def _dropout_settings(model):
    return model.training, model.dropout.p, model.attention.dropout


def test_train_mode_is_compared_without_dropout_and_restored():
    model = WithDropouts().train()
    twin = copy.deepcopy(model)
    comparison = compare_models(model, twin, torch.randn(2, 5, 16))
    assert comparison.first_divergence(0.0) is None  # any dropout left on would differ at random
    assert [layer.label for layer in comparison.layers] == ["attention[0]", "attention[1]", "dropout", "(model)"]
    assert _dropout_settings(model) == _dropout_settings(twin) == (True, 0.5, 0.3)


def test_dropout_and_hooks_are_restored_when_a_model_raises():
    model, failing = WithDropouts().train(), WithDropouts(fail=True).train()
    with pytest.raises(RuntimeError, match="model_b broke"):
        compare_models(model, failing, torch.randn(2, 5, 16))
    for each in (model, failing):
        assert _dropout_settings(each) == (True, 0.5, 0.3)
        assert not any(module._forward_hooks for module in each.modules())


# --- strategies --------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(args=attention_args())
def test_strategies_build_what_the_spec_describes(args):
    spec = args.spec
    assert args.query.shape == (spec.batch, spec.heads_q, spec.n_q, spec.head_dim)
    assert args.key.shape == (spec.batch, spec.heads_kv, spec.n_k, spec.head_dim)
    assert args.value.shape == (spec.batch, spec.heads_kv, spec.n_k, spec.head_dim_v)
    assert {t.dtype for t in (args.query, args.key, args.value)} == {spec.dtype}
    layout_holds = {
        "contiguous": lambda t: t.is_contiguous(),
        "bnhd_view": lambda t: t.transpose(1, 2).is_contiguous(),
        "strided_head_dim": lambda t: t.stride(-1) == 2,
    }[spec.layout]
    assert all(layout_holds(t) for t in (args.query, args.key, args.value))
    assert args.kwargs["is_causal"] == (spec.mask == "causal")
    assert args.kwargs["enable_gqa"] == (spec.heads_q != spec.heads_kv)
    mask = args.kwargs.get("attn_mask")
    assert (mask is not None) == (spec.mask in ("bool", "additive"))
    if mask is not None:
        assert mask.dtype == (torch.bool if spec.mask == "bool" else spec.dtype)
        scores = (spec.batch, spec.heads_q, spec.n_q, spec.n_k)
        assert torch.broadcast_shapes(mask.shape, scores) == scores
    assert torch.equal(spec.make().query, args.query)  # the seed fixes the values
    # valid by our contract (torch SDPA itself rejects a 1-D mask, so the reference backend checks it)
    kernels.attention(args.query, args.key, args.value, backend="reference", **args.kwargs)


def test_specs_refuse_what_they_cannot_build():
    spec = _spec()
    with pytest.raises(ValueError, match="mask_shape must be one of"):
        replace(spec, mask="bool")
    with pytest.raises(ValueError, match="layout must be one of"):
        replace(spec, layout="column_major")
    with pytest.raises(ValueError, match="multiple of heads_kv"):
        replace(spec, heads_q=3)


def test_importing_the_toolkit_does_not_import_hypothesis():
    code = "import sys, kernels.testing; sys.exit('hypothesis' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


# --- python -m benchmarks parity ---------------------------------------------------------------


def test_the_quick_sweep_covers_every_dtype_and_mask():
    specs = parity_specs(CPU, quick=True)
    assert {spec.dtype for spec in specs} == set(DTYPES)
    assert {(spec.mask, spec.mask_shape) for spec in specs} == set(MASKS)


def _run_parity(tmp_path, monkeypatch, specs):
    monkeypatch.setattr("kernels.testing.parity_command.parity_specs", lambda device, quick: specs)
    screen = io.StringIO()
    with contextlib.redirect_stdout(screen):
        exit_code = benchmarks_main(["parity", "--quick", "--device", "cpu", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "parity.json").read_text()) if exit_code != 2 else None
    return exit_code, results, screen.getvalue()


def test_parity_command_passes_our_kernel_in_the_interpreter(tmp_path, monkeypatch):
    small = dict(n_q=17, n_k=33, head_dim=32, head_dim_v=32)
    specs = [replace(spec, **small) for spec in parity_specs(CPU, quick=True)[:6]]
    exit_code, results, screen = _run_parity(tmp_path, monkeypatch, specs)
    assert exit_code == 0
    assert "interpreter" in results["settings"]["kernel"] and "interpreter" in screen
    assert [row["case"] for row in results["rows"]] == [spec.label for spec in specs]
    assert all(row["passed"] and row["result"]["error_ratio"] < 2 for row in results["rows"])
    assert f"{len(specs)} of {len(specs)} cases pass" in screen


def test_parity_command_fails_a_wrong_kernel_and_exits_non_zero(tmp_path, monkeypatch):
    def missing_scale(*args, backend, **kwargs):
        return attention_with_bug("missing_scale", *args, **kwargs)

    monkeypatch.setattr(kernels, "attention", missing_scale)
    specs = [_spec(), _spec(mask="causal")]
    exit_code, results, screen = _run_parity(tmp_path, monkeypatch, specs)
    assert exit_code == 1
    assert not any(row["passed"] for row in results["rows"])
    assert "FAIL" in screen and "worst at" in screen and "0 of 2 cases pass" in screen


def test_parity_command_says_when_the_kernels_cannot_run(tmp_path, monkeypatch):
    monkeypatch.setattr("kernels.testing.parity_command.triton_runs_on", lambda device: False)
    exit_code, _, screen = _run_parity(tmp_path, monkeypatch, [])
    assert exit_code == 2
    assert "cannot run" in screen and "TRITON_INTERPRET=1" in screen
