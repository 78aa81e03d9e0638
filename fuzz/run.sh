#!/usr/bin/env bash
# `make fuzz`: libFuzzer on the targets of fuzz/ (cargo-fuzz), one after the
# other, each for FUZZ_SECONDS. Each run starts from the committed seeds
# (fuzz/corpus/NAME) and the inputs of past crashes (fuzz/regressions/NAME)
# and adds what it finds to a scratch corpus, fuzz/target/corpus/NAME: the
# committed corpus is never written. A crash, a hang or a run out of memory
# leaves its input in fuzz/artifacts/NAME/; once the bug is fixed, the input
# goes to fuzz/regressions/NAME/, which `cargo test` (tests/fuzz_corpus.rs)
# runs from then on. Exits non-zero when a target failed; the last lines
# are one summary line per target.
#
# From the Makefile's environment: FUZZ_LIST (NAME:MAX_LEN words),
# FUZZ_TARGETS (names), FUZZ_SECONDS, FUZZ_RSS_MB (libFuzzer's memory limit
# in MB) and FUZZ_TIMEOUT (seconds one input may take).
set -uo pipefail

cd "$(dirname "$0")/.."
: "${FUZZ_LIST:?NAME:MAX_LEN words, as the Makefile sets them}"
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
declare -A max_len=()
all=()
for entry in $FUZZ_LIST; do
    max_len[${entry%%:*}]=${entry#*:}
    all+=("${entry%%:*}")
done
read -r -a targets <<<"${FUZZ_TARGETS:-${all[*]}}"
for target in "${targets[@]}"; do
    if [ -z "${max_len[$target]:-}" ]; then
        echo "fuzz: no target $target (the targets: ${all[*]})" >&2
        exit 2
    fi
done

# The sanitizer and libFuzzer's instrumentation are unstable rustc flags:
# the installed (stable) toolchain takes them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
# A panic's message and backtrace come before libFuzzer's report.
export RUST_BACKTRACE=1

scratch=fuzz/target/make-fuzz
mkdir -p "$scratch/logs"
for target in "${targets[@]}"; do
    echo "fuzz: building $target"
    if ! cargo fuzz build "$target"; then
        echo "fuzz: $target does not build" >&2
        exit 1
    fi
done

summary=()
failed=0
for target in "${targets[@]}"; do
    corpus=fuzz/target/corpus/$target
    log=$scratch/logs/$target.log
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    seeds=("fuzz/corpus/$target")
    [ -d "fuzz/regressions/$target" ] && seeds+=("fuzz/regressions/$target")
    echo "fuzz: $target for ${FUZZ_SECONDS} s (log: $log)"
    cargo fuzz run "$target" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$FUZZ_SECONDS" -rss_limit_mb="$FUZZ_RSS_MB" \
        -max_len="${max_len[$target]}" -timeout="$FUZZ_TIMEOUT" \
        -print_final_stats=1 >"$log" 2>&1
    status=$?
    # libFuzzer's last status line: "#RUNS <what> cov: N ft: N corp: N/SIZE ...".
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$runs" ] || runs=$(sed -E -n 's/^#([0-9]+).*/\1/p' <<<"$last")
    cov=$(sed -E -n 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -E -n 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -E -n 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$last")
    inputs=$(sed -E -n 's/.*Test unit written to (.*)$/\1/p' "$log")
    crashes=$(grep -c . <<<"$inputs")
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        # Stopped without an input to show (a failed start, a signal).
        crashes=1
        inputs="none written (libFuzzer exited with status $status, see $log)"
    fi
    line=$(printf '%-16s runs %-10s cov %-6s ft %-7s corpus %-6s crashes %s' \
        "$target" "${runs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes")
    if [ "$crashes" -ne 0 ]; then
        failed=1
        echo "fuzz: $target FAILED; the end of its report:" >&2
        tail -n 60 "$log" >&2
        while read -r input; do
            echo "fuzz: $target: crash input: $input" >&2
            line+="  input: $input"
        done <<<"$inputs"
        echo "fuzz: once fixed, keep the input as fuzz/regressions/$target/<what-it-caught>" >&2
    fi
    summary+=("$line")
done

echo
echo "fuzz: ${FUZZ_SECONDS} s per target"
printf '%s\n' "${summary[@]}"
exit "$failed"
