"""The transformer benchmark's cases: the course's Transformer forward (`ForwardCase`) and KV-cached greedy
decoding (`DecodeCase`), each naming its part of the JSON, and the cases of each part per device."""
from dataclasses import dataclass

import torch

_CPU_VOCAB, _GPU_VOCAB = 1000, 32000
MEASURED_FIELDS = ("tokens_per_s", "peak_memory_bytes", "max_abs_diff", "agreement")


@dataclass(frozen=True)
class ForwardCase:
    batch: int
    seq_len: int  # source and target length

    part = "forward"
    measured_fields = MEASURED_FIELDS

    @property
    def label(self) -> str:
        return f"{self.batch}x{self.seq_len}"

    @property
    def tokens(self) -> int:
        return self.batch * 2 * self.seq_len  # source + target tokens

    def record(self) -> dict:
        return {"part": self.part, "batch": self.batch, "seq_len": self.seq_len, "tokens": self.tokens}


@dataclass(frozen=True)
class DecodeCase:
    batch: int
    context: int  # prompt length, prefilled into the cache before the timing
    new_tokens: int  # decoded one at a time, timed
    vocab_size: int

    part = "decode"
    measured_fields = MEASURED_FIELDS

    @property
    def label(self) -> str:
        return f"{self.batch}x{self.context}+{self.new_tokens}"

    @property
    def tokens(self) -> int:
        return self.batch * self.new_tokens

    def record(self) -> dict:
        return {"part": self.part, "batch": self.batch, "context": self.context, "new_tokens": self.new_tokens,
                "vocab_size": self.vocab_size, "tokens": self.tokens}


def forward_cases(device: torch.device, quick: bool) -> list[ForwardCase]:
    if device.type == "cuda":
        return [ForwardCase(8, 512)] + ([] if quick else [ForwardCase(4, 2048)])
    return [ForwardCase(2, 32)] + ([] if quick else [ForwardCase(2, 128)])


def decode_cases(device: torch.device, quick: bool) -> list[DecodeCase]:
    if device.type == "cuda":
        contexts = (1024, 4096) if quick else (1024, 4096, 16384, 32768)
        return [DecodeCase(4, context, 16 if quick else 32, _GPU_VOCAB) for context in contexts]
    contexts = (128,) if quick else (128, 512)
    return [DecodeCase(2, context, 4 if quick else 8, _CPU_VOCAB) for context in contexts]
