"""Tests of the benchmark suite's own code: work counts by hand, the masks of the `masked` sweep, one
`masked --quick --device cpu` run (FlexAttention compiled, no Triton interpreter) and its JSON schema,
FlexAttention's availability, `all` over a fake command set, and the results report from synthetic runs.
"""

import argparse
import json
from pathlib import Path

import pytest
import torch

import benchmarks.commands
import reference
from benchmarks.all import run as all_command
from benchmarks.attention import flex as flex_module
from benchmarks.attention.cases import (
    CAUSAL_KINDS,
    DOCUMENT_KINDS,
    MASKED_CASES,
    SCORE_VARIANT_KINDS,
    TRAINING_MASKS,
    AttentionCase,
    AttentionInputs,
    MaskKind,
    attention_cases,
    make_inputs,
    sdpa_equivalent,
)
from benchmarks.attention.documents import document_lengths
from benchmarks.attention.flops import attention_backward_flops, attention_forward_flops
from benchmarks.attention.measure import measure_cases, with_twin_comparisons
from benchmarks.attention.modes import Mode
from benchmarks.attention.providers import FLEX, VARLEN, attention_providers, flex_provider
from benchmarks.attention.summary import summary_lines
from benchmarks.harness.ceilings import Ceilings, measure_ceilings
from benchmarks.harness.command_run import Command
from benchmarks.harness.rows import Row
from benchmarks.harness.timing import Stopwatch, Timing
from benchmarks.results import run as report
from benchmarks.results.goals import GOALS
from benchmarks.results.readme import NO_RUN, RESULTS_DIR, readme_text
from support.benchmark_runs import run_benchmarks, run_quick_on_cpu

CPU = torch.device("cpu")
UNIT_CEILINGS = Ceilings(matmul_tflops=1.0, matmul="unit matmul", copy_gbps=1.0, copy="unit copy")


# --- work counts, by hand ------------------------------------------------------------------------------


def test_forward_flops_by_hand():
    assert attention_forward_flops(2, 8, 1024, 1024, 64, causal=False) == 4 * 2 * 8 * 1024 * 1024 * 64 == 2**32
    assert attention_forward_flops(2, 8, 1024, 1024, 64, causal=True) == 2**31
    assert attention_forward_flops(2, 8, 1, 1024, 64, causal=True) == 4_194_304  # Nq != Nk: not halved
    assert attention_backward_flops(2, 8, 1024, 1024, 64, causal=False) == 10_737_418_240  # 2.5x


def test_masked_cases_count_the_dense_work_whatever_the_mask():
    for kind in set(MASKED_CASES.masks) - CAUSAL_KINDS - DOCUMENT_KINDS:  # causal-key-padding: not halved
        assert Mode.FORWARD.flops(AttentionCase(2, 8, 1024, 64, kind)) == 2**32
    for kind in CAUSAL_KINDS - {MaskKind.WINDOW}:  # softcap, ALiBi and sinks on causal attention
        assert Mode.FORWARD.flops(AttentionCase(2, 8, 1024, 64, kind)) == 2**31


def test_a_sliding_window_counts_the_pairs_in_its_band():
    # N = 1024, window 256: rows 0..255 see 1..256 keys, the 768 others 256 each.
    pairs = 256 * 257 // 2 + 768 * 256
    assert Mode.FORWARD.flops(AttentionCase(2, 8, 1024, 64, MaskKind.WINDOW)) == 4 * 2 * 8 * pairs * 64
    assert attention_forward_flops(1, 1, 8, 8, 1, causal=True, window=8) == 4 * 36  # the whole triangle
    assert attention_backward_flops(1, 1, 8, 8, 1, causal=True, window=2) == 4 * 15 * 5 // 2  # 1 + 7 * 2


def test_ceilings_convert_times_to_tflops_and_gbps():
    class FixedStopwatch:
        device = CPU

        def measure(self, fn):
            return Timing(median_ms=2.0, p20_ms=1.0, p80_ms=3.0, samples=10)

    ceilings = measure_ceilings.__wrapped__(FixedStopwatch())
    assert ceilings.matmul_tflops == pytest.approx(2 * 1024**3 / 2e-3 / 1e12)  # fp32 1024^3 matmul on the CPU
    assert ceilings.copy_gbps == pytest.approx(2 * (64 << 20) / 2e-3 / 1e9)  # 64 MiB read + written


# --- the masks of the masked sweep -----------------------------------------------------------------------


def _mask(kind: MaskKind, batch=8, n=64, dtype=torch.float32) -> torch.Tensor:
    return make_inputs(AttentionCase(batch, 2, n, 16, kind), dtype, CPU, seed=3).attn_mask


def test_half_padding_keeps_a_prefix_of_a_quarter_to_three_quarters_of_the_keys():
    mask = _mask(MaskKind.KEY_PADDING_HALF)
    assert mask.dtype == torch.bool and mask.shape == (8, 1, 1, 64)
    lengths = mask.sum(-1).flatten()
    assert lengths.min() >= 16 and lengths.max() <= 48 and len(set(lengths.tolist())) > 1
    assert torch.equal(mask, torch.arange(64) < lengths.view(8, 1, 1, 1))


def test_sliding_window_is_one_causal_band_of_a_quarter_of_the_keys():
    mask = _mask(MaskKind.SLIDING_WINDOW)
    i, j = torch.arange(64).view(64, 1), torch.arange(64)
    assert mask.shape == (64, 64)  # broadcast over batch and heads
    assert torch.equal(mask, (j <= i) & (j > i - 16))


