"""kernels.Transformer: torch.nn.Transformer with every attention on the fused kernel."""
from torch import nn

from kernels.nn.patching import replace_attention


class Transformer(nn.Transformer):
    """torch.nn.Transformer, same constructor, defaults (the course's d_model=512, nhead=8, 6 encoder
    and 6 decoder layers, dim_feedforward=2048, dropout=0.1), forward signature, masks and
    state_dict keys, so a torch.nn.Transformer checkpoint loads as is and gives the same outputs.

    The encoder and decoder layers are torch's; their self- and cross-attention modules are swapped
    for kernels.MultiheadAttention when the model is built (see kernels.nn.patching for how torch's
    inference fast paths are kept from bypassing them). `generate_square_subsequent_mask` is torch's.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        replace_attention(self)
