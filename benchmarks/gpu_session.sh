#!/usr/bin/env bash
# One GPU session on a lent H100/H200 (no network there), from the repository root:
#     OUT=/path/to/results BENCH_GIT_COMMIT=<sha of the tree you sent> bash benchmarks/gpu_session.sh
# Total under 8 minutes: every step runs under `timeout` (110 + 30 + 120 + 150 + 45 s, plus the environment);
# a benchmark stopped by its limit still writes the cases it finished. A failing step is recorded and the
# next one still runs; the script exits non-zero at the end if any step failed. Writes 7 files into $OUT
# (the device tool brings back at most 8, at most 2 folders deep):
#   env.txt              nvidia-smi, versions, commit
#   tests.txt            the test suite on CUDA (KERNELS_AUTOTUNE=0: one tile per kernel, no timing)
#   ceilings.txt         python -m benchmarks ceilings
#   attention.txt        python -m benchmarks attention --quick (N <= 8192): the forward tables
#   backward.txt         python -m benchmarks backward: backward alone and fwd+bwd (N <= 8192)
#   positional.txt       python -m benchmarks positional: encoding and fused embedding, GB/s
#   results.tar          every JSON (card, versions, ceilings, every row) and PNG plot, one tar so that
#                        they count as one file
# The last lines printed are a summary: each step's exit code and time, then ours vs torch per case.
set -euo pipefail

: "${OUT:?set OUT to the folder for the results}"
PYTHON="${PYTHON:-python3}"
export PYTHONPATH=. PYTHONUNBUFFERED=1 COLUMNS=160 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d)"
SUMMARY=()
FAILED=0

# step NAME SECONDS LOG COMMAND...: run COMMAND under a time limit, its output in $OUT/LOG; record the outcome.
step() {
    local name=$1 limit=$2 log=$3
    shift 3
    local started=$SECONDS rc=0
    echo "== $name (limit ${limit}s, output in $log)"
    timeout --signal=INT --kill-after=15 "$limit" "$@" >"$OUT/$log" 2>&1 || rc=$?
    local outcome="exit $rc"
    if [[ $rc -eq 124 ]]; then outcome="timed out"; fi
    SUMMARY+=("$(printf '%-10s %-10s %4ss' "$name" "$outcome" $((SECONDS - started)))")
    if [[ $rc -ne 0 ]]; then FAILED=1; fi
}

# What the numbers were measured on. Informative only: a failure here fails nothing.
environment() {
    timeout 30 nvidia-smi
    timeout 60 "$PYTHON" -c "import json; from benchmarks.environment import resolve_device, run_metadata
print(json.dumps(run_metadata(resolve_device(None)), indent=2))"
    timeout 60 "$PYTHON" -c "import torch; p = torch.cuda.get_device_properties(0)
print(f'{p.name}: {p.multi_processor_count} SMs, {p.L2_cache_size >> 20} MiB L2, {p.total_memory >> 30} GiB')"
    timeout 60 "$PYTHON" -m pip list 2>/dev/null \
        | grep -Ei '^(torch|triton|numpy|rich|matplotlib|tabulate|pytest|pytest-benchmark|hypothesis|transformers) '
}

echo "== environment (output in env.txt)"
environment >"$OUT/env.txt" 2>&1 || true
step tests 110 tests.txt env KERNELS_AUTOTUNE=0 "$PYTHON" -m pytest tests/ -x -q -p no:cacheprovider
step ceilings 30 ceilings.txt "$PYTHON" -m benchmarks ceilings --out "$WORK"
step attention 120 attention.txt "$PYTHON" -m benchmarks attention --quick --out "$WORK/attention"
step backward 150 backward.txt "$PYTHON" -m benchmarks backward --out "$WORK/backward"
step positional 45 positional.txt "$PYTHON" -m benchmarks positional --quick --out "$WORK/positional"

(cd "$WORK" && tar -cf "$OUT/results.tar" attention backward positional) || echo "not every result was there to pack"

echo "== summary"
printf '%s\n' "${SUMMARY[@]}"
echo "tests: $(tail -n 1 "$OUT/tests.txt")"
grep -E '[0-9] (TFLOP/s|GB/s)' "$OUT/ceilings.txt" || true
for benchmark in attention backward; do
    if [[ -f "$WORK/$benchmark/$benchmark.json" ]]; then "$PYTHON" -m benchmarks.summary "$WORK/$benchmark/$benchmark.json"; fi
done
tail -n 25 "$OUT/positional.txt"
exit "$FAILED"
