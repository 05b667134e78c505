"""Compile one recorded launch for one architecture and measure the result.

The arguments are bound with Triton's own binder for the target's backend, as `JITFunction.run` binds
them before a launch: same constexprs, same specialisation of integers equal to 1 or divisible by
16 and of 16-byte aligned pointers. Needs a fresh TRITON_CACHE_DIR (run.py makes one per run): a
cache hit skips ptxas, and its log is where the register and spill counts come from.
"""
import contextlib
import io
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

import triton
from triton import knobs
from triton.compiler import ASTSource, make_backend
from triton.runtime.jit import create_function_from_signature

from benchmarks.compile.recorder import Launch
from benchmarks.compile.sass import (
    ASYNC_COPY, TMA_LOAD, key_loop_instructions, mma_kinds, parse_ptxas_log, sass_listing, sass_opcodes,
)
from benchmarks.compile.targets import Arch

_TILE_CONSTEXPRS = ("BLOCK_M", "BLOCK_N", "BLOCK_S", "BLOCK_ROWS", "BLOCK_COLS")
_SPLIT_CONSTEXPR = "COLUMN_SPLITS"  # the dK/dV kernel's, named only where a tile sets it (above 1)


@dataclass
class Compiled:
    """What the compiler made of one launch on one architecture (None fields: it did not compile)."""

    arch: str
    kernel: str
    tile: str
    num_warps: int
    error: str | None = None
    registers: int | None = None
    spill_store_bytes: int | None = None
    spill_load_bytes: int | None = None
    shared_bytes: int | None = None
    shared_limit: int | None = None
    blocks_per_sm: int | None = None
    mma: list[str] = field(default_factory=list)
    mma_instructions: int | None = None
    tma_loads: int | None = None
    async_copies: int | None = None
    sass_instructions: int | None = None
    loop_sass_instructions: int | None = None  # the innermost loop holding an MMA (sass.key_loop_instructions)
    compile_seconds: float | None = None

    @property
    def compiled(self) -> bool:
        return self.error is None

    @property
    def fits_shared_memory(self) -> bool:
        return self.compiled and self.shared_bytes <= self.shared_limit

    @property
    def spill_bytes(self) -> int:
        return self.spill_store_bytes + self.spill_load_bytes

    def to_json(self) -> dict:
        return asdict(self)


def bind(launch: Launch, arch: Arch) -> tuple[ASTSource, dict]:
    """The (source, options) `JITFunction.run` would compile for this launch on `arch`."""
    kernel = launch.kernel
    backend = make_backend(arch.target())
    kwargs = dict(launch.kwargs)
    # The two options JITFunction.run adds before binding.
    kwargs["debug"] = kwargs.get("debug", kernel.debug) or knobs.runtime.debug
    kwargs["instrumentation_mode"] = knobs.compilation.instrumentation_mode
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound_args, specialization, options = binder(*launch.args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound_args, specialization, options)
    return ASTSource(kernel, signature, constexprs, attrs), options.__dict__


def describe_tile(source: ASTSource, options: dict) -> str:
    """e.g. "BLOCK_M=128 BLOCK_N=64 w8 s3": the tile constexprs, warps and pipeline stages."""
    names = source.fn.arg_names
    blocks = [f"{names[path[0]]}={value}" for path, value in source.constants.items()
              if names[path[0]] in _TILE_CONSTEXPRS or (names[path[0]] == _SPLIT_CONSTEXPR and value > 1)]
    return " ".join([*blocks, f"w{options['num_warps']}", f"s{options['num_stages']}"])


def compile_launch(launch: Launch, arch: Arch) -> Compiled:
    source, options = bind(launch, arch)
    result = Compiled(arch.name, launch.kernel_name, describe_tile(source, options), options["num_warps"])
    log = io.StringIO()
    start = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as diagnostics:
        try:
            with _ptxas_log_to(log), _native_stderr_to(diagnostics):
                kernel = triton.compile(source, target=arch.target(), options=options)
        except Exception as error:  # noqa: BLE001 - a failed compile is a result of the report
            diagnostics.seek(0)
            result.error = _error_summary(error, diagnostics.read())
            return result
    result.compile_seconds = round(time.perf_counter() - start, 2)

    usage = parse_ptxas_log(log.getvalue())
    listing = sass_listing(kernel.asm["cubin"])
    opcodes = sass_opcodes(listing)
    mma = mma_kinds(opcodes)
    result.registers = usage.registers
    result.spill_store_bytes = usage.spill_store_bytes
    result.spill_load_bytes = usage.spill_load_bytes
    result.shared_bytes = kernel.metadata.shared
    result.shared_limit = arch.shared_per_block
    result.blocks_per_sm = arch.blocks_per_sm(usage.registers, options["num_warps"], kernel.metadata.shared)
    result.mma = mma
    result.mma_instructions = sum(count for name, count in opcodes.items() if name.endswith("MMA"))
    result.tma_loads = opcodes[TMA_LOAD]
    result.async_copies = opcodes[ASYNC_COPY]
    result.sass_instructions = sum(opcodes.values())
    result.loop_sass_instructions = key_loop_instructions(listing)
    return result


@contextlib.contextmanager
def _ptxas_log_to(stream: io.StringIO):
    """Triton prints the `ptxas -v` log when dump_ptxas_log is set: catch it (and any reproducer
    it prints on failure) in `stream`."""
    previous = knobs.nvidia.dump_ptxas_log
    knobs.nvidia.dump_ptxas_log = True
    try:
        with contextlib.redirect_stdout(stream):
            yield
    finally:
        knobs.nvidia.dump_ptxas_log = previous


@contextlib.contextmanager
def _native_stderr_to(file):
    """MLIR passes write their diagnostics (and a full IR dump on failure) to file descriptor 2:
    send them to `file` so that a failed compile is one line of the report, not pages of IR."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_FAILED_PASS = re.compile(r"Pipeline failed while executing \[`(\w+)`")


def _error_summary(error: Exception, diagnostics: str) -> str:
    """The exception's first and last lines (a CompilationError's first line is only the source
    position), and the failing compiler pass when MLIR names one."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    summary = f"{type(error).__name__}: {' ... '.join(dict.fromkeys(lines[:1] + lines[-1:]))}"
    failed_pass = _FAILED_PASS.search(diagnostics)
    if failed_pass:
        summary += f" (in {failed_pass.group(1)})"
    return summary[:300]
