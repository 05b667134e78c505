"""The compile report's own pieces that need no compile: ptxas log, SASS key loop and occupancy
arithmetic, the command line's errors, the yardstick kernel's results. The compiles themselves are
tested by test_compile_gate.py."""
from collections import Counter

import pytest
import torch

from benchmarks.__main__ import main
from benchmarks.compile.checks import broken_rules
from benchmarks.compile.run import _tile, _tile_text
from benchmarks.compile.sass import PtxasUsage, key_loop_instructions, mma_kinds, parse_ptxas_log
from benchmarks.compile.targets import ARCHS
from benchmarks.compile.yardstick import _yardstick_forward_kernel
from kernels.sdpa.triton.common import LOG2E

PTXAS_LOG = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_attention_forward_kernel' for 'sm_90a'
ptxas info    : Function properties for _attention_forward_kernel
    24 bytes stack frame, 16 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 168 registers, used 1 barriers, 560 bytes cmem[0]
"""


def test_ptxas_log_gives_registers_and_spills():
    assert parse_ptxas_log(PTXAS_LOG) == PtxasUsage(registers=168, spill_store_bytes=16, spill_load_bytes=8)


def test_a_ptxas_log_without_usage_is_an_error():
    with pytest.raises(ValueError, match="no register or spill line"):
        parse_ptxas_log("ptxas info    : 0 bytes gmem\n")


def test_mma_kinds_name_every_tensor_core_path():
    assert mma_kinds(Counter(HGMMA=8, HMMA=2, FFMA=100)) == ["HGMMA", "HMMA"]
    assert mma_kinds(Counter(UTCHMMA=4)) == ["tcgen05"]
    assert mma_kinds(Counter(FFMA=100)) == []


@pytest.mark.parametrize("registers, warps, shared, blocks", [
    (255, 8, 160 * 1024, 1),  # registers: 256 x 32 x 8 = 65536, the whole file
    (128, 4, 0, 4),  # registers: 128 x 32 x 4 x 4 = 65536
    (32, 4, 100 * 1024, 2),  # shared memory: 2 x (100 + 1) KiB of 228
    (32, 1, 0, 32),  # the block limit
    (32, 4, 228 * 1024, 0),  # over the per-block limit: does not launch
])
def test_blocks_per_sm_on_hopper(registers, warps, shared, blocks):
    assert ARCHS["sm_90"].blocks_per_sm(registers, warps, shared) == blocks


def row(**fields) -> dict:
    base = dict(arch="sm_90", kernel="attention_forward_kernel", dtype="float16", error=None, shared_bytes=1024,
                shared_limit=227 * 1024, spill_store_bytes=0, spill_load_bytes=0, mma=["HGMMA"], tma_loads=7)
    return {**base, **fields}


@pytest.mark.parametrize("fields, broken", [
    ({}, []),
    ({"error": "CompilationError: ..."}, ["compiles"]),
    ({"shared_bytes": 228 * 1024}, ["fits shared memory"]),
    ({"spill_store_bytes": 4}, ["no spills"]),
    ({"spill_store_bytes": 4, "dtype": "float64", "mma": ["DMMA"]}, []),
    ({"mma": ["HGMMA", "HMMA"]}, ["all dots on HGMMA"]),
    ({"mma": ["HMMA"], "arch": "sm_80", "tma_loads": 0}, []),
    ({"tma_loads": 0}, ["TMA loads"]),
    ({"tma_loads": 0, "kernel": "attention_backward_dq_kernel"}, []),
    ({"mma": [], "kernel": "row_sum_of_products_kernel"}, []),
])
def test_rules(fields, broken):
    assert broken_rules(row(**fields)) == broken


@pytest.mark.parametrize("argv, message", [
    (["--tile", "128x64"], "--tile '128x64': expected BLOCK_MxBLOCK_N/WARPS/STAGES"),
    (["--jobs", "0"], "--jobs '0': expected a positive integer"),
    (["--arch", "sm_75"], "invalid choice: 'sm_75'"),
])
def test_bad_arguments_name_the_argument(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(["compile", *argv])
    assert message in capsys.readouterr().err


def test_a_tile_may_name_the_dk_dv_column_splits():
    """--tile's fifth field is configs.TileConfig.column_splits, a constexpr only where above 1."""
    whole = _tile("16x64/8/3/1")
    assert whole.kwargs == {"BLOCK_M": 16, "BLOCK_N": 64} and (whole.num_warps, whole.num_stages) == (8, 3)
    assert whole.all_kwargs() == _tile("16x64/8/3").all_kwargs()
    split = _tile("16x64/8/3/2")
    assert split.kwargs == {"BLOCK_M": 16, "BLOCK_N": 64, "COLUMN_SPLITS": 2}
    assert _tile_text(split) == "16x64/8/3/2" and _tile_text(_tile("16x64/8/3/1")) == "16x64/8/3"


