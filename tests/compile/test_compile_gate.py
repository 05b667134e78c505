"""CI gate: the shipped kernels, compiled for sm_80 and sm_90 (a few for sm_100) on this CPU (no GPU), keep
the rules of benchmarks/compile/checks.py: every tile compiles, fits shared memory, does not spill (fp16, fp32),
puts every 16-bit dot on HGMMA on sm_90, and reads the forward's tiles with TMA on sm_90.

A representative subset of `python -m benchmarks compile`, run in a subprocess (the test session runs
the kernels in Triton's interpreter, which compiles nothing): every shipped tile of every dtype family
and head dim, at the variant that costs the most registers, plus the tiles taken when
KERNELS_AUTOTUNE=0; and the two backward gradient kernels, the ones closest to the register limit,
where a user's call raises their pressure: packed sequences, the score variants with causality, alone
and with lengths that divide no tile or dropout (dQ at d64, 16-bit dK/dV at d256: the tile sets have a
tile for those alone; about 260 compiles). bfloat16 is left to the
full report: the kernels take it through the same code and tiles as float16, and the committed report
shows the same registers, spills, shared memory and MMA for both at these variants. On sm_100, three
small runs for packed sequences, where sm_100 alone spilled (a tile or block chosen for it). A second run
compiles tiles that must break each rule, so that no rule passes by being unable to fail.
"""
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.compile.checks import DOT_KERNELS, RULES, broken_rules

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
GATE_ARCHS = ("sm_80", "sm_90")
GATE_DTYPES = ("float16", "float32", "float64")
# Every shipped forward and backward tile at every head dim, causal: both key loops instantiated,
# the register peak. Decode at a bool key-padding mask, for a GQA group of 4 and of 64 (its tallest
# tile), and the positional encoding's forward. Dropout, the additive mask and the rest are in the full report only.
GATE_ARGS = ["--arch", *GATE_ARCHS, "--dtypes", *GATE_DTYPES, "--launchers", "forward", "backward", "decode",
             "positional", "--head-dims", "64", "128", "256", "--variants", "forward:causal", "backward:causal",
             "decode:key_padding", "decode:wide_group", "positional:add"]
# The backward gradient kernels where calls raise their pressure past causal (configs.TileConfig.spills_with):
# dK/dV on packed sequences, all four score variants with causality, and the same with lengths that
# divide no tile (the tiles uneven lengths alone keep, since UNEVEN prunes whatever SCORE_VARIANTS
# prunes, at a higher pressure); dQ where a tile was pruned for them (16-bit d64, the score variants),
# with dropout too (at d64 no dQ tile is pruned for it: the same tiles at a higher pressure; at d256
# the score variants with dropout take their own tile).
PRESSURE_VARIANTS = ("score_variants_uneven_causal", "varlen", "score_variants_causal")
DK_DV_GATE_ARGS = ["--arch", *GATE_ARCHS, "--dtypes", "float16", "float32", "--launchers", "backward",
                   "--kernels", "attention_backward_dk_dv_kernel", "--head-dims", "64", "128", "256",
                   "--variants", *PRESSURE_VARIANTS]
DQ_GATE_ARGS = ["--arch", *GATE_ARCHS, "--dtypes", "float16", "--launchers", "backward",
                "--kernels", "attention_backward_dq_kernel", "--head-dims", "64", "256",
                "--variants", "score_variants_dropout_causal"]
# 16-bit dK/dV at d256 with the score variants and dropout: on sm_90 its columns split over two programs
# (configs.TileConfig.column_splits), as with uneven lengths above.
DK_DV_DROPOUT_GATE_ARGS = ["--arch", *GATE_ARCHS, "--dtypes", "float16", "--launchers", "backward",
                           "--kernels", "attention_backward_dk_dv_kernel", "--head-dims", "256",
                           "--variants", "score_variants_dropout_causal"]