def test_additive_bias_is_a_distance_penalty_in_the_query_dtype():
    bias = _mask(MaskKind.ADDITIVE_BIAS, dtype=torch.bfloat16)
    assert bias.dtype == torch.bfloat16 and bias.shape == (8, 1, 64, 64)
    assert torch.all(bias.diagonal(dim1=-2, dim2=-1) == 0) and torch.all(bias <= 0)
    slopes = -bias[:, 0, 0, 1].float()  # the penalty one key away
    assert torch.all((slopes >= 1 / 16 - 1e-2) & (slopes <= 1 / 2 + 1e-2)) and slopes.unique().numel() > 1


def test_causal_key_padding_is_one_bool_mask_of_both():
    mask = _mask(MaskKind.CAUSAL_KEY_PADDING)
    assert mask.shape == (8, 1, 64, 64) and mask.dtype == torch.bool
    lengths = mask[:, 0, -1].sum(-1)  # the last query sees every valid key
    padding = torch.arange(64) < lengths.view(8, 1, 1, 1)
    assert torch.equal(mask, torch.ones(64, 64, dtype=torch.bool).tril() & padding)
    assert lengths.min() >= 32 and mask.any(-1).all()  # no fully masked query row


@pytest.mark.parametrize("kind", SCORE_VARIANT_KINDS, ids=lambda kind: kind.value)
def test_score_variant_cases_match_the_reference_and_sdpa_where_it_can_express_them(kind):
    """Each variant case's keywords on the reference, against its definition written out here, and SDPA
    on the equivalent mask where one exists."""
    inputs = make_inputs(AttentionCase(2, 4, 24, 8, kind), torch.float64, CPU, seed=5)
    q, k, v = inputs.leaves
    scores = q @ k.transpose(-1, -2) / 8**0.5
    distance = torch.arange(24).view(24, 1) - torch.arange(24)
    keep = distance >= 0
    sink = None
    if kind is MaskKind.WINDOW:
        keep = keep & (distance < 24 // 4)
    elif kind is MaskKind.SOFTCAP:
        scores = 50.0 * torch.tanh(scores / 50.0)
    elif kind is MaskKind.ALIBI:
        slopes = 2.0 ** (-8.0 * torch.arange(1, 5) / 4)
        scores = scores - slopes.view(4, 1, 1).double() * distance.abs()
    else:
        sink = inputs.variants["sinks"].double().view(1, 4, 1, 1).expand(2, 4, 24, 1)
    scores = scores.masked_fill(~keep, float("-inf"))
    weights = torch.softmax(scores if sink is None else torch.cat([scores, sink], -1), -1)[..., :24]
    expected = weights @ v
    got = reference.scaled_dot_product_attention(q, k, v, is_causal=inputs.is_causal, **inputs.variants)
    torch.testing.assert_close(got, expected)
    if kind in (MaskKind.SOFTCAP, MaskKind.SINKS):
        with pytest.raises(NotImplementedError, match="torch SDPA has no"):
            sdpa_equivalent(inputs)
        return
    attn_mask, is_causal = sdpa_equivalent(inputs)
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
    torch.testing.assert_close(sdpa, expected)


# --- packed documents -------------------------------------------------------------------------------------


def test_documents_are_a_fixed_recipe_of_8_to_16_uneven_documents_a_row():
    for n in (2048, 4096, 8192, 16384):  # the GPU's lengths
        lengths = document_lengths(n)
        assert sum(lengths) == n and 8 <= len(lengths) <= 16 and max(lengths) <= round(5 * n / 32)
        assert len(set(lengths)) > len(lengths) // 2  # uneven
    pairs = sum(length * (length + 1) // 2 for length in document_lengths(1024))  # causal within each
    for kind in DOCUMENT_KINDS:  # packed or padded: the same attended pairs
        case = AttentionCase(2, 8, 1024, 64, kind)
        assert Mode.FORWARD.flops(case) == 4 * 2 * 8 * pairs * 64
        assert Mode.FORWARD_BACKWARD.flops(case) == 4 * 2 * 8 * pairs * 64 * 7 // 2
        assert case.padding_fraction == 1 - 1024 / (len(case.documents) * max(case.documents))


def test_packed_and_padded_documents_are_the_same_attention():
    """The dense mask, the ids and varlen offsets, and the padded batch, against the lengths by hand; the
    reference on the padded batch gives the packed one's output, document by document."""
    packed = make_inputs(AttentionCase(1, 2, 64, 8, MaskKind.DOCUMENTS), torch.float64, CPU, seed=4)
    padded_case = AttentionCase(1, 2, 64, 8, MaskKind.PADDED_DOCUMENTS)
    padded = make_inputs(padded_case, torch.float64, CPU, seed=4)
    lengths = document_lengths(64)
    expected_mask = torch.zeros(64, 64, dtype=torch.bool)
    start = 0
    for length in lengths:
        expected_mask[start:start + length, start:start + length] = torch.ones(length, length).tril().bool()
        start += length
    assert torch.equal(packed.attn_mask, expected_mask) and not packed.is_causal
    documents = packed.documents
    assert documents.lengths == lengths
    assert documents.ids.tolist() == [i for i, length in enumerate(lengths) for _ in range(length)]
    offsets = torch.tensor((0, *lengths)).cumsum(0)
    assert documents.cu_seqlens.tolist() == [*offsets[:-1].tolist(), *(offsets[:-1] + 64).tolist(), 128]  # 2 heads
    assert padded.q.shape == (len(lengths), 2, max(lengths), 8) and padded.key_padding.sum(-1).tolist() == list(lengths)
    assert padded_case.padding_fraction == pytest.approx(1 - padded.key_padding.float().mean().item())
    causal = torch.ones(max(lengths), max(lengths)).tril().bool()
    assert torch.equal(padded.attn_mask, causal & padded.key_padding[:, None, None])
    for row, (start, length) in enumerate(zip(offsets.tolist(), lengths)):  # the padded row of each document
        for t, source in zip((padded.q, padded.k, padded.v), packed.leaves):
            t[row, :, :length] = source[0, :, start:start + length]
    packed_out = reference.scaled_dot_product_attention(*packed.leaves, attn_mask=packed.attn_mask)
    padded_out = reference.scaled_dot_product_attention(*padded.leaves, attn_mask=padded.attn_mask)
    for row, (start, length) in enumerate(zip(offsets.tolist(), lengths)):
        torch.testing.assert_close(padded_out[row, :, :length], packed_out[0, :, start:start + length])


def _timed_row(mask: MaskKind, provider: str, median_ms: float, mode=Mode.FORWARD) -> Row:
    case = AttentionCase(1, 2, 64, 8, mask, mode)
    timing = Timing(median_ms=median_ms, p20_ms=median_ms, p80_ms=median_ms, samples=10)
    return Row(case, provider, provider, timing=timing, values={"tflops": case.flops / median_ms / 1e9})


def test_documents_are_compared_with_their_causal_and_padded_twins_varlen_with_ours():
    fwd_bwd = Mode.FORWARD_BACKWARD
    rows = with_twin_comparisons([
        _timed_row(MaskKind.CAUSAL, "ours", 2.0), _timed_row(MaskKind.DOCUMENTS, "ours", 1.0),
        _timed_row(MaskKind.DOCUMENTS, VARLEN, 0.5), _timed_row(MaskKind.DOCUMENTS, "sdpa-math", 3.0),
        _timed_row(MaskKind.PADDED_DOCUMENTS, "ours", 6.0, fwd_bwd),
        _timed_row(MaskKind.DOCUMENTS, VARLEN, 2.0, fwd_bwd),  # its padded twin: ours
        _timed_row(MaskKind.PADDED_DOCUMENTS, "sdpa-math", 9.0, fwd_bwd),
        _timed_row(MaskKind.DOCUMENTS, "sdpa-math", 3.0, fwd_bwd),
        _timed_row(MaskKind.DOCUMENTS, "reference", 1.0, fwd_bwd),  # no padded twin
    ])
    causal_tflops = rows[0]["tflops"]
    rates = [row["rate_vs_causal"] for row in rows[1:4]]
    assert rates == [pytest.approx(row["tflops"] / causal_tflops) for row in rows[1:3]] + [None]  # sdpa: no twin
    assert [row["speedup_vs_padded"] for row in rows] == [None] * 5 + [3.0, None, 3.0, None]
    assert rows[5]["rate_vs_causal"] is None  # no causal row in fwd+bwd


def test_packed_training_goal_reads_varlen_speedup_times_the_real_tokens_share():
    goal = next(goal for goal in GOALS if goal.title.startswith("packed training"))
    row = {"mode": "fwd+bwd", "mask": "documents", "seq_len": 4096, "available": True, "padding_fraction": 0.4}
    rows = [{**row, "provider": VARLEN, "speedup_vs_padded": 2.0},
            {**row, "provider": VARLEN, "speedup_vs_padded": 1.5},
            {**row, "provider": "ours", "speedup_vs_padded": 0.1}]  # the dense kernel's row: not this goal's
    outcome = goal.evaluate(rows)
    assert outcome.worst == pytest.approx(0.9) and outcome.rows == 2 and not outcome.passed



def test_masked_sweep_has_its_own_cases():
    cases = attention_cases(CPU, quick=True, case_set=MASKED_CASES)
    assert [c.mask for c in cases] == list(MASKED_CASES.masks) and {c.seq_len for c in cases} == {128}
    gpu = attention_cases(torch.device("cuda"), quick=False, case_set=MASKED_CASES)
    assert {c.seq_len for c in gpu} == {2048, 4096, 8192, 16384} and {c.head_dim for c in gpu} == {128}
    assert all(c.batch * c.seq_len == 16384 for c in gpu)


# --- FlexAttention --------------------------------------------------------------------------------------


def test_flex_is_unavailable_on_a_cpu_without_a_cpp_compiler(monkeypatch):
    monkeypatch.setattr(flex_module, "_has_cpp_compiler", lambda: False)
    provider = flex_provider(CPU)
    assert provider.name == FLEX and "C++ compiler" in provider.skip_reason(is_smallest_case=True)
    assert flex_provider(torch.device("cuda")).unavailable_reason is None  # the GPU needs no C++ compiler


def test_flex_is_unavailable_without_flex_attention_in_torch(monkeypatch):
    monkeypatch.setattr(flex_module, "_IMPORT_ERROR", "torch 2.4 has no FlexAttention")
    assert flex_provider(CPU).unavailable_reason == "torch 2.4 has no FlexAttention"


def test_flex_builds_each_block_mask_once_outside_the_calls(monkeypatch):
    built = []
    real = flex_module.create_block_mask
    monkeypatch.setattr(flex_module, "create_block_mask", lambda *a, **k: built.append(a) or real(*a, **k))
    flex = flex_module.FlexAttention(CPU)
    padded = make_inputs(AttentionCase(2, 2, 32, 16, MaskKind.KEY_PADDING), torch.float32, CPU, seed=0)
    causal = make_inputs(AttentionCase(2, 2, 32, 16, MaskKind.CAUSAL), torch.float32, CPU, seed=0)
    for inputs in (padded, padded.detached(), causal, causal):
        flex.prepare(inputs)
    assert len(built) == 2
    assert built[0][1:] == (2, None, 32, 32)  # a block mask per batch row; heads broadcast


def test_flex_runs_grouped_query_decoding_against_float64():
    """Fewer key/value heads than query heads (enable_gqa), one query over the cache: decode's shape."""
    q, k, v = torch.randn(2, 4, 1, 16), torch.randn(2, 2, 64, 16), torch.randn(2, 2, 64, 16)
    inputs = AttentionInputs(q, k, v, attn_mask=None, is_causal=False)
    provider = flex_provider(CPU)
    with provider.context():
        provider.prepare(inputs)
        out = provider.call(inputs)
    grouped = [t.double().repeat_interleave(2, dim=1) for t in (k, v)]
    expected = torch.softmax(q.double() @ grouped[0].transpose(-1, -2) / 4, dim=-1) @ grouped[1]
    assert out.shape == q.shape and (out.double() - expected).abs().max() < 1e-5


def test_flex_reports_no_backward_on_the_cpu():
    case = AttentionCase(1, 2, 16, 8, MaskKind.NONE)
    (rows,) = measure_cases([case], [flex_provider(CPU)], torch.float32, Stopwatch(CPU, quick=True),
                            UNIT_CEILINGS, modes=(Mode.BACKWARD,))
    assert rows[0].reason == "NotImplementedError: FlexAttention has no backward on the CPU"


# --- `masked --quick --device cpu`, end to end ------------------------------------------------------------

PROVIDERS = {p.name for p in attention_providers(CPU, varlen=True)}
NO_SDPA_EQUIVALENT = {MaskKind.SOFTCAP, MaskKind.SINKS}
OURS_PROVIDERS = ("ours", VARLEN)  # on a CPU without the interpreter: checked in a child, or unavailable


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory):
    """(exit code, JSON, screen) of one quick CPU run, FlexAttention compiled, without the interpreter."""
    out = tmp_path_factory.mktemp("masked-out")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("TRITON_INTERPRET", raising=False)
        return (*run_quick_on_cpu("masked", out), out)


def test_masked_run_says_what_it_measured(masked_run):
    code, results, screen, out = masked_run
    assert code == 0 and results["benchmark"] == "masked" and results["interrupted"] is False
    assert set(results["environment"]) >= {"card", "device", "date", "torch", "triton", "git_commit"}
    settings = results["settings"]
    assert settings["modes"] == ["forward", "fwd+bwd"] and settings["dtype"] == "fp32" and settings["quick"] is True
    assert "dense FLOPs" in settings["note"] and set(settings["providers"]) == PROVIDERS
    assert settings["providers"][FLEX] in screen
    plots = [f"masked_d64_{m.value}.png" for m in MASKED_CASES.masks] + [f"masked_d64_{m.value}_fwd-bwd.png"
                                                                           for m in TRAINING_MASKS]
    assert sorted(p.name for p in out.glob("*.png")) == sorted(plots)


SCHEMA = {  # field -> the JSON types it may hold (None: null, for a provider that did not run)
    "batch": (int,), "heads": (int,), "seq_len": (int,), "head_dim": (int,), "mask": (str,),
    "causal": (bool,), "mode": (str,), "flops": (int,), "provider": (str,), "label": (str,),
    "available": (bool,), "reason": (str, type(None)), "median_ms": (float, type(None)),
    "p20_ms": (float, type(None)), "p80_ms": (float, type(None)), "tflops": (float, type(None)),
    "ceiling_fraction": (float, type(None)), "speedup_vs_sdpa_default": (float, type(None)),
    "speedup_vs_flex": (float, type(None)), "rate_vs_causal": (float, type(None)),
    "speedup_vs_padded": (float, type(None)), "documents": (int, type(None)), "padding_fraction": (float, type(None)),
    "max_abs_error": (float, type(None)), "max_abs_errors": (dict, type(None)),
    "peak_memory_bytes": (int, type(None)), "samples": (int, type(None)), "too_noisy_to_rank": (bool, type(None)),
}


def test_masked_rows_follow_the_schema(masked_run):
    rows = masked_run[1]["rows"]
    expected = {(mode, m.value, p) for mode, masks in (("forward", MASKED_CASES.masks), ("fwd+bwd", TRAINING_MASKS))
                for m in masks for p in PROVIDERS if p != VARLEN or m is MaskKind.DOCUMENTS}
    assert len(rows) == len(expected) and {(r["mode"], r["mask"], r["provider"]) for r in rows} == expected
    for row in rows:
        assert set(row) == set(SCHEMA), row["provider"]
        for field, types_allowed in SCHEMA.items():
            assert isinstance(row[field], types_allowed), (field, row[field])
        assert row["available"] == (row["reason"] is None)
        timed = row["available"] and row["provider"] not in OURS_PROVIDERS  # ours on a CPU: not timed
        assert timed == (row["median_ms"] is not None) == (row["samples"] is not None)


def test_masked_rows_that_ran_have_consistent_units(masked_run):
    results = masked_run[1]
    ran = [r for r in results["rows"] if r["available"] and r["provider"] not in OURS_PROVIDERS]  # ours: not timed
    assert {(r["mode"], r["mask"], r["provider"]) for r in ran} >= {
        ("forward", m.value, p) for m in MASKED_CASES.masks for p in ("sdpa-default", "sdpa-math", FLEX, "reference")
        if not (p.startswith("sdpa") and m in NO_SDPA_EQUIVALENT) and not (p == FLEX and m is MaskKind.SINKS)} | {
        ("fwd+bwd", m.value, p) for m in TRAINING_MASKS for p in ("sdpa-default", "sdpa-math", "reference")}
    for row in ran:
        case = AttentionCase(row["batch"], row["heads"], row["seq_len"], row["head_dim"], MaskKind(row["mask"]))
        assert row["flops"] == Mode(row["mode"]).flops(case)  # by hand above
        assert row["p20_ms"] <= row["median_ms"] <= row["p80_ms"]
        assert row["tflops"] == pytest.approx(row["flops"] / (row["median_ms"] * 1e-3) / 1e12)  # TFLOP/s, ms
        assert row["ceiling_fraction"] == pytest.approx(row["tflops"] / results["ceilings"]["matmul_tflops"])
        assert 0 <= row["max_abs_error"] < 1e-4, row  # fp32 against float64, FlexAttention included
    forward = [r for r in ran if r["mode"] == "forward"]
    for mask in set(MASKED_CASES.masks) - NO_SDPA_EQUIVALENT - {MaskKind.SINKS}:
        default = next(r for r in forward if r["provider"] == "sdpa-default" and r["mask"] == mask.value)
        assert default["speedup_vs_sdpa_default"] == 1.0
        flex = next(r for r in forward if r["provider"] == FLEX and r["mask"] == mask.value)
        assert flex["speedup_vs_sdpa_default"] == pytest.approx(default["median_ms"] / flex["median_ms"])


def test_score_variant_and_document_rows_are_rated_against_the_causal_row_and_flex(masked_run):
    """Computed from the run's own times: rate_vs_causal (forward; no causal row in fwd+bwd) and
    speedup_vs_flex (where FlexAttention was timed in the same case and mode)."""
    ran = [r for r in masked_run[1]["rows"] if r["median_ms"] is not None]
    causal = {r["provider"]: r["tflops"] for r in ran if r["mask"] == MaskKind.CAUSAL.value}
    flex_ms = {(r["mask"], r["mode"]): r["median_ms"] for r in ran if r["provider"] == FLEX}
    rated = 0
    for row in ran:
        kind = MaskKind(row["mask"])
        compared = (kind in SCORE_VARIANT_KINDS or kind is MaskKind.DOCUMENTS) and row["mode"] == "forward"
        assert (row["rate_vs_causal"] is not None) == (compared and row["provider"] in causal), row
        if row["rate_vs_causal"] is not None:
            assert row["rate_vs_causal"] == pytest.approx(row["tflops"] / causal[row["provider"]])
            rated += 1
        flex = flex_ms.get((row["mask"], row["mode"]))
        assert row["speedup_vs_flex"] == (None if flex is None else pytest.approx(flex / row["median_ms"]))
    assert rated >= 2 * (len(SCORE_VARIANT_KINDS) + 1)  # the reference and sdpa-math at least, where they ran


def test_masked_rows_say_why_a_provider_cannot_run_a_variant(masked_run):
    reasons = {(r["mask"], r["provider"]): r["reason"] for r in masked_run[1]["rows"]}
    for mask in NO_SDPA_EQUIVALENT:
        assert reasons[(mask.value, "sdpa-default")] == f"NotImplementedError: torch SDPA has no {mask.value}"
    assert "return_lse" in reasons[(MaskKind.SINKS.value, FLEX)]  # FlexAttention on the CPU


def test_masked_run_checks_ours_in_the_interpreter_without_timing_it(masked_run):
    _, results, screen, _ = masked_run
    ours = [r for r in results["rows"] if r["provider"] in OURS_PROVIDERS and r["mode"] == "forward"]  # one shape
    assert {(r["mask"], r["provider"]) for r in ours} == {(mask.value, "ours") for mask in MASKED_CASES.masks} | {
        (MaskKind.DOCUMENTS.value, VARLEN)}
    assert all(r["available"] and r["median_ms"] is None and 0 <= r["max_abs_error"] < 1e-4 for r in ours)
    assert "correctness, not speed" in screen


def test_packed_documents_are_compared_with_padded_from_the_run_s_own_times(masked_run):
    rows = masked_run[1]["rows"]
    training = {(r["mask"], r["provider"]): r for r in rows if r["mode"] == "fwd+bwd"}
    compared = 0
    for (mask, provider), row in training.items():
        lengths = document_lengths(row["seq_len"])
        assert row["documents"] == len(lengths)
        assert row["padding_fraction"] == pytest.approx(1 - sum(lengths) / (len(lengths) * max(lengths)))
        padded = training[(MaskKind.PADDED_DOCUMENTS.value, "ours" if provider == VARLEN else provider)]
        if mask == MaskKind.DOCUMENTS.value and row["median_ms"] and padded["median_ms"]:
            assert row["speedup_vs_padded"] == pytest.approx(padded["median_ms"] / row["median_ms"])
            compared += 1
        else:
            assert row["speedup_vs_padded"] is None
    assert compared >= 3  # SDPA's default and math, the reference (ours: the interpreter's, not here)
    others = [r for r in rows if MaskKind(r["mask"]) not in DOCUMENT_KINDS]
    assert all(r["documents"] is None and r["padding_fraction"] is None and r["speedup_vs_padded"] is None
               for r in others)


def test_masked_summary_has_a_varlen_line_for_the_packed_documents(masked_run):
    labels = [line[0] for line in summary_lines(masked_run[1])]
    assert len(labels) == len(MASKED_CASES.masks) + len(TRAINING_MASKS) + 2
    assert [label for label in labels if label.endswith("varlen")] == [
        "D64 documents N128 B2 H4 varlen", "D64 documents N64 B2 H4 fwd+bwd varlen"]


# --- `all` over a fake command set ----------------------------------------------------------------------


def _fake_command(name: str, outcome, calls: list, dtype: bool = False) -> Command:
    def run(args):
        calls.append((name, args))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def add_options(parser):
        if dtype:
            parser.add_argument("--dtype")

    return Command(name, f"fake {name}", run, add_options)


def _run_all(monkeypatch, tmp_path, outcomes: dict, argv=()) -> tuple[int, str, list]:
    calls = []
    fakes = [_fake_command(name, outcome, calls, dtype=name == "attention") for name, outcome in outcomes.items()]
    monkeypatch.setattr(benchmarks.commands, "COMMANDS", (*fakes, all_command.COMMAND))
    code, screen = run_benchmarks(["all", "--device", "cpu", "--out", str(tmp_path), *argv])
    return code, screen, calls


def test_all_runs_every_registered_step_in_order_past_failures(monkeypatch, tmp_path):
    outcomes = {"masked": 0, "ceilings": 0, "attention": RuntimeError("kernel exploded"), "backward": 3}
    code, screen, calls = _run_all(monkeypatch, tmp_path, outcomes, ["--dtype", "fp16"])
    assert code == 1
    assert [name for name, _ in calls] == ["ceilings", "attention", "backward", "masked"]  # all's order
    for name, args in calls:
        assert args.out == tmp_path / name and args.quick is True and args.device == CPU
    assert dict(calls)["attention"].dtype == "fp16" and not hasattr(dict(calls)["ceilings"], "dtype")
    summary = screen[screen.index("all: summary"):]
    assert "failed: RuntimeError: kernel exploded" in summary and "exit 3" in summary
    for name in ("positional", "transformer", "decode", "pipelines"):
        assert f"{name}" in summary
    assert summary.count("not available") == 4 and summary.count(" ok ") == 2


def test_all_passes_when_every_step_passes_and_full_turns_quick_off(monkeypatch, tmp_path):
    code, _, calls = _run_all(monkeypatch, tmp_path, {name: 0 for name in all_command.STEPS}, ["--full"])
    assert code == 0 and [name for name, _ in calls] == list(all_command.STEPS)
    assert all(args.quick is False for _, args in calls)


def test_all_counts_a_command_not_registered_yet_as_not_available_not_failed(monkeypatch, tmp_path):
    code, screen, calls = _run_all(monkeypatch, tmp_path, {"ceilings": 0, "decode": 0})
    assert code == 0 and [name for name, _ in calls] == ["ceilings", "decode"]
    assert screen.count("not available") == len(all_command.STEPS) - 2


def test_all_stops_after_an_interrupted_step(monkeypatch, tmp_path):
    code, screen, calls = _run_all(monkeypatch, tmp_path, {"ceilings": 0, "attention": 130, "masked": 0})
    assert code == 1 and [name for name, _ in calls] == ["ceilings", "attention"]
    assert screen.count("skipped: the run was interrupted") == 6


# --- the results report ---------------------------------------------------------------------------------

H100 = "NVIDIA H100 80GB HBM3"


def _row(provider="ours", available=True, **fields) -> dict:
    return {"provider": provider, "available": available, **fields}


def _attention_rows(mode: str, speedups: dict) -> list[dict]:
    """Ours at each (mask, N) with the given speed-up, plus a SDPA row and an unavailable row of ours."""
    rows = [_row(mode=mode, mask=mask, seq_len=n, speedup_vs_sdpa_default=s) for (mask, n), s in speedups.items()]
    return rows + [_row("sdpa-default", mode=mode, mask="none", seq_len=4096, speedup_vs_sdpa_default=1.0),
                   _row(available=False, mode=mode, mask="none", seq_len=8192, speedup_vs_sdpa_default=None)]


def _write_run(folder: Path, name: str, benchmark: str, date: str, rows: list[dict], device="cuda", card=H100):
    environment = {"card": card, "device": device, "date": date, "git_commit": "abcdef0123456789", "torch": "2.13"}
    payload = {"benchmark": benchmark, "environment": environment, "settings": {"dtype": "bf16"}, "rows": rows}
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(payload))


