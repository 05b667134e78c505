"""kernels.Transformer: torch.nn.Transformer's outputs, weights and masks, attention in the kernel."""
import pytest
import torch
from torch import nn

import kernels
from support.devices import DEVICE

CONFIG = dict(d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=64, dropout=0.0)


def paired_models(batch_first):
    torch.manual_seed(0)
    stock = nn.Transformer(**CONFIG, batch_first=batch_first).to(DEVICE)
    fused = kernels.Transformer(**CONFIG, batch_first=batch_first).to(DEVICE)
    fused.load_state_dict(stock.state_dict())
    stock.encoder.use_nested_tensor = False  # torch's nested path zeroes padded positions; compare like for like
    return stock, fused


def inputs(batch_first, n_src=11, n_tgt=7, batch=3):
    src, tgt = torch.randn(batch, n_src, 32, device=DEVICE), torch.randn(batch, n_tgt, 32, device=DEVICE)
    if not batch_first:
        src, tgt = src.transpose(0, 1), tgt.transpose(0, 1)
    src_padding = torch.zeros(batch, n_src, dtype=torch.bool, device=DEVICE)
    src_padding[0, -3:] = True  # True = padding, torch's convention
    tgt_padding = torch.zeros(batch, n_tgt, dtype=torch.bool, device=DEVICE)
    tgt_padding[1, -2:] = True
    masks = dict(
        tgt_mask=nn.Transformer.generate_square_subsequent_mask(n_tgt, device=DEVICE),
        src_key_padding_mask=src_padding,
        tgt_key_padding_mask=tgt_padding,
        memory_key_padding_mask=src_padding,
    )
    return src, tgt, masks


def test_defaults_are_the_course_transformer():
    model = kernels.Transformer()
    assert (model.d_model, model.nhead, len(model.encoder.layers), len(model.decoder.layers)) == (512, 8, 6, 6)
    assert set(model.state_dict()) == set(nn.Transformer().state_dict())


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("mode", ["eval_no_grad", "train"])
def test_same_outputs_as_torch_transformer(batch_first, mode):
    stock, fused = paired_models(batch_first)
    src, tgt, masks = inputs(batch_first)
    for model in (stock, fused):
        model.train(mode == "train")
    with torch.set_grad_enabled(mode == "train"), kernels.record_backends() as ran:
        out = fused(src, tgt, **masks)
    expected = stock(src, tgt, **masks)
    # 2 encoder self-attentions, 2 decoder self- and 2 cross-attentions: all in the kernel
    assert ran.count("triton") == 6
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=2e-5)


def test_a_causal_source_mask_and_memory_mask():
    stock, fused = paired_models(batch_first=True)
    src, tgt, _ = inputs(batch_first=True, n_src=9, n_tgt=9)
    causal = nn.Transformer.generate_square_subsequent_mask(9, device=DEVICE)
    with torch.no_grad():
        out = fused.eval()(src, tgt, src_mask=causal, tgt_mask=causal, memory_mask=causal)
        expected = stock.eval()(src, tgt, src_mask=causal, tgt_mask=causal, memory_mask=causal)
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=2e-5)


def test_gradients_match():
    stock, fused = paired_models(batch_first=True)
    src, tgt, masks = inputs(batch_first=True)
    for model in (stock, fused):
        model(src, tgt, **masks).square().mean().backward()
    for (name, a), (_, b) in zip(stock.named_parameters(), fused.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)
