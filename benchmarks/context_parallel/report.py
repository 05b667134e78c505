"""One summary per case from the per-rank rows: measured vs expected bytes, errors, times."""
from benchmarks.context_parallel.cases import Case, attention_flops, expected_sent_bytes


def summarise(cases: list[Case], rows: list[dict], dtype, device_type: str) -> list[dict]:
    summaries = []
    for index, case in enumerate(cases):
        ranks = [row for row in rows if row["index"] == index]
        first = next(row for row in ranks if row["rank"] == 0)
        expected_forward, expected_backward = expected_sent_bytes(case, dtype)
        slowest_ms = max(row["forward_ms"] + row["backward_ms"] for row in ranks)
        summary = dict(
            case=case.as_record(),
            forward_bytes_per_rank=sorted({row["forward_bytes"] for row in ranks}),
            backward_bytes_per_rank=sorted({row["backward_bytes"] for row in ranks}),
            expected_forward_bytes=expected_forward, expected_backward_bytes=expected_backward,
            max_abs_error=first["max_abs_error"], slowest_rank_ms=slowest_ms,
            single_device_ms=first["single_device_ms"],
        )
        summary["bytes_match"] = (summary["forward_bytes_per_rank"] == [expected_forward]
                                  and summary["backward_bytes_per_rank"] == [expected_backward])
        if device_type == "cuda":  # CPU times (gloo, torch fallback) say nothing about GPUs
            summary["tflops_per_rank"] = attention_flops(case) / case.world_size / (slowest_ms * 1e-3) / 1e12
            summary["scaling_efficiency"] = first["single_device_ms"] / (case.world_size * slowest_ms)
        summaries.append(summary)
    return summaries


def table_lines(summaries: list[dict]) -> list[str]:
    header = (f"{'method':10} {'layout':10} {'W':>2} {'N':>7} {'pad':>3} {'fwd bytes/rank':>15} {'bwd bytes/rank':>15} "
              f"{'bytes':>5} {'max |err| (out, dq, dk, dv)':>30} {'ms/rank':>8}")
    lines = [header]
    for s in summaries:
        case = s["case"]
        errors = ", ".join(f"{e:.1e}" for e in s["max_abs_error"].values())
        line = (f"{case['method']:10} {case['layout']:10} {case['world_size']:>2} {case['seq_len']:>7} "
                f"{'yes' if case['padded'] else 'no':>3} {s['forward_bytes_per_rank'][-1]:>15,} "
                f"{s['backward_bytes_per_rank'][-1]:>15,} {'ok' if s['bytes_match'] else 'WRONG':>5} {errors:>30} "
                f"{s['slowest_rank_ms']:>8.1f}")
        if "scaling_efficiency" in s:
            line += f"  {s['tflops_per_rank']:.1f} TFLOP/s/rank, {100 * s['scaling_efficiency']:.0f}% scaling"
        lines.append(line)
    return lines
