"""The rules the compile report holds every shipped kernel to (the CI gate asserts them, the report
lists what breaks them). Rows are the report's JSON rows: a case's fields plus a compile's."""
from collections.abc import Callable
from dataclasses import dataclass

DOT_KERNELS = ("attention_forward_kernel", "attention_backward_dk_dv_kernel", "attention_backward_dq_kernel")
TEST_DTYPES = ("float64",)  # for exact checks, not speed: launchable is enough


@dataclass(frozen=True)
class Rule:
    name: str
    applies: Callable[[dict], bool]
    holds: Callable[[dict], bool]
    why: str


RULES = (
    Rule("compiles", lambda row: True, lambda row: row["error"] is None,
         "a tile that does not compile fails on the GPU at autotune time or, untimed, at launch"),
    Rule("fits shared memory", lambda row: row["error"] is None,
         lambda row: row["shared_bytes"] <= row["shared_limit"],
         "a block over the per-block limit cannot launch (OutOfResources)"),
    Rule("no spills", lambda row: row["error"] is None and row["dtype"] not in TEST_DTYPES,
         lambda row: row["spill_store_bytes"] == 0 and row["spill_load_bytes"] == 0,
         "spilled registers go through local memory: a slow kernel"),
    Rule("all dots on HGMMA",
         lambda row: (row["error"] is None and row["arch"] == "sm_90" and row["kernel"] in DOT_KERNELS
                      and row["dtype"] in ("float16", "bfloat16")),
         lambda row: row["mma"] == ["HGMMA"],
         "16-bit dots on sm_90 belong on warpgroup MMA; HMMA is the Ampere path at a fraction of the rate"),
)


def broken_rules(row: dict) -> list[str]:
    return [rule.name for rule in RULES if rule.applies(row) and not rule.holds(row)]


def problems(rows: list[dict]) -> list[tuple[dict, list[str]]]:
    """(row, names of the rules it breaks) for every row that breaks one."""
    return [(row, broken) for row in rows if (broken := broken_rules(row))]