@pytest.fixture
def results_dir(tmp_path) -> Path:
    """A fake H100 history: forward passes, backward misses, masked misses (one mask kind under 3x),
    positional passes; no decode run. Plus an older forward run, a CPU run and a non-run JSON, all ignored."""
    older = _attention_rows("forward", {("none", 4096): 0.5})
    _write_run(tmp_path, "2026-11-01-h100-attention.json", "attention", "2026-11-01T10:00:00+00:00", older)
    forward = _attention_rows("forward", {("none", 2048): 1.3, ("causal", 8192): 1.1, ("none", 1024): 0.4,
                                          ("key-padding", 4096): 0.2})
    _write_run(tmp_path, "2026-12-01-h100/attention.json", "attention", "2026-12-01T10:00:00+00:00", forward)
    backward = (_attention_rows("backward", {("none", 2048): 0.8, ("causal", 4096): 1.2})
                + _attention_rows("fwd+bwd", {("none", 2048): 1.05}))
    _write_run(tmp_path, "2026-12-01-h100/backward.json", "backward", "2026-12-01T10:05:00+00:00", backward)
    masked_rows = _attention_rows("forward", {("key-padding", 2048): 3.6, ("key-padding-50", 8192): 2.9,
                                              ("sliding-window", 8192): 0.1})
    _write_run(tmp_path, "2026-12-01-h100/masked.json", "masked", "2026-12-01T10:10:00+00:00", masked_rows)
    positional = [_row(op="encode", seq_len=2048, copy_fraction=0.9, speedups={"reference-table": 2.5}),
                  _row(op="encode", seq_len=1, copy_fraction=0.1, speedups={"reference-table": 1.0}),
                  _row(op="embed", seq_len=2048, copy_fraction=0.7, speedups={"torch-eager": 1.6})]
    _write_run(tmp_path, "2026-12-01-h100/positional.json", "positional", "2026-12-01T10:15:00+00:00", positional)
    _write_run(tmp_path, "2026-12-01-h100/transformer.json", "transformer", "2026-12-01T10:20:00+00:00", [])
    _write_run(tmp_path, "cpu/attention.json", "attention", "2026-12-02T00:00:00+00:00",
               _attention_rows("forward", {("none", 4096): 0.01}), device="cpu", card="CPU: some CPU (2 threads)")
    (tmp_path / "pytest-benchmark.json").write_text(json.dumps({"benchmarks": []}))
    return tmp_path


