"""replace_attention: swapped models compute the same outputs, on the fused kernel, in every mode."""
import copy

import pytest
import torch
from torch import nn

import kernels
import reference
from kernels.nn.torch_multihead_attention import MultiheadAttention
from kernels.nn.patching import replace_attention
from kernels.testing import compare_models
from support.devices import DEVICE

D_MODEL, HEADS, BATCH, N = 32, 2, 3, 9


def encoder_model():
    """An even num_heads, batch_first encoder: torch's fast paths apply to it in eval + no_grad.
    No dropout, so training mode is deterministic too."""
    layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, dim_feedforward=48, dropout=0.0, batch_first=True, device=DEVICE)
    return nn.Sequential(nn.TransformerEncoder(layer, num_layers=2), nn.Linear(D_MODEL, 5, device=DEVICE))


class CourseModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = reference.MultiHeadAttention(D_MODEL, HEADS)
        self.head = nn.Linear(D_MODEL, 5)

    def forward(self, x, mask=None):
        return self.head(self.attention(x, x, x, mask))


def swapped_copy(model):
    fused = copy.deepcopy(model)
    names = replace_attention(fused)
    return fused, names


def assert_same_and_fused(model, fused, inputs, where=None):
    """Outputs agree (at `where` only, if given) and the Triton kernel ran. No hooks are attached
    here: compare_models' hooks would themselves switch torch's fast path off."""
    with torch.no_grad():
        expected = model(*inputs)
        with kernels.record_backends() as ran:
            out = fused(*inputs)
    assert "triton" in ran
    if where is not None:
        expected, out = expected[where], out[where]
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=2e-5)


def left_aligned_padding():
    padding = torch.zeros(BATCH, N, dtype=torch.bool, device=DEVICE)
    padding[0, 6:] = True
    padding[2, 4:] = True
    return padding


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")  # torch's own encoder, unswapped
@pytest.mark.parametrize("training", [False, True])
def test_encoder_keeps_outputs_and_runs_the_kernel(training):
    model = encoder_model().train(training)
    fused, names = swapped_copy(model)
    assert names == ["0.layers.0.self_attn", "0.layers.1.self_attn"]
    assert all(type(layer.self_attn) is MultiheadAttention for layer in fused[0].layers)
    x = torch.randn(BATCH, N, D_MODEL, device=DEVICE)
    padding = left_aligned_padding()
    # without a padding mask torch takes the layer fast path, with one the nested-tensor path
    assert_same_and_fused(model, fused, (x,))
    encoder, fused_encoder = model[0], fused[0]
    # torch's nested path returns zeros at padded positions; compare the others
    assert_same_and_fused(encoder, fused_encoder, (x, None, padding), where=~padding)
    comparison = compare_models(model, fused, (x,))
    assert comparison.first_divergence(2e-5) is None, comparison


def test_decoder_layer_with_causal_mask():
    model = nn.TransformerDecoderLayer(D_MODEL, HEADS, dim_feedforward=48, device=DEVICE).eval()
    fused, names = swapped_copy(model)
    assert names == ["self_attn", "multihead_attn"]
    target = torch.randn(N, BATCH, D_MODEL, device=DEVICE)
    memory = torch.randn(N + 4, BATCH, D_MODEL, device=DEVICE)
    causal = nn.Transformer.generate_square_subsequent_mask(N, device=DEVICE)
    assert_same_and_fused(model, fused, (target, memory, causal, None, None, None, True))
    comparison = compare_models(model, fused, dict(tgt=target, memory=memory, tgt_mask=causal, tgt_is_causal=True))
    assert comparison.first_divergence(2e-5) is None, comparison


def test_course_module_is_swapped_for_the_fused_one():
    model = CourseModel().to(DEVICE).eval()
    fused, names = swapped_copy(model)
    assert names == ["attention"] and type(fused.attention) is kernels.MultiHeadAttention
    x = torch.randn(BATCH, N, D_MODEL, device=DEVICE)
    mask = torch.tril(torch.ones(N, N, device=DEVICE))
    assert_same_and_fused(model, fused, (x, mask))
    comparison = compare_models(model, fused, (x, mask))
    assert comparison.first_divergence(2e-5) is None, comparison


def test_weights_dtype_device_mode_and_frozen_flags_are_kept():
    model = nn.ModuleDict(dict(
        torch_attention=nn.MultiheadAttention(D_MODEL, HEADS, kdim=12, add_bias_kv=True, dtype=torch.float64),
        course=reference.MultiHeadAttention(D_MODEL, HEADS).double(),
    )).to(DEVICE)
    model.torch_attention.eval()  # a fresh module would be in training mode
    model.course.eval()
    model.course.query_linear.weight.requires_grad_(False)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    replace_attention(model)
    assert type(model.torch_attention) is MultiheadAttention and type(model.course) is kernels.MultiHeadAttention
    assert not model.torch_attention.training and not model.course.training
    assert not model.course.query_linear.weight.requires_grad and model.course.key_linear.weight.requires_grad
    after = model.state_dict()
    assert list(after) == list(before)
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor) and after[name].dtype == torch.float64
        assert after[name].device.type == DEVICE


def test_second_call_swaps_nothing_and_shared_modules_stay_shared():
    shared = nn.MultiheadAttention(D_MODEL, HEADS, device=DEVICE)
    model = nn.ModuleDict(dict(a=shared, b=nn.ModuleList([shared])))
    assert replace_attention(model) == ["a", "b.0"]
    assert model.a is model.b[0]
    assert replace_attention(model) == []


def test_bad_models_raise_clear_errors():
    with pytest.raises(ValueError, match="from_torch"):
        replace_attention(nn.MultiheadAttention(D_MODEL, HEADS))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        replace_attention("model")
