"""Reading a compiled kernel back: the ptxas log (registers, spills) and the SASS listing
(instruction mix: tensor-core MMA kinds, TMA loads, local-memory traffic)."""
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


def sass_opcodes(cubin: bytes) -> Counter:
    """How many times each opcode occurs in the cubin's SASS (NOP padding left out)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kernel.cubin"
        path.write_bytes(cubin)
        listing = subprocess.run([knobs.nvidia.cuobjdump.path, "-sass", str(path)],
                                 check=True, capture_output=True, text=True).stdout
    opcodes = Counter(_INSTRUCTION.findall(listing))
    opcodes.pop("NOP", None)
    return opcodes


def mma_kinds(opcodes: Counter) -> list[str]:
    """The tensor-core MMA kinds present, e.g. ["HGMMA", "HMMA"] when some dots fell back to HMMA."""
    return [kind for kind, names in MMA_KINDS.items() if any(opcodes[name] for name in names)]