def _goal_lines(text: str) -> dict[str, str]:
    return {goal.title: next(line for line in text.splitlines() if line.startswith(f"| {goal.title} |"))
            for goal in GOALS}


def test_report_answers_each_goal_from_the_latest_gpu_run(results_dir):
    text = readme_text(results_dir)
    assert f"## {H100}" in text and "CPU: some CPU" not in text and "No GPU run yet" not in text
    lines = _goal_lines(text)
    by_start = {title.split(" >=")[0]: line for title, line in lines.items()}
    assert "worst 1.10x, median 1.20x (2 rows) | pass | 2026-12-01, abcdef0123, bf16, " in by_start["forward"]
    assert "worst 0.80x" in by_start["backward"] and "**miss**" in by_start["backward"]
    assert "worst 1.05x" in by_start["forward + backward"] and "| pass |" in by_start["forward + backward"]
    assert "worst 2.90x, median 3.25x (2 rows) | **miss**" in by_start["bool key-padding mask"]
    assert f"| {NO_RUN} | open |" in by_start["decode attention"]
    assert "worst 90%, median 90% (1 rows) | pass" in lines[GOALS[5].title]  # N = 1 left out
    assert "worst 2.50x" in lines[GOALS[6].title] and "worst 1.60x" in lines[GOALS[7].title]
    assert "Other runs (no goal): transformer: 2026-12-01" in text


