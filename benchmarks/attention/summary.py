"""`python -m benchmarks.attention.summary DIR/attention.json`: the short text table a GPU session prints last.

Also reads the `backward` and `masked` commands' JSON. One line per case and mode: ours (TFLOP/s, share
of the measured matmul ceiling, speed against SDPA default in that mode, max error) beside the fastest
torch SDPA backend on that case; on packed documents a second line for ours through varlen_attention.
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

from tabulate import tabulate

from benchmarks.attention.providers import VARLEN
from benchmarks.harness.providers import OURS

_HEADERS = ("case", "ours TFLOP/s", "of matmul", "vs SDPA", "ours max err", "best SDPA", "its TFLOP/s")


def summary_lines(payload: dict) -> list[tuple]:
    by_case: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for row in payload["rows"]:
        mode = row.get("mode", "forward")  # results written before the backward modes have none
        case = (row["head_dim"], row["mask"], row["seq_len"], row["batch"], row["heads"], mode)
        by_case[case][row["provider"]] = row
    return [_line(case, rows, name) for case, rows in by_case.items() for name in (OURS, VARLEN)
            if name == OURS or name in rows]


def _line(case: tuple, rows: dict[str, dict], name: str) -> tuple:
    head_dim, mask, seq_len, batch, heads, mode = case
    label = f"D{head_dim} {mask} N{seq_len} B{batch} H{heads}" + ("" if mode == "forward" else f" {mode}")
    label += " varlen" if name == VARLEN else ""
    sdpa = [r for provider, r in rows.items() if provider.startswith("sdpa-") and r["available"]]
    best = max(sdpa, key=lambda r: r["tflops"], default=None)
    best_cells = (best["provider"], f"{best['tflops']:.3g}") if best else ("none ran", None)
    ours = rows.get(name)
    if ours is None or not ours["available"]:
        return (label, "unavailable", None, None, None, *best_cells)
    if ours["median_ms"] is None:  # checked, not timed (Triton's interpreter)
        return (label, "not timed", None, None, f"{ours['max_abs_error']:.1e}", *best_cells)
    speedup = ours["speedup_vs_sdpa_default"]
    return (
        label,
        f"{ours['tflops']:.3g}",
        f"{ours['ceiling_fraction']:.0%}",
        f"{speedup:.2f}x" if speedup else None,
        f"{ours['max_abs_error']:.1e}",
        *best_cells,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attention.summary", description=__doc__)
    parser.add_argument(
        "results", type=Path, help="an attention.json or backward.json written by `python -m benchmarks`"
    )
    payload = json.loads(parser.parse_args(argv).results.read_text())
    environment, ceilings = payload["environment"], payload["ceilings"]
    print(
        f"{environment['card']}, {payload['settings']['dtype']}, commit {environment['git_commit']}; "
        f"ceilings: {ceilings['matmul']} {ceilings['matmul_tflops']:.3g} TFLOP/s, "
        f"copy {ceilings['copy_gbps']:.3g} GB/s"
    )
    print(tabulate(summary_lines(payload), headers=_HEADERS, missingval="-", disable_numparse=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
