"""What the transformer benchmark runs: the course's Transformer forward (ours, torch's, the reference
build) and KV-cached greedy decoding with DecoderOnlyLM (our kernels vs the same model on torch SDPA).

Each provider's `call` takes the case's inputs and returns the callable that is timed.
"""
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import kernels
from benchmarks.harness.providers import Provider, ours_provider
from benchmarks.transformer.cases import DecodeCase, ForwardCase
from kernels.models import DecoderOnlyLM, ModelConfig

COURSE = dict(d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048)
TORCH = "torch"
REFERENCE = "reference"


# The course's Transformer forward --------------------------------------------------------------------


def forward_models(device: torch.device, dtype: torch.dtype) -> tuple[nn.Transformer, kernels.Transformer]:
    """torch.nn.Transformer and kernels.Transformer at the course's size, same weights, eval mode."""
    torch.manual_seed(0)
    stock = nn.Transformer(**COURSE, batch_first=True).to(device, dtype).eval()
    ours = kernels.Transformer(**COURSE, batch_first=True).to(device, dtype).eval()
    ours.load_state_dict(stock.state_dict())
    return stock, ours


def forward_inputs(case: ForwardCase, device: torch.device, dtype: torch.dtype) -> dict:
    """Source and target embeddings (B, N, d_model) and a causal target mask, as in seq2seq training."""
    generator = torch.Generator(device).manual_seed(case.batch * 100_003 + case.seq_len)
    src, tgt = (torch.randn(case.batch, case.seq_len, COURSE["d_model"], generator=generator, device=device,
                            dtype=dtype) for _ in range(2))
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(case.seq_len, device=device, dtype=dtype)
    return dict(src=src, tgt=tgt, tgt_mask=tgt_mask, tgt_is_causal=True)


def _forward(model: nn.Module, backend: str | None = None) -> Callable[[dict], Callable[[], torch.Tensor]]:
    """The model's forward on the inputs, on `backend` (None: the device's default)."""

    def call(inputs: dict) -> Callable[[], torch.Tensor]:
        if backend is None:
            return lambda: model(**inputs)

        def on_backend() -> torch.Tensor:
            with kernels.use_backend(backend):
                return model(**inputs)
        return on_backend

    return call


def forward_providers(stock: nn.Transformer, ours: kernels.Transformer, device: torch.device) -> list[Provider]:
    return [
        ours_provider(_forward(ours), device),
        Provider(TORCH, "torch.nn.Transformer (its fast paths on)", _forward(stock)),
        Provider(REFERENCE, "kernels.Transformer, reference backend", _forward(ours, REFERENCE),
                 kernels_backend=REFERENCE),
    ]


# KV-cached decoding ------------------------------------------------------------------------------


def decode_model(cases: list[DecodeCase], device: torch.device, dtype: torch.dtype) -> DecoderOnlyLM:
    """DecoderOnlyLM at the course's size (d_model 512, 8 heads, 6 layers), long enough for every case."""
    longest = max(case.context + case.new_tokens for case in cases)
    config = ModelConfig(vocab_size=cases[0].vocab_size, n_encoder_layers=0, n_decoder_layers=6, dropout=0.0,
                         max_seq_len=longest)
    torch.manual_seed(0)
    return DecoderOnlyLM(config).to(device, dtype).eval()


@dataclass(frozen=True)
class DecodeInputs:
    model: DecoderOnlyLM
    case: DecodeCase
    prompt: torch.Tensor  # (B, context) token ids


def decode_inputs(model: DecoderOnlyLM, case: DecodeCase, device: torch.device) -> DecodeInputs:
    generator = torch.Generator(device).manual_seed(case.context)
    prompt = torch.randint(3, case.vocab_size, (case.batch, case.context), generator=generator, device=device)
    return DecodeInputs(model, case, prompt)


def _prefill_then_decode(backend: str) -> Callable[[DecodeInputs], Callable[[], torch.Tensor]]:
    """Allocate the cache and prefill the prompt (not timed); the timed callable crops the cache back
    to the prompt and greedy-decodes `new_tokens` tokens, one model call each."""

    def call(inputs: DecodeInputs) -> Callable[[], torch.Tensor]:
        model, case = inputs.model, inputs.case
        with kernels.use_backend(backend):
            cache = model.new_cache(case.batch, case.context + case.new_tokens)
            first = model(inputs.prompt, cache=cache, last_only=True).argmax(dim=-1)  # (B, 1)

        def decode() -> torch.Tensor:
            cache.crop(case.context)
            tokens = [first]
            with kernels.use_backend(backend):
                for _ in range(case.new_tokens):
                    tokens.append(model(tokens[-1], cache=cache, last_only=True).argmax(dim=-1))
            return torch.cat(tokens, dim=1)  # (B, 1 + new_tokens)

        return decode

    return call


def decode_providers(device: torch.device) -> list[Provider]:
    return [
        ours_provider(_prefill_then_decode("triton"), device),
        Provider(TORCH, "same model, torch SDPA backend", _prefill_then_decode(TORCH), kernels_backend=TORCH),
    ]