def test_refuses_to_run_in_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(SystemExit, match="unset TRITON_INTERPRET"):
        main(["compile", "--arch", "sm_90"])


def sass_line(address: int, instruction: str) -> str:
    return f"        /*{address:04x}*/                   {instruction} ;      /* 0x000000000000794d */"


def test_key_loop_is_the_innermost_loop_that_holds_an_mma():
    """The key loop 0x20-0x60 (a barrier's spin loop nested in it, counted with it; its NOP not), not
    the retry path after the EXIT that branches back into the loop, nor the loop without an MMA."""
    program = [
        (0x00, "MOV R1, c[0x0][0x28]"),
        (0x10, "@P0 BRA 0x00"),  # a loop without an MMA
        (0x20, "SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR4], RZ"),
        (0x30, "@!P0 BRA 0x20"),
        (0x40, "HGMMA.64x64x16.F32 R24, gdesc[UR12], RZ"),
        (0x50, "NOP"),
        (0x60, "@P1 BRA 0x20"),
        (0x70, "EXIT"),
        (0x80, "BRA 0x40"),  # out-of-line retry path, back into the loop
    ]
    listing = "\n".join(sass_line(address, text) for address, text in program)
    assert key_loop_instructions(listing) == 4
    assert key_loop_instructions("\n".join(sass_line(a, t) for a, t in program[:2])) is None


def test_the_yardstick_computes_attention(device):
    """The yardstick is compiled, not launched, by the tool; run in the interpreter (or on a GPU) it must
    still be attention, or it measures nothing worth matching."""
    batch, heads, n_queries, n_keys, head_dim = 2, 3, 32, 48, 16
    q, k, v = (torch.randn(batch, heads, length, head_dim, device=device, dtype=torch.float16)
               for length in (n_queries, n_keys, n_keys))
    out = torch.full_like(q, float("nan"))
    lse = torch.full((batch, heads, n_queries), float("nan"), device=device)
    scale = head_dim**-0.5
    grid = (n_queries // 16, batch * heads)
    _yardstick_forward_kernel.fn[grid](q, k, v, out, lse, n_queries, n_keys, scale * LOG2E.value,
                                       BLOCK_D=head_dim, BLOCK_DV=head_dim, BLOCK_M=16, BLOCK_N=16)
    scores = q.double() @ k.double().transpose(-1, -2) * scale
    torch.testing.assert_close(out.double(), torch.softmax(scores, -1) @ v.double(), atol=2e-3, rtol=0)
    torch.testing.assert_close(lse.double(), torch.logsumexp(scores, -1), atol=1e-4, rtol=0)


def test_a_variant_can_be_named_for_one_launcher():
    from benchmarks.compile.cases import cases

    selected = cases(("forward", "decode"), ("float16",), (64,), ["decode:key_padding", "causal"], untimed=False)
    assert {(case.launcher, case.variant) for case in selected} == {("decode", "key_padding"), ("forward", "causal")}
