"""The positional-encoding implementations compared side by side, as `Provider`s on `PositionalInputs`.

ENCODE: ours (the fused Triton kernel) vs the course's table add (`reference.PositionalEncoder`, its
table in the input's dtype, as a model converted to that dtype holds it) vs torch eager (the encoding
computed on the fly with torch ops: `kernels`' "torch" backend). EMBED: ours vs eager
`F.embedding(ids, weight) * sqrt(d)` followed by the course's table add.
"""
import math

import torch
import torch.nn.functional as F

import reference
from benchmarks.harness.providers import Provider, ours_provider
from benchmarks.positional.cases import Op, PositionalCase
from kernels.positional.functional import add_positional_encoding, sinusoidal_embedding

TABLE_ADD = "reference-table"
EAGER = "torch-eager"
BASELINES = {Op.ENCODE: (TABLE_ADD, EAGER), Op.EMBED: (EAGER,)}  # the speed-up columns divide their times


def positional_providers(case: PositionalCase, dtype: torch.dtype, device: torch.device) -> list[Provider]:
    """The providers of this case's op, with any per-case state (the course's table) built up front."""
    course = reference.PositionalEncoder(case.d_model, max_seq_length=case.seq_len).to(device, dtype)
    if case.op is Op.ENCODE:
        return [
            ours_provider(lambda x: add_positional_encoding(x.x, backend="triton"), device),
            Provider(TABLE_ADD, "reference table add", lambda x: course(x.x)),
            Provider(EAGER, "torch eager, on the fly", lambda x: add_positional_encoding(x.x, backend="torch"),
                     kernels_backend="torch"),
        ]
    scale = math.sqrt(case.d_model)

    def eager_embedding(x):
        return course(F.embedding(x.token_ids, x.weight) * scale)

    return [
        ours_provider(lambda x: sinusoidal_embedding(x.token_ids, x.weight, backend="triton"), device),
        Provider(EAGER, "eager embedding * sqrt(d) + table", eager_embedding),
    ]
