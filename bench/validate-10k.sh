#!/usr/bin/env bash
# End-to-end `ingressctl validate` on one 10,000-Ingress manifest file (plus 30,000
# Services and EndpointSlices, 14 MB of YAML): wall time over several runs, and the
# phase timings ingressctl prints with INGRESSCTL_TIMINGS=1.
#
# Usage: bench/validate-10k.sh [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
file="${TMPDIR:-/tmp}/ingress-bench-10k.yaml"

python3 bench/gen-manifests.py 10000 1000 > "$file"
cargo build --release -q -p ingress-cli
bin=target/release/ingressctl
echo "input: $(du -h "$file" | cut -f1), $(grep -c '^kind: Ingress$' "$file") Ingresses; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" validate "$file" >/dev/null   # warm the page cache
times=()
for i in $(seq "$runs"); do
  start=$(date +%s.%N)
  INGRESSCTL_TIMINGS=1 "$bin" validate "$file" >/dev/null 2>"$file.timings"
  end=$(date +%s.%N)
  t=$(echo "$end - $start" | bc)
  times+=("$t")
  echo "run $i: ${t}s  ($(cat "$file.timings"))"
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %.3fs, min %.3fs, max %.3fs over %d runs (target: under 2 s)\n", a[int((NR+1)/2)], a[1], a[NR], NR}'
/usr/bin/time -f "peak RSS %M KiB" "$bin" validate "$file" 2>&1 >/dev/null | tail -1
rm -f "$file" "$file.timings"
