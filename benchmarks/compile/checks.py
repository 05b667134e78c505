"""The rules the compile report holds every shipped kernel to (the CI gate asserts them, the report
lists what breaks them). Rows are the report's JSON rows: a case's fields plus a compile's."""
from collections.abc import Callable
from dataclasses import dataclass

ALL_DTYPES = ("float16", "bfloat16", "float32", "float64")
DOT_KERNELS = ("attention_forward_kernel", "attention_backward_dk_dv_kernel", "attention_backward_dq_kernel")


@dataclass(frozen=True)
class Rule:
    name: str
    why: str
    holds: Callable[[dict], bool]  # on a row the rule applies to
    dtypes: tuple[str, ...] = ALL_DTYPES
    kernels: tuple[str, ...] | None = None  # None: every kernel
    arch: str | None = None  # None: every architecture
    of_compiled_code: bool = True  # judges the compiled code: needs a compile that succeeded

    def applies(self, row: dict) -> bool:
        return ((not self.of_compiled_code or row["error"] is None) and row["dtype"] in self.dtypes
                and (self.kernels is None or row["kernel"] in self.kernels)
                and (self.arch is None or row["arch"] == self.arch))


RULES = (
    Rule("compiles", "a tile that does not compile fails on the GPU at autotune time or, untimed, at launch",
         lambda row: row["error"] is None, of_compiled_code=False),
    Rule("fits shared memory", "a block over the per-block limit cannot launch (OutOfResources)",
         lambda row: row["shared_bytes"] <= row["shared_limit"]),
    Rule("no spills", "spilled registers go through local memory: a slow kernel (float64, a test dtype, is exempt)",
         lambda row: row["spill_store_bytes"] == 0 and row["spill_load_bytes"] == 0,
         dtypes=("float16", "bfloat16", "float32")),
    Rule("all dots on HGMMA",
         "16-bit dots on sm_90 belong on warpgroup MMA; HMMA is the Ampere path at a fraction of the rate",
         lambda row: row["mma"] == ["HGMMA"], dtypes=("float16", "bfloat16"), kernels=DOT_KERNELS, arch="sm_90"),
    Rule("TMA loads",
         "on sm_90 the forward reads Q, K and V through tensor descriptors (UTMALDG): no thread computes addresses",
         lambda row: row["tma_loads"] > 0, dtypes=("float16", "bfloat16", "float32"),
         kernels=("attention_forward_kernel",), arch="sm_90"),
)


def broken_rules(row: dict) -> list[str]:
    return [rule.name for rule in RULES if rule.applies(row) and not rule.holds(row)]


def problems(rows: list[dict]) -> list[tuple[dict, list[str]]]:
    """(row, names of the rules it breaks) for every row that breaks one."""
    return [(row, broken) for row in rows if (broken := broken_rules(row))]