# sm_100 (Blackwell) where a tile for packed sequences was pruned there alone (configs.PACKED with
# configs.BLACKWELL; ptxas kept one scalar in local memory): the 16-bit forward at d64 and dK/dV at
# d128, and the delta pre-pass's fp32 rows at d256 (backward.row_sums_of_products). About 30 s.
BLACKWELL_GATE_RUNS = {
    "gate-sm100-forward": ["--arch", "sm_100", "--dtypes", "float16", "--launchers", "forward",
                           "--kernels", "attention_forward_kernel", "--head-dims", "64", "--variants", "varlen"],
    "gate-sm100-dk-dv": ["--arch", "sm_100", "--dtypes", "float16", "--launchers", "backward",
                         "--kernels", "attention_backward_dk_dv_kernel", "--head-dims", "128", "--variants", "varlen"],
    "gate-sm100-delta": ["--arch", "sm_100", "--dtypes", "float32", "--launchers", "backward",
                         "--kernels", "row_sum_of_products_kernel", "--head-dims", "256", "--variants", "varlen"],
}
BLACKWELL_GATE_ROWS = {("attention_forward_kernel", "float16", 64), ("attention_backward_dk_dv_kernel", "float16", 128),
                       ("row_sum_of_products_kernel", "float32", 256)}
# Deliberately bad tiles at d128, on the forward's pointer path (no TMA load on sm_90: the good tile
# 128x64/8/3 breaks that rule alone): 8 pipeline stages of 64x64 need more shared memory than any
# card has, 128x128 on 4 warps holds more accumulators than registers, 32x32 on 4 warps is too small
# for warpgroup MMA, and a 48-key tile is no power of two (tl.arange rejects it).
BAD_TILE_ARGS = ["--arch", "sm_90", "--launchers", "forward", "--dtypes", "float16", "--head-dims", "128",
                 "--variants", "none", "--tile", "64x64/4/8", "128x128/4/1", "32x32/4/2", "64x48/4/2", "128x64/8/3",
                 "--pointer-path"]


def compile_report(tmp_path_factory, name: str, args: list[str]) -> list[dict]:
    out = tmp_path_factory.mktemp(name)
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-m", "benchmarks", "compile", "--out", str(out), *args],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((out / "compile.json").read_text())["rows"]


@pytest.fixture(scope="module")
def gate_rows(tmp_path_factory) -> list[dict]:
    return (compile_report(tmp_path_factory, "gate", GATE_ARGS)
            + compile_report(tmp_path_factory, "gate-dk-dv", DK_DV_GATE_ARGS)
            + compile_report(tmp_path_factory, "gate-dq", DQ_GATE_ARGS)
            + compile_report(tmp_path_factory, "gate-dk-dv-dropout", DK_DV_DROPOUT_GATE_ARGS)
            + [row for name, args in BLACKWELL_GATE_RUNS.items()
               for row in compile_report(tmp_path_factory, name, args)])


@pytest.fixture(scope="module")
def bad_tile_rows(tmp_path_factory) -> list[dict]:
    return compile_report(tmp_path_factory, "bad-tiles", BAD_TILE_ARGS)


def describe(row: dict) -> str:
    return (f"{row['kernel']} {row['dtype']} d{row['head_dim']} {row['variant']} {row['tile']} {row['arch']}"
            f"{'' if row['autotune'] else ' (untimed)'}: error={row['error']} regs={row['registers']} "
            f"spill={row['spill_store_bytes']}/{row['spill_load_bytes']} "
            f"smem={row['shared_bytes']}/{row['shared_limit']} "
            f"mma={row['mma']}")


def test_the_gate_covers_every_kernel_dtype_and_arch(gate_rows):
    blackwell = {(row["kernel"], row["dtype"], row["head_dim"], row["variant"], row["autotune"])
                 for row in gate_rows if row["arch"] == "sm_100"}
    assert blackwell == {(*launch, "varlen", autotune) for launch in BLACKWELL_GATE_ROWS for autotune in (True, False)}
    gate_rows = [row for row in gate_rows if row["arch"] in GATE_ARCHS]
    autotuned = {*DOT_KERNELS, "split_attention_kernel"}
    kernels = {*autotuned, "row_sum_of_products_kernel", "combine_splits_kernel", "positional_encoding_kernel"}
    every = {(kernel, dtype, arch) for kernel in kernels for dtype in GATE_DTYPES for arch in GATE_ARCHS}
    assert {(row["kernel"], row["dtype"], row["arch"]) for row in gate_rows} == every
    untimed = {(row["kernel"], row["dtype"], row["arch"]) for row in gate_rows if not row["autotune"]}
    assert untimed >= {(kernel, dtype, arch) for kernel, dtype, arch in every if kernel in autotuned}
    pressure = {(row["kernel"], row["dtype"], row["head_dim"], row["variant"], row["arch"], row["autotune"])
                for row in gate_rows if "backward" in row["kernel"] and row["variant"] != "causal"}
    assert pressure == {("attention_backward_dk_dv_kernel", dtype, head_dim, variant, arch, autotune)
                        for dtype in ("float16", "float32") for head_dim in (64, 128, 256)
                        for variant in PRESSURE_VARIANTS for arch in GATE_ARCHS for autotune in (True, False)} | {
        ("attention_backward_dq_kernel", "float16", head_dim, "score_variants_dropout_causal", arch, autotune)
        for head_dim in (64, 256) for arch in GATE_ARCHS for autotune in (True, False)} | {
        ("attention_backward_dk_dv_kernel", "float16", 256, "score_variants_dropout_causal", arch, autotune)
        for arch in GATE_ARCHS for autotune in (True, False)}