def test_pipelines_goal_counts_a_differing_prediction_as_a_miss(tmp_path):
    """The pipeline goal reads the flat rows `goal_rows` derives from the task records: a fast variant whose
    predictions differ from sdpa's scores 0, whatever its speed."""
    from benchmarks.pipelines.compare import goal_rows

    def task(name, speedup, agrees):
        variants = [{"variant": "sdpa", "agrees_with_reference": True, "median_ms": 10.0, "speedup_vs_reference": 1.0},
                    {"variant": "triton", "agrees_with_reference": agrees, "median_ms": 10.0 / speedup,
                     "speedup_vs_reference": speedup}]
        return {"task": name, "reference": "sdpa", "variants": variants}

    title = next(goal.title for goal in GOALS if goal.benchmark == "pipelines")
    passing = [row for t in (task("text-classification", 1.5, True), task("summarization", 1.3, True))
               for row in goal_rows(t)]
    _write_run(tmp_path, "a/pipelines.json", "pipelines", "2026-12-01T10:00:00+00:00", passing)
    assert "worst 1.30x, median 1.40x (2 rows) | pass" in _goal_lines(readme_text(tmp_path))[title]
    failing = passing + goal_rows(task("question-answering", 2.0, False))
    _write_run(tmp_path, "b/pipelines.json", "pipelines", "2026-12-02T10:00:00+00:00", failing)
    assert "worst 0.00x" in _goal_lines(readme_text(tmp_path))[title]


