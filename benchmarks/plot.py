"""PNG plots of attention throughput: TFLOP/s against sequence length, one line per provider."""

from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure  # the object API: no pyplot state, no display backend

from benchmarks.attention_suite import AttentionRow, by_display_group, group_title
from benchmarks.ceilings import Ceilings


def plot_attention(
    rows: list[AttentionRow], ceilings: Ceilings, title: str, out_dir: Path, name: str = "attention"
) -> list[Path]:
    """One PNG per (head dim, mask kind, mode) in `out_dir`, `name_d64_causal[_bwd|_fwd-bwd].png`;
    returns their paths."""
    paths = []
    for (d, mask, mode), group in by_display_group(row for row in rows if row.available).items():
        path = out_dir / f"{name}_d{d}_{mask.value}{mode.file_tag}.png"
        paths.append(_plot_group(group, ceilings, f"{title}\n{group_title(d, mask, mode)}", path))
    return paths


def _plot_group(rows: list[AttentionRow], ceilings: Ceilings, title: str, path: Path) -> Path:
    lines: dict[str, list[AttentionRow]] = defaultdict(list)
    for row in rows:
        lines[row.label].append(row)
    figure = Figure(figsize=(8, 5))
    axes = figure.subplots()
    for label, provider_rows in lines.items():
        lengths = [r.case.seq_len for r in provider_rows]
        axes.plot(lengths, [r.tflops for r in provider_rows], marker="o", label=label)
    axes.axhline(ceilings.matmul_tflops, color="grey", linestyle="--", label=f"ceiling: {ceilings.matmul}")
    axes.set_xscale("log", base=2)
    seq_lens = sorted({row.case.seq_len for row in rows})
    axes.set_xticks(seq_lens, labels=[str(n) for n in seq_lens])
    axes.set_ylim(bottom=0)
    axes.set_xlabel("sequence length N")
    axes.set_ylabel("TFLOP/s")
    axes.set_title(title)
    axes.legend(fontsize="small")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path