@dataclass(frozen=True)
class KnownBreak:
    """Rows that break a rule for a reason no tile can fix (the kernel or the compiler must change).
    test_known_breaks_still_happen fails the day one is fixed, so the entry cannot outlive it."""

    rule: str
    matches: Callable[[dict], bool]
    reason: str


# None today. Fixed: fp32 d256, 16-bit d256 HGMMA, positional, 16-bit d256 on packed sequences, 16-bit
# dK/dV d256 with the score variants and uneven lengths on sm_90 (configs.TileConfig.column_splits).
KNOWN_BREAKS: tuple[KnownBreak, ...] = ()


def known(rule: str, row: dict) -> bool:
    return any(entry.rule == rule and entry.matches(row) for entry in KNOWN_BREAKS)


@pytest.mark.parametrize("rule, dtype",
                         [(rule, dtype) for rule in RULES for dtype in rule.dtypes if dtype in GATE_DTYPES],
                         ids=lambda value: getattr(value, "name", value))
def test_shipped_tiles_keep_the_rule(gate_rows, rule, dtype):
    applicable = [row for row in gate_rows if row["dtype"] == dtype and rule.applies(row)]
    assert applicable, f"no {dtype} compile the rule {rule.name!r} applies to"
    broken = [describe(row) for row in applicable if not rule.holds(row) and not known(rule.name, row)]
    assert not broken, f"{rule.name} ({rule.why}):\n" + "\n".join(broken)


@pytest.mark.parametrize("entry", KNOWN_BREAKS, ids=lambda entry: entry.rule)
def test_known_breaks_still_happen(gate_rows, entry):
    rule = next(rule for rule in RULES if rule.name == entry.rule)
    assert any(rule.applies(row) and not rule.holds(row) and entry.matches(row) for row in gate_rows), (
        f"fixed: remove the known break ({entry.reason})")


def test_bad_tiles_break_every_rule(bad_tile_rows):
    broken = {row["tile"].split(" w")[0]: set(broken_rules(row)) for row in bad_tile_rows}
    assert broken == {
        "BLOCK_M=64 BLOCK_N=64": {"fits shared memory", "TMA loads"},
        "BLOCK_M=128 BLOCK_N=128": {"no spills", "TMA loads"},
        "BLOCK_M=32 BLOCK_N=32": {"all dots on HGMMA", "TMA loads"},
        "BLOCK_M=64 BLOCK_N=48": {"compiles"},
        "BLOCK_M=128 BLOCK_N=64": {"TMA loads"},
    }


def test_decode_tiles_leave_room_for_the_planned_programs_per_sm(gate_rows):
    """decode.choose_num_splits sizes the split grid for PROGRAMS_PER_MULTIPROCESSOR programs per SM:
    every shipped split-K tile that compiles must fit that many blocks on an sm_90 SM (registers,
    shared memory, warps), or the grid it plans runs in waves it did not count. For a GQA group of 4
    (16-row tiles); with a group of 64 (`wide_group`, 64 rows) the 128-key tile on 8 warps at d64
    takes 160 registers a thread, one block per SM: the autotuner times it against the others."""
    from kernels.sdpa.triton.decode import PROGRAMS_PER_MULTIPROCESSOR

    decode_rows = [row for row in gate_rows if row["kernel"] == "split_attention_kernel" and row["arch"] == "sm_90"
                   and row["variant"] == "key_padding" and row["error"] is None]
    assert decode_rows, "the gate compiled no split-K tile for sm_90"
    crowded = [describe(row) + f" blocks/SM={row['blocks_per_sm']}" for row in decode_rows
               if row["blocks_per_sm"] < PROGRAMS_PER_MULTIPROCESSOR]
    assert not crowded, f"fewer than {PROGRAMS_PER_MULTIPROCESSOR} blocks per SM:\n" + "\n".join(crowded)
