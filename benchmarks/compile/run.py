"""`python -m benchmarks compile`: record every case's launches, compile each distinct one for each
architecture in parallel worker processes, and report (report.py)."""
import argparse
import concurrent.futures
import functools
import multiprocessing
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import triton

from benchmarks.compile import cases as case_list
from benchmarks.compile.cases import Case, record
from benchmarks.compile.compiler import Compiled, bind, compile_launch
from benchmarks.compile.report import write_report
from benchmarks.compile.targets import ARCHS
from benchmarks.harness.command_run import Command
from kernels.sdpa.triton.configs import TileConfig

HELP = "compile every shipped kernel for GPU targets on this machine: registers, spills, shared memory, MMA"
_TILE = re.compile(r"^(\d+)x(\d+)/(\d+)/(\d+)(?:/(\d+))?$")


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", nargs="+", choices=sorted(ARCHS), default=sorted(ARCHS), metavar="ARCH",
                        help=f"architectures (default: all of {', '.join(sorted(ARCHS))})")
    parser.add_argument("--launchers", nargs="+", choices=case_list.LAUNCHERS, default=case_list.DEFAULT_LAUNCHERS,
                        metavar="LAUNCHER",
                        help=f"kernels by launcher, of {', '.join(case_list.LAUNCHERS)} (default: all but the "
                             "yardstick, a minimal TMA forward to compare the forward with: yardstick.py)")
    parser.add_argument("--dtypes", nargs="+", choices=case_list.DTYPES, default=case_list.DTYPES, metavar="DTYPE")
    parser.add_argument("--head-dims", nargs="+", type=int, default=case_list.HEAD_DIMS, metavar="D",
                        help="attention head dims (default: %(default)s)")
    parser.add_argument("--variants", nargs="+", metavar="VARIANT",
                        help="only these variants (mask kinds, dropout, ...; LAUNCHER:VARIANT for one launcher "
                             "only, e.g. decode:key_padding; default: all)")
    parser.add_argument("--kernels", nargs="+", metavar="KERNEL",
                        help="only the launches of these kernels, e.g. attention_backward_dk_dv_kernel "
                             "(default: every kernel the launchers start)")
    parser.add_argument("--tile", nargs="+", type=_tile, metavar="MxN/WARPS/STAGES[/SPLITS]",
                        help="compile forward and backward kernels at these tiles instead of the shipped ones "
                             "(SPLITS: the dK/dV kernel's COLUMN_SPLITS, configs.TileConfig.column_splits)")
    parser.add_argument("--pointer-path", action="store_true",
                        help="compile the attention forward's pointer path on every arch (default: its TMA "
                             "descriptor path on sm_90 and later, as a launch there takes)")
    parser.add_argument("--warp-specialize", action="store_true",
                        help="compile the attention forward's key loop warp-specialised where it takes TMA "
                             "descriptors (default: off, as launches run it unless forced)")
    parser.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1,
                        help="parallel compiles (default: %(default)s)")


def _tile(text: str) -> triton.Config:
    match = _TILE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"--tile {text!r}: expected BLOCK_MxBLOCK_N/WARPS/STAGES[/SPLITS], e.g. 128x64/8/3 or 16x64/8/3/2")
    block_m, block_n, warps, stages, splits = (int(group or 1) for group in match.groups())
    tile = TileConfig(block_m, block_n, warps, stages, max_head_dim=0, column_splits=splits)
    return tile.to_triton()


def _tile_text(tile: triton.Config) -> str:
    splits = tile.kwargs.get("COLUMN_SPLITS", 1)
    return (f"{tile.kwargs['BLOCK_M']}x{tile.kwargs['BLOCK_N']}/{tile.num_warps}/{tile.num_stages}"
            + (f"/{splits}" if splits > 1 else ""))


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--jobs {text!r}: expected a positive integer")
    return int(text)


def run(args: argparse.Namespace) -> int:
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise SystemExit("compile: unset TRITON_INTERPRET; the interpreter compiles nothing")
    if args.tile and not set(args.launchers) <= {"forward", "backward", "yardstick"}:
        raise SystemExit("compile: --tile applies to the forward and backward kernels (and the yardstick): "
                         "add --launchers forward backward yardstick")
    selected = case_list.cases(args.launchers, args.dtypes, args.head_dims, args.variants, args.quick,
                               untimed=not args.tile, pointer_path=args.pointer_path,
                               warp_specialize=args.warp_specialize)
    if not selected:
        raise SystemExit("compile: no case matches --launchers/--dtypes/--head-dims/--variants")
    start = time.perf_counter()
    rows = compile_cases(selected, [ARCHS[name] for name in args.arch], args.tile, args.jobs, args.kernels)
    if not rows:
        raise SystemExit(f"compile: the selected cases launch none of --kernels {' '.join(args.kernels)}")
    settings = {
        "arch": args.arch, "quick": args.quick, "jobs": args.jobs, "pointer_path": args.pointer_path,
        "warp_specialize": args.warp_specialize,
        "tiles": [_tile_text(tile) for tile in args.tile] if args.tile else "shipped",
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    write_report(rows, [ARCHS[name] for name in args.arch], settings, args.out)
    return 0


COMMAND = Command("compile", HELP, run, add_options)


def compile_cases(selected: list[Case], archs, tiles, jobs: int, kernels=None) -> list[dict]:
    """One row per (case, recorded launch, arch), only those of `kernels` (names as the rows give
    them) when given; a launch bound identically by several cases (the backward's delta pre-pass,
    say) is compiled once."""
    jobs_by_key: dict[tuple, tuple[Case, int, str]] = {}
    row_keys = []
    for case in selected:
        for arch in archs:
            for index, launch in enumerate(record(case, arch, tiles)):
                if kernels and launch.kernel_name not in kernels:
                    continue
                source, options = bind(launch, arch)
                key = (arch.name, source.hash(), repr(sorted(options.items())))
                jobs_by_key.setdefault(key, (case, index, arch.name))
                row_keys.append((case, key))

    with tempfile.TemporaryDirectory(prefix="compile-report-cache-") as cache_dir:
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(cache_dir,))
        with pool:
            futures = {key: pool.submit(_compile_job, *job, tiles) for key, job in jobs_by_key.items()}
            results = {key: future.result() for key, future in _as_done(futures)}
    return [{**asdict(case), **results[key].to_json()} for case, key in row_keys]


def _as_done(futures: dict):
    """(key, future) pairs in completion order, with a running count on stderr."""
    keys = {future: key for key, future in futures.items()}
    for done, future in enumerate(concurrent.futures.as_completed(keys), 1):
        print(f"\rcompiled {done}/{len(keys)}", end="", flush=True, file=sys.stderr)
        yield keys[future], future
    print(file=sys.stderr)


def _start_worker(cache_dir: str) -> None:
    os.environ["TRITON_CACHE_DIR"] = cache_dir
    os.environ.pop("TRITON_INTERPRET", None)


@functools.cache
def _recorded(case: Case, arch_name: str, tiles: tuple | None):
    return record(case, ARCHS[arch_name], list(tiles) if tiles else None)


def _compile_job(case: Case, index: int, arch_name: str, tiles) -> Compiled:
    return compile_launch(_recorded(case, arch_name, tuple(tiles) if tiles else None)[index], ARCHS[arch_name])
