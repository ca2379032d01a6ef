#!/usr/bin/env bash
# Instructions per `route()` call on the 10,000-Ingress table of the route benches,
# counted by callgrind (repeatable on a busy machine, unlike wall-clock benches).
# Prints one line per request kind. Uses the workloads of
# ingress-core/benches/instructions.rs (the CI gate, bench/instructions-check.sh,
# runs the same on 2,000 Ingresses).
#   bench/route-instructions.sh            # exact, wildcard, miss
#   bench/route-instructions.sh exact
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 2; }
cargo bench -p ingress-core --bench instructions --no-run >/dev/null 2>&1
bin=$(cargo bench -p ingress-core --bench instructions --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*instructions[^"]*"' | head -1 | cut -d'"' -f4)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
kinds=("${@:-exact}")
[ $# -eq 0 ] && kinds=(exact wildcard miss)
for kind in "${kinds[@]}"; do
  # Two runs differing only in the number of calls: the difference is the cost
  # of 100,000 calls, without the table build.
  for n in 0 100000; do
    valgrind --tool=callgrind --callgrind-out-file="$out/$kind.$n" "$bin" route "$kind" "$n" 10000 >/dev/null 2>&1
  done
  a=$(callgrind_annotate "$out/$kind.0" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
  b=$(callgrind_annotate "$out/$kind.100000" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
  echo "route/$kind: $(( (b - a) / 100000 )) instructions per call"
done
