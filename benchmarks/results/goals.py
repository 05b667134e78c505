"""The project's performance goals, as data: which benchmark's JSON rows each one reads, and the bar.

A goal's value is the worst (smallest) metric over the rows it selects, among our rows that ran: a goal
holds only where it holds on every case it names. Rows are the dicts of a results JSON's "rows".

Fields each benchmark's rows must carry for its goals (benchmarks written later must write these):
- every row: "provider" ("ours" for our kernels, "ours-varlen" for varlen_attention's rows) and
  "available" (false when the provider did not run);
- attention, backward, masked: "mode" ("forward", "backward", "fwd+bwd"), "mask", "seq_len",
  "speedup_vs_sdpa_default" (SDPA default's median time / ours, same case and mode), "speedup_vs_flex"
  (FlexAttention's likewise); masked, score-variant and "documents" rows: "rate_vs_causal" (our TFLOP/s /
  ours on the causal case of the same shape; a window's and documents' FLOPs count the pairs they
  attend); masked, "documents" rows: "speedup_vs_padded" (the padded documents' median time / the
  packed ones', same provider, ours for ours-varlen) and "padding_fraction" (the padded batch's share of
  padding);
- positional: "op" ("encode", "embed"), "seq_len", "copy_fraction" (GB/s / the measured copy GB/s),
  "speedups" ({baseline provider: its median time / ours});
- decode: "context" (keys in the cache), "copy_fraction" (our GB/s, bytes read + written, over the copy
  GB/s measured in the same run);
- pipelines: one row per (task, variant): "agrees_with_reference" (same predictions as sdpa) and
  "speedup_vs_sdpa" (sdpa's median time / ours).
"""

import statistics
from collections.abc import Callable
from dataclasses import dataclass

OURS = "ours"
GOAL_LENGTH = 2048  # the attention goals hold from this sequence length up
DECODE_CONTEXT = 8192  # the decode goal: caches long enough that reading them dominates a step
UNMASKED = ("none", "causal")
PADDING_MASKS = ("key-padding", "key-padding-50")  # bool (B, 1, 1, N) key padding, ~25% and ~50%
SCORE_VARIANTS = ("window", "softcap", "alibi", "sinks")  # kernels.attention's keyword variants, on causal
VARLEN = "ours-varlen"  # ours through kernels.varlen_attention, on the packed documents
DOCUMENTS = "documents"  # packed documents, causal within each


@dataclass(frozen=True)
class Goal:
    benchmark: str  # the "benchmark" of the JSON it reads
    title: str
    threshold: float
    unit: str  # "x" (a speed-up) or "%" (a fraction, shown as a percentage)
    selects: Callable[[dict], bool]  # which of our rows count
    metric: Callable[[dict], float | None]
    providers: tuple[str, ...] = (OURS,)  # whose rows are ours

    def format(self, value: float) -> str:
        return f"{value:.2f}x" if self.unit == "x" else f"{value:.0%}"

    def evaluate(self, rows: list[dict]) -> "Outcome":
        values = [self.metric(row) for row in rows if row.get("provider") in self.providers and row.get("available")
                  and self.selects(row)]
        values = [value for value in values if value is not None]
        if not values:
            return Outcome(None, None, 0, False)
        worst = min(values)
        return Outcome(worst, statistics.median(values), len(values), worst >= self.threshold)


@dataclass(frozen=True)
class Outcome:
    worst: float | None  # None when no row of ours was measured
    median: float | None
    rows: int
    passed: bool


def _sdpa_speedup(row: dict) -> float | None:
    return row.get("speedup_vs_sdpa_default")


def _field(name: str) -> Callable[[dict], float | None]:
    return lambda row: row.get(name)


def _copy_fraction(row: dict) -> float | None:
    return row.get("copy_fraction")


def _speedup_over(baseline: str) -> Callable[[dict], float | None]:
    return lambda row: (row.get("speedups") or {}).get(baseline)


def _pipeline_speedup(row: dict) -> float | None:
    """The speed-up over sdpa, counted as 0 where the predictions differ: a fast wrong answer misses."""
    speedup = row.get("speedup_vs_sdpa")
    if speedup is None:
        return None
    return speedup if row.get("agrees_with_reference") else 0.0