def test_report_without_gpu_runs_says_so(tmp_path):
    text = readme_text(tmp_path)
    assert "**No GPU run yet**" in text
    assert all(f"| {NO_RUN} | open |" in line for line in _goal_lines(text).values())


def test_report_rejects_a_run_without_its_environment(tmp_path):
    (tmp_path / "broken.json").write_text(json.dumps({"benchmark": "attention", "environment": {"card": "x"}}))
    with pytest.raises(ValueError, match=r"broken.json.*lacks \['date', 'device'\]"):
        readme_text(tmp_path)


def test_report_write_then_check_then_stale(results_dir):
    assert run_benchmarks(["report", str(results_dir), "--check"])[0] == 1  # no README yet
    assert run_benchmarks(["report", str(results_dir), "--write"])[0] == 0
    assert (results_dir / "README.md").read_text() == readme_text(results_dir)
    up_to_date = f"{results_dir / 'README.md'} is up to date\n"
    assert run_benchmarks(["report", str(results_dir), "--check"]) == (0, up_to_date)
    _write_run(results_dir, "2026-12-05-h100/decode.json", "decode", "2026-12-05T00:00:00+00:00",
               [_row(context=8192, copy_fraction=0.85), _row(context=1024, copy_fraction=0.3)])
    assert run_benchmarks(["report", str(results_dir), "--check"])[0] == 1  # a new run: the README is stale
    code, printed = run_benchmarks(["report", str(results_dir)])
    assert code == 0 and "worst 85%, median 85% (1 rows) | pass" in printed


