#!/usr/bin/env bash
# Summarise the last `cargo bench -p ingress-core` run from criterion's JSON output
# (target/criterion/*/*/new/): per benchmark, the median with its 95% confidence
# interval, the median absolute deviation, the fastest and slowest sample (per
# iteration), and the verdict for the targets of docs/PERFORMANCE.md:
#   compile/10k/*                  median under 100 ms
#   route/{exact,wildcard,miss}/{standard,ingress-nginx}  median under 300 ns
# (the `-hot` variants repeat one request: for comparison, not a target).
# Needs jq (Debian package `jq`; installed with apt-get when missing, and said so).
#
# Usage: bench/summary.sh [--markdown]
set -euo pipefail

cd "$(dirname "$0")/.."
if ! command -v jq >/dev/null; then
    echo "summary: jq is missing; installing the Debian package 'jq' with apt-get" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >&2
fi

target_dir="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)"
root="$target_dir/criterion"
if [[ ! -d "$root" ]]; then
    echo "summary: no criterion output under $root; run bench/run.sh first" >&2
    exit 1
fi

markdown=false
[[ "${1:-}" == "--markdown" ]] && markdown=true

if $markdown; then
    echo "| benchmark | median | 95% CI of median | MAD | fastest..slowest sample | target | verdict |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
else
    printf '%-32s %11s %25s %10s %25s %9s %s\n' benchmark median "95% CI of median" MAD "fastest..slowest sample" target verdict
fi

find "$root" -path '*/new/benchmark.json' | sort | while read -r bench; do
    dir="$(dirname "$bench")"
    jq -n -r --argjson md "$markdown" \
        --slurpfile b "$bench" --slurpfile e "$dir/estimates.json" --slurpfile s "$dir/sample.json" '
        def fmt: if . >= 1e6 then "\(. / 1e6 * 100 | round / 100) ms"
                 elif . >= 1e3 then "\(. / 1e3 * 100 | round / 100) µs"
                 else "\(. * 10 | round / 10) ns" end;
        ($b[0].full_id) as $id
        | ($e[0].median) as $m
        | ([range(0; $s[0].iters | length)] | map($s[0].times[.] / $s[0].iters[.])) as $per
        | (if ($id | startswith("compile/10k/")) then 1e8
           elif ($id | test("^route/(exact|wildcard|miss)/(standard|ingress-nginx)$")) then 300
           else null end) as $limit
        | [ $id, ($m.point_estimate | fmt),
            "\($m.confidence_interval.lower_bound | fmt) .. \($m.confidence_interval.upper_bound | fmt)",
            ($e[0].median_abs_dev.point_estimate | fmt),
            "\($per | min | fmt) .. \($per | max | fmt)",
            (if $limit == null then "-" else "< \($limit | fmt)" end),
            (if $limit == null then "-" elif $m.point_estimate < $limit then "met" else "NOT met" end) ]
        | if $md then "| " + join(" | ") + " |"
          else "\(.[0] | . + " " * (32 - length)) \(.[1] | " " * (11 - length) + .) \(.[2] | " " * (25 - length) + .) \(.[3] | " " * (10 - length) + .) \(.[4] | " " * (25 - length) + .) \(.[5] | " " * (9 - length) + .) \(.[6])"
          end'
done
