"""Reading a compiled kernel back: the ptxas log (registers, spills) and the SASS listing
(instruction mix: tensor-core MMA kinds, TMA loads, local-memory traffic; the size of the loop that
runs the dots)."""
import re
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from triton import knobs

_REGISTERS = re.compile(r"Used (\d+) registers")
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
# "/*0130*/  @!P0 HGMMA.64x128x16.F32 ..." -> "HGMMA"
_INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)")
# "/*36f0*/  BRA 0x2280 ;" -> ("36f0", "BRA", "2280"): an instruction's address, opcode and branch target
_ADDRESSED = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)(?:[^;]*?\b0x([0-9a-f]+))?")

# Tensor-core MMA opcodes by the name the report gives them, strongest first. tcgen05 (Blackwell)
# MMAs are the UTC*MMA family issued from uniform registers.
MMA_KINDS = {
    "tcgen05": ("UTCHMMA", "UTCQMMA", "UTCIMMA", "UTCOMMA", "UTCMMA"),
    "HGMMA": ("HGMMA",),
    "HMMA": ("HMMA",),
    "DMMA": ("DMMA",),
}
TMA_LOAD = "UTMALDG"
ASYNC_COPY = "LDGSTS"  # cp.async: the pre-Hopper global -> shared copy


@dataclass(frozen=True)
class PtxasUsage:
    registers: int
    spill_store_bytes: int
    spill_load_bytes: int


def parse_ptxas_log(log: str) -> PtxasUsage:
    """Registers (the most any function uses) and spill bytes (summed) from `ptxas -v` output."""
    registers = [int(n) for n in _REGISTERS.findall(log)]
    spills = [(int(st), int(ld)) for st, ld in _SPILLS.findall(log)]
    if not registers or not spills:
        raise ValueError(f"no register or spill line in the ptxas log:\n{log}")
    return PtxasUsage(max(registers), sum(st for st, _ in spills), sum(ld for _, ld in spills))


def sass_listing(cubin: bytes) -> str:
    """The cubin's SASS, as `cuobjdump -sass` prints it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kernel.cubin"
        path.write_bytes(cubin)
        return subprocess.run([knobs.nvidia.cuobjdump.path, "-sass", str(path)],
                              check=True, capture_output=True, text=True).stdout


def sass_opcodes(listing: str) -> Counter:
    """How many times each opcode occurs in a SASS listing (NOP padding left out)."""
    opcodes = Counter(_INSTRUCTION.findall(listing))
    opcodes.pop("NOP", None)
    return opcodes


def key_loop_instructions(listing: str) -> int | None:
    """Instructions (NOP left out) of the innermost loop that holds a tensor-core MMA: what a kernel
    executes per key (or query) tile of its main loop, as opposed to once per program. A loop is the
    span from a branch's target back to the branch; spans that hold an EXIT are the out-of-line retry
    paths of barrier waits, placed after the kernel's end, not loops. Waits nested in the loop body
    are counted with it. None when no loop holds an MMA."""
    mma_names = {name for names in MMA_KINDS.values() for name in names}
    instructions = [(int(address, 16), opcode, target) for address, opcode, target in _ADDRESSED.findall(listing)]
    loops = [(int(target, 16), address) for address, opcode, target in instructions
             if opcode == "BRA" and target and int(target, 16) <= address]

    def body(loop: tuple[int, int]) -> list[str]:
        return [opcode for address, opcode, _ in instructions if loop[0] <= address <= loop[1]]

    with_mma = [loop for loop in loops if mma_names.intersection(body(loop)) and "EXIT" not in body(loop)]
    if not with_mma:
        return None
    return sum(1 for opcode in body(min(with_mma, key=lambda loop: loop[1] - loop[0])) if opcode != "NOP")


def mma_kinds(opcodes: Counter) -> list[str]:
    """The tensor-core MMA kinds present, e.g. ["HGMMA", "HMMA"] when some dots fell back to HMMA."""
    return [kind for kind, names in MMA_KINDS.items() if any(opcodes[name] for name in names)]