def test_committed_results_readme_is_generated():
    """benchmarks/results/README.md is what `report --write` gives for the committed runs."""
    assert run_benchmarks(["report", str(RESULTS_DIR), "--check"])[0] == 0


def _compile_row(kernel="attention_forward_kernel", dtype="float16", arch="sm_90", **fields) -> dict:
    row = {"kernel": kernel, "dtype": dtype, "arch": arch, "error": None, "shared_bytes": 1024,
           "shared_limit": 2048, "spill_store_bytes": 0, "spill_load_bytes": 0, "mma": ["HGMMA"], "tma_loads": 0}
    return {**row, **fields}


def test_report_sums_up_the_committed_compile_report(tmp_path):
    """Each rule's line counts the compiles it judges and names the (kernel, dtype, arch) groups that
    break it, recomputed from the rows (not read from the report's own summary)."""
    rows = [_compile_row(tma_loads=4),
            _compile_row(spill_store_bytes=8, spill_load_bytes=8),  # breaks "no spills"
            _compile_row(dtype="float64", spill_store_bytes=8, mma=["DMMA"]),  # float64: no rule on spills, MMA
            _compile_row(kernel="attention_backward_dq_kernel", mma=["HGMMA", "HMMA"]),  # breaks HGMMA
            _compile_row(arch="sm_80", mma=["HMMA"], shared_bytes=4096),  # too big; HGMMA not judged on sm_80
            _compile_row(dtype="float32", error="RuntimeError: PassManager::run failed")]
    (tmp_path / "compile").mkdir()
    environment = {"date": "2026-12-02T09:00:00+00:00", "git_commit": "0123456789abcdef", "triton": "3.6.0"}
    (tmp_path / "compile" / "compile.json").write_text(json.dumps({"environment": environment, "rows": rows}))
    lines = readme_text(tmp_path).split("## Compile report (no GPU needed)")[1].splitlines()
    by_rule = {line.split(" | ")[0].removeprefix("| "): line for line in lines if line.startswith("| ")}
    assert "(2026-12-02, 0123456789, triton 3.6.0): 6 compiles" in lines[2]
    assert by_rule["compiles"] == "| compiles | 6 | 1 | attention_forward_kernel float32 sm_90 |"
    assert by_rule["fits shared memory"] == "| fits shared memory | 5 | 1 | attention_forward_kernel float16 sm_80 |"
    assert by_rule["no spills"] == "| no spills | 4 | 1 | attention_forward_kernel float16 sm_90 |"
    assert by_rule["all dots on HGMMA"] == "| all dots on HGMMA | 3 | 1 | attention_backward_dq_kernel float16 sm_90 |"
    assert "TMA loads (UTMALDG in the SASS): 1 compiles (attention_forward_kernel sm_90)." in lines


