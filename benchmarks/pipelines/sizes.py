"""Model and batch sizes of the pipelines benchmark.

- "tiny": a few thousand parameters and short texts, for the CPU and Triton's interpreter (tests).
- "base": the transformer stack of BERT-base (classifier, QA), GPT-2 small (generation) and BART-base
  (summarization): hidden 768, 12 heads of 64, feed-forward 3072, 12 layers (BART 6 + 6), with random
  weights, for timing on a GPU. The vocabulary is the trained tokenizer's (1,024 tokens), so embeddings
  and the LM head are smaller than the real models'; the attention and MLP work is theirs.

Texts are padded batches: every example is one of the hand-written examples, preceded in "base" by
up to `context_sentences` corpus lines (a different number per example), so lengths differ widely.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSize:
    name: str
    hidden: int
    heads: int
    ffn: int
    layers: int
    seq2seq_layers: int  # encoder layers, and decoder layers, of the summarization model
    max_positions: int
    init_std: float  # weight init; larger than BERT's 0.02 in "tiny", so attention is peaked, not uniform
    batch: int  # examples per padded batch (a task with fewer hand-written examples cycles them)
    context_sentences: int  # corpus lines put before the longest example
    new_tokens: int  # tokens generated per example (text generation, summarization)

    def quick(self) -> "ModelSize":
        """Smaller batches and fewer new tokens for --quick (tiny is already minimal)."""
        if self.name == "tiny":
            return self
        return ModelSize(**{**vars(self), "batch": self.batch // 2, "new_tokens": self.new_tokens // 2})


SIZES = {
    "tiny": ModelSize("tiny", hidden=32, heads=2, ffn=64, layers=2, seq2seq_layers=2, max_positions=128,
                      init_std=0.2, batch=3, context_sentences=0, new_tokens=4),
    "base": ModelSize("base", hidden=768, heads=12, ffn=3072, layers=12, seq2seq_layers=6, max_positions=512,
                      init_std=0.02, batch=8, context_sentences=18, new_tokens=32),
}
