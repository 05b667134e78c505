#!/usr/bin/env bash
# One GPU session on a lent H100/H200 (no network there), from the repository root:
#     OUT=/path/to/results BENCH_GIT_COMMIT=<sha of the tree you sent> bash benchmarks/gpu_session.sh
# Total under 8 minutes: every step runs under `timeout` (tests 100 s, then the benchmarks: ceilings 20, attention 70,
# backward 75, masked 65, decode 40, positional 25, transformer 50, pipelines 30 s, plus the environment). A
# benchmark stopped by its limit still writes the cases it finished (they handle SIGINT). A failing step is recorded
# and the next one still runs; the script exits non-zero at the end if any step failed. The benchmark steps are
# those of `python -m benchmarks all`, run one by one here so that each gets its own time limit. Writes 5 files
# into $OUT (the device tool brings back at most 8, at most 2 folders deep):
#   env.txt              nvidia-smi, versions, commit
#   tests.txt            the test suite on CUDA (KERNELS_AUTOTUNE=0: one tile per kernel, no timing)
#   benchmarks.txt       every benchmark's tables, in the order above
#   summary.txt          each step's exit code and time, then ours vs torch per case
#   results.tar          every JSON (card, versions, ceilings, every row) and PNG plot, one tar so that
#                        they count as one file: unpack it into benchmarks/results/<date>-<card>/ and run
#                        `python -m benchmarks report --write`
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
    timeout 60 "$PYTHON" -c "import json; from benchmarks.harness.environment import resolve_device, run_metadata
print(json.dumps(run_metadata(resolve_device(None)), indent=2))"
    timeout 60 "$PYTHON" -c "import torch; p = torch.cuda.get_device_properties(0)
print(f'{p.name}: {p.multi_processor_count} SMs, {p.L2_cache_size >> 20} MiB L2, {p.total_memory >> 30} GiB')"
    timeout 60 "$PYTHON" -m pip list 2>/dev/null \
        | grep -Ei '^(torch|triton|numpy|rich|matplotlib|tabulate|pytest|pytest-benchmark|hypothesis|transformers) '
}

echo "== environment (output in env.txt)"
environment >"$OUT/env.txt" 2>&1 || true
# The kernel tests first, so that a test step cut by its limit has checked those (files in this order).
KERNEL_TESTS=(tests/sdpa/test_attention_forward.py tests/sdpa/test_attention_masks.py tests/sdpa/test_attention_decode.py
              tests/sdpa/test_attention_backward.py tests/sdpa/test_attention_dropout.py tests/positional/test_positional_encoding.py)
# CPU-side checks that CI already runs and that would eat the step's GPU time: the compile gate (it
# compiles ~250 kernels on the CPU), the docs examples and the multi-process CPU (gloo) tests.
CPU_ONLY_FOLDERS=(tests/compile/ tests/docs/ tests/distributed/)
OTHER_TESTS=()
for file in tests/*/test_*.py; do
    if [[ " ${KERNEL_TESTS[*]} " == *" $file "* ]]; then continue; fi
    for folder in "${CPU_ONLY_FOLDERS[@]}"; do [[ $file == "$folder"* ]] && continue 2; done
    OTHER_TESTS+=("$file")
done
step tests 100 tests.txt env KERNELS_AUTOTUNE=0 "$PYTHON" -m pytest "${KERNEL_TESTS[@]}" "${OTHER_TESTS[@]}" -x -q \
    -p no:cacheprovider
BENCHMARKS=(ceilings:20 attention:70 backward:75 masked:65 decode:40 positional:25 transformer:50 pipelines:30)
for entry in "${BENCHMARKS[@]}"; do
    name=${entry%%:*}
    step "$name" "${entry##*:}" "$name.log" "$PYTHON" -m benchmarks "$name" --quick --out "$WORK/$name"
done
for entry in "${BENCHMARKS[@]}"; do cat "$OUT/${entry%%:*}.log"; rm -f "$OUT/${entry%%:*}.log"; done >"$OUT/benchmarks.txt"

(cd "$WORK" && tar -cf "$OUT/results.tar" .) || echo "not every result was there to pack"

{
    echo "== summary"
    printf '%s\n' "${SUMMARY[@]}"
    echo "tests: $(tail -n 1 "$OUT/tests.txt")"
    for benchmark in attention backward masked; do
        if [[ -f "$WORK/$benchmark/$benchmark.json" ]]; then
            "$PYTHON" -m benchmarks.attention.summary "$WORK/$benchmark/$benchmark.json"
        fi
    done
    "$PYTHON" -m benchmarks report "$WORK" || true
} 2>&1 | tee "$OUT/summary.txt"
exit "$FAILED"