def test_report_without_a_compile_report_says_how_to_make_one(tmp_path):
    assert "No `compile/compile.json` committed: `python -m benchmarks compile --out benchmarks/results/compile`" \
        in readme_text(tmp_path)


def test_report_refuses_a_missing_folder(tmp_path):
    with pytest.raises(SystemExit, match="is not a folder"):
        report.run(argparse.Namespace(results=tmp_path / "absent", write=False, check=False))


# --- what every measuring command shares ----------------------------------------------------------------

def test_an_interrupted_command_keeps_and_writes_the_rows_measured(tmp_path):
    """Ctrl-C (or gpu_session.sh's `timeout --signal=INT`) ends the measuring, not the command: the rows so far
    are written, the JSON says so, and the exit code is 130."""
    import argparse

    from benchmarks.harness.command_run import INTERRUPTED, CommandRun

    class Row:
        def __init__(self, n):
            self.n = n

        def as_record(self):
            return {"n": self.n}

    def measured_until_interrupted():
        yield Row(1)
        yield [Row(2), Row(3)]
        raise KeyboardInterrupt

    args = argparse.Namespace(device=torch.device("cpu"), quick=True, dtype=None)
    run = CommandRun.start("fake", args, "what was measured", cpu_note="small shapes")
    rows = run.collect(measured_until_interrupted())
    assert [row.n for row in rows] == [1, 2, 3] and run.interrupted
    assert run.finish(rows, tmp_path) == INTERRUPTED
    payload = json.loads((tmp_path / "fake.json").read_text())
    assert payload["interrupted"] is True and payload["rows"] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert payload["settings"]["dtype"] == "fp32" and payload["settings"]["note"] == "small shapes"

    finished = CommandRun.start("fake", args, "what was measured")
    assert finished.collect(iter([Row(4)])) and finished.finish([Row(4)], tmp_path / "ok") == 0
