"""Max |error| against float64 of float32 attention per dot mode (see emulation.py), beside PyTorch's
own float32 math; the pass rule of the tests allows 2x PyTorch's error plus 2e-5.

    python -m benchmarks.fp32_precision [--seed N]
"""
import argparse

import torch

import reference
from benchmarks.fp32_precision.emulation import MODES, attention

CASES = [  # (batch, heads, length, head dim, logit scale): the scale widens the softmax's range
    (1, 2, 256, 64, 1.0),
    (1, 2, 1024, 64, 1.0),
    (1, 2, 1024, 128, 1.0),
    (1, 2, 1024, 128, 4.0),
    (1, 1, 4096, 64, 1.0),
]


def errors(case: tuple, generator: torch.Generator) -> dict[str, float]:
    batch, heads, length, head_dim, logit_scale = case
    q, k, v = (torch.randn(batch, heads, length, head_dim, generator=generator) for _ in range(3))
    q = q * logit_scale
    exact = reference.scaled_dot_product_attention(q.double(), k.double(), v.double())
    row = {"torch fp32": (reference.scaled_dot_product_attention(q, k, v).double() - exact).abs().max().item()}
    for mode in MODES:
        row[mode] = (attention(q, k, v, mode).double() - exact).abs().max().item()
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fp32_precision", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    seed = parser.parse_args(argv).seed
    generator = torch.Generator().manual_seed(seed)
    columns = ["torch fp32", *MODES]
    print(f"max |error| vs float64, seed {seed}")
    print(f"{'B H N D scale':>22} " + " ".join(f"{c:>11}" for c in columns) + "   tf32x3 / torch")
    for case in CASES:
        row = errors(case, generator)
        label = " ".join(str(x) for x in case)
        ratio = row["tf32x3"] / row["torch fp32"]
        print(f"{label:>22} " + " ".join(f"{row[c]:11.2e}" for c in columns) + f"   {ratio:14.2f}")


if __name__ == "__main__":
    main()
