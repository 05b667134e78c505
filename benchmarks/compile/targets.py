"""The GPU architectures the report compiles for, with the per-SM and per-block limits that decide
whether a compiled kernel can launch and how many of its blocks share an SM."""
from dataclasses import dataclass

from triton.backends.compiler import GPUTarget

REGISTERS_PER_SM = 65536
REGISTER_ALLOCATION_UNIT = 256  # registers are allocated per warp in chunks of this many
RESERVED_SHARED_PER_BLOCK = 1024  # the CUDA runtime keeps 1 KiB of every block's shared memory (sm_80+)
MAX_BLOCKS_PER_SM = 32


@dataclass(frozen=True)
class Arch:
    name: str
    capability: int
    card: str  # the data-centre card the limits are those of
    shared_per_block: int  # bytes, the opt-in maximum a kernel may launch with
    shared_per_sm: int
    max_warps_per_sm: int = 64

    def target(self) -> GPUTarget:
        return GPUTarget("cuda", self.capability, 32)

    def blocks_per_sm(self, registers: int, num_warps: int, shared_bytes: int) -> int:
        """Resident blocks per SM: the tightest of the register, shared-memory, warp and block limits
        (0 when one block does not fit)."""
        if shared_bytes > self.shared_per_block:
            return 0
        registers_per_warp = -(-registers * 32 // REGISTER_ALLOCATION_UNIT) * REGISTER_ALLOCATION_UNIT
        by_registers = REGISTERS_PER_SM // max(1, registers_per_warp * num_warps)
        by_shared = self.shared_per_sm // (shared_bytes + RESERVED_SHARED_PER_BLOCK)
        by_warps = self.max_warps_per_sm // num_warps
        return min(by_registers, by_shared, by_warps, MAX_BLOCKS_PER_SM)


ARCHS = {
    arch.name: arch
    for arch in (
        Arch("sm_80", 80, "A100", shared_per_block=163 * 1024, shared_per_sm=164 * 1024),
        Arch("sm_90", 90, "H100/H200", shared_per_block=227 * 1024, shared_per_sm=228 * 1024),
        Arch("sm_100", 100, "B200", shared_per_block=227 * 1024, shared_per_sm=228 * 1024),
    )
}
