"""Turning dropout off for a comparison, whatever mode the model is in, and back on afterwards."""
import contextlib
from collections.abc import Iterator

from torch import nn

_DROPOUT_MODULES = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout
)


def _dropout_attributes(module: nn.Module) -> Iterator[str]:
    """The attributes holding a dropout probability: `p` of an nn.Dropout*, and float attributes named
    like "dropout" that modules pass to functional dropout themselves (nn.MultiheadAttention.dropout,
    Hugging Face attention modules' attention_dropout, ...)."""
    if isinstance(module, _DROPOUT_MODULES):
        yield "p"
    for name, value in vars(module).items():
        if "dropout" in name.lower() and isinstance(value, float):
            yield name


@contextlib.contextmanager
def dropout_disabled(*models: nn.Module) -> Iterator[None]:
    """Every dropout probability in the models is 0 inside the block and restored after it, also when
    the block raises. Train/eval mode is left as it is."""
    saved = {}
    for model in models:
        for module in model.modules():
            for name in _dropout_attributes(module):
                saved.setdefault((id(module), name), (module, name, getattr(module, name)))
    try:
        for module, name, _ in saved.values():
            setattr(module, name, 0.0)
        yield
    finally:
        for module, name, probability in saved.values():
            setattr(module, name, probability)