def _padding_saved(row: dict) -> float | None:
    """The packed step's speed-up over the padded one times the share of real tokens: >= 1 when packing
    saves at least the padding fraction of the padded step's time."""
    speedup, padding = row.get("speedup_vs_padded"), row.get("padding_fraction")
    return None if speedup is None or padding is None else speedup * (1 - padding)


def _attention(mode: str, masks: tuple[str, ...]) -> Callable[[dict], bool]:
    return lambda row: row.get("mode", "forward") == mode and row["mask"] in masks and row["seq_len"] >= GOAL_LENGTH


def _encode_sequences(row: dict) -> bool:
    """Encoding of whole sequences: the single-token decode step is too small to be bandwidth-bound."""
    return row["op"] == "encode" and row["seq_len"] > 1


GOALS = (
    Goal("attention", f"forward >= 1.0x SDPA default (N >= {GOAL_LENGTH}, no mask and causal)",
         1.0, "x", _attention("forward", UNMASKED), _sdpa_speedup),
    Goal("backward", f"backward >= 1.0x SDPA default (N >= {GOAL_LENGTH}, no mask and causal)",
         1.0, "x", _attention("backward", UNMASKED), _sdpa_speedup),
    Goal("backward", f"forward + backward >= 1.0x SDPA default (N >= {GOAL_LENGTH}, no mask and causal)",
         1.0, "x", _attention("fwd+bwd", UNMASKED), _sdpa_speedup),
    Goal("masked", f"bool key-padding mask >= 3x SDPA default (N >= {GOAL_LENGTH}, ~25% and ~50% padding)",
         3.0, "x", _attention("forward", PADDING_MASKS), _sdpa_speedup),
    Goal("decode", f"decode attention >= 80% of the copy GB/s (context >= {DECODE_CONTEXT})",
         0.80, "%", lambda row: row["context"] >= DECODE_CONTEXT, _copy_fraction),
    Goal("positional", "positional encoding >= 85% of the copy GB/s (whole sequences)",
         0.85, "%", _encode_sequences, _copy_fraction),
    Goal("positional", "positional encoding >= 2x the course's table add",
         2.0, "x", _encode_sequences, _speedup_over("reference-table")),
    Goal("positional", "fused embedding >= 1.5x eager embedding * sqrt(d) + table",
         1.5, "x", lambda row: row["op"] == "embed", _speedup_over("torch-eager")),
    Goal("pipelines", "HF pipelines >= 1.2x sdpa with identical predictions (every task)",
         1.2, "x", lambda row: True, _pipeline_speedup),
    Goal("masked", f"sliding window >= 90% of causal's TFLOP/s per attended score (N >= {GOAL_LENGTH})",
         0.90, "%", _attention("forward", ("window",)), _field("rate_vs_causal")),
    Goal("masked", f"softcap, ALiBi, sinks >= 95% of causal's TFLOP/s (N >= {GOAL_LENGTH})",
         0.95, "%", _attention("forward", ("softcap", "alibi", "sinks")), _field("rate_vs_causal")),
    Goal("masked", f"score variants >= 1.0x FlexAttention (N >= {GOAL_LENGTH})",
         1.0, "x", _attention("forward", SCORE_VARIANTS), _field("speedup_vs_flex")),
    Goal("masked", f"packed documents (dense mask, varlen) >= 90% of causal's TFLOP/s per attended score "
         f"(N >= {GOAL_LENGTH})", 0.90, "%", _attention("forward", (DOCUMENTS,)), _field("rate_vs_causal"),
         (OURS, VARLEN)),
    Goal("masked", f"packed documents (dense mask, varlen) >= 1.0x FlexAttention (N >= {GOAL_LENGTH})",
         1.0, "x", _attention("forward", (DOCUMENTS,)), _field("speedup_vs_flex"), (OURS, VARLEN)),
    Goal("masked", f"packed training (varlen fwd+bwd): speed-up over padded x (1 - padding fraction) >= 1.0x "
         f"(N >= {GOAL_LENGTH})", 1.0, "x", _attention("fwd+bwd", (DOCUMENTS,)),
         _padding_saved, (VARLEN,)),
)
