#!/usr/bin/env bash
# Run every ingress-core benchmark (criterion groups compile/10k, compile/1k,
# route/{exact,wildcard,miss,normalize,query}), then the peak-memory measurement,
# then print the summary table. Takes a few minutes on 2 cores; figures are only
# comparable on an otherwise idle machine (check `uptime` first).
#
# Usage: bench/run.sh [criterion filter...]   e.g. bench/run.sh route/exact
#        SKIP_MEMORY=1 bench/run.sh           (benchmarks only)
# Logs go to target/bench-logs/.
set -euo pipefail

cd "$(dirname "$0")/.."
logs="target/bench-logs"
mkdir -p "$logs"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc: $(nproc)"
    echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "rustc: $(rustc -V)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "busiest processes before:"
    top -bn1 -o %CPU | sed -n '8,10p'
} | tee "$logs/$stamp-machine.txt"

cargo bench -p ingress-core -- "$@" 2>&1 | tee "$logs/$stamp-criterion.txt"
if [[ -z "${SKIP_MEMORY:-}" ]]; then
    bench/compile-memory.sh 2>&1 | tee "$logs/$stamp-memory.txt" ||
        echo "run: bench/compile-memory.sh failed; the criterion figures above still stand" >&2
fi
{
    echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "busiest processes after:"
    top -bn1 -o %CPU | sed -n '8,10p'
} | tee -a "$logs/$stamp-machine.txt"
bench/summary.sh | tee "$logs/$stamp-summary.txt"
