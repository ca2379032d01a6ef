#!/usr/bin/env bash
# Regression check on ingress-core's hot paths by instruction count (callgrind), for CI:
# repeatable on a shared machine where wall-clock benches are not.
#
#   bench/instructions-check.sh            # measure, compare with bench/instructions-baseline.tsv
#   UPDATE=1 bench/instructions-check.sh   # measure and rewrite the baseline
#
# Each workload of ingress-core/benches/instructions.rs runs twice under
# `valgrind --tool=callgrind` (N = 0 and N > 0 repetitions); the difference over N is the
# cost of one repetition, set-up excluded. A workload fails the check when it costs more
# than its baseline by over TOLERANCE percent (default 5). Counts depend on the compiler
# and on which memcpy/memcmp variants glibc picks for the CPU, so the baseline is only
# comparable across similar machines: after a toolchain bump, re-run with UPDATE=1 and
# commit the new figures with the reason. A workload much cheaper than its baseline is
# reported so that the baseline can be tightened (UPDATE=1).
set -euo pipefail
cd "$(dirname "$0")/.."
TOLERANCE="${TOLERANCE:-5}"
baseline=bench/instructions-baseline.tsv

command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 2; }
cargo bench -p ingress-core --bench instructions --no-run --locked >/dev/null 2>&1 ||
    cargo bench -p ingress-core --bench instructions --no-run --locked
bin=$(cargo bench -p ingress-core --bench instructions --no-run --locked --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*instructions[^"]*"' | head -1 | cut -d'"' -f4)
[[ -x "$bin" ]] || { echo "instructions bench binary not found"; exit 2; }
"$bin" >/dev/null # the self-check of every mode, natively

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

total() { # callgrind output file -> total instructions
    callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}
# measure NAME N ARGS...: instructions of one repetition
measure() {
    local name=$1 n=$2
    shift 2
    valgrind --tool=callgrind --callgrind-out-file="$out/$name.0" "$bin" "$@" 0 >/dev/null 2>&1
    valgrind --tool=callgrind --callgrind-out-file="$out/$name.n" "$bin" "$@" "$n" >/dev/null 2>&1
    local a b
    a=$(total "$out/$name.0")
    b=$(total "$out/$name.n")
    echo $(((b - a) / n))
}

workloads=(
    "route/exact 20000 route exact"
    "route/wildcard 20000 route wildcard"
    "route/miss 20000 route miss"
    "compile/1k 3 compile 1000"
    "incremental/1k/edit 50 edit 1000"
)
declare -A measured
for w in "${workloads[@]}"; do
    read -ra f <<<"$w"
    measured[${f[0]}]=$(measure "${f[0]//\//_}" "${f[1]}" "${f[@]:2}")
done

if [[ -n "${UPDATE:-}" ]]; then
    {
        echo "# workload	instructions per repetition (bench/instructions-check.sh; $(rustc --version | cut -d' ' -f1-2))"
        for w in "${workloads[@]}"; do
            name=${w%% *}
            printf '%s\t%s\n' "$name" "${measured[$name]}"
        done
    } >"$baseline"
    cat "$baseline"
    exit 0
fi

[[ -f "$baseline" ]] || { echo "no $baseline: run UPDATE=1 $0"; exit 2; }
fail=0
printf '%-22s %14s %14s %8s\n' workload baseline measured change
for w in "${workloads[@]}"; do
    name=${w%% *}
    base=$(awk -F'\t' -v n="$name" '$1 == n { print $2 }' "$baseline")
    now=${measured[$name]}
    if [[ -z "$base" ]]; then
        printf '%-22s %14s %14s %8s\n' "$name" "-" "$now" "new"
        fail=1
        continue
    fi
    change=$(awk -v a="$base" -v b="$now" 'BEGIN { printf "%+.1f%%", (b - a) * 100 / a }')
    verdict=""
    if awk -v a="$base" -v b="$now" -v t="$TOLERANCE" 'BEGIN { exit !(b > a * (1 + t / 100)) }'; then
        verdict="  REGRESSION (over +$TOLERANCE%)"
        fail=1
    elif awk -v a="$base" -v b="$now" -v t="$TOLERANCE" 'BEGIN { exit !(b < a * (1 - 2 * t / 100)) }'; then
        verdict="  cheaper: tighten the baseline (UPDATE=1)"
    fi
    printf '%-22s %14s %14s %8s%s\n' "$name" "$base" "$now" "$change" "$verdict"
done
if [[ $fail -ne 0 ]]; then
    echo "instruction counts regressed (or a workload has no baseline); see above." >&2
    echo "If the cost is intended, rewrite the baseline with UPDATE=1 and say why in the commit." >&2
fi
exit $fail
