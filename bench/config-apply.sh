#!/usr/bin/env bash
# Config apply in file mode (performance issue, scenario 5): the proxy serves a manifests
# folder of N Ingresses under wrk load; one Ingress (probe.local, in its own file) is
# changed CHANGES times (its path becomes /vK); each change is timed from the file's
# rename to the first 200 on the new path. Loopback only. bench/kube-apply.sh is the same
# through the Kubernetes API (scenario 6); both use bench/lib.sh's apply_* functions.
#
# Usage: bench/config-apply.sh
# Environment: INGRESSES (space-separated sizes, default "20000"; e.g. "1000 5000 20000 50000"
#   for the table of RSS and time to served against size), CHANGES (default 100), FILES (files
#   the Ingresses are spread over, default 100), CONNS (wrk connections, default 64),
#   BASE_PORT (default 18180; uses BASE_PORT..BASE_PORT+3), NO_INSTALL=1, NO_BUILD=1,
#   NO_CHARTS=1 (else time-to-served.png and rss.png against the sizes, when gnuplot is there).
#
# What runs (all on 127.0.0.1): nginx as the upstream (1 worker, `return 200`), on core 1
# with wrk; ingress-proxy --worker-threads 1 on core 0, serving bench/gen-manifests.py's
# N Ingresses (5 paths each, N/10 wildcard hosts, one Service and EndpointSlice each) plus
# bench.local (wrk's target) and probe.local (the changed one, probe.json). Per size it prints: the
# first load's time to ready, RSS after it, the p50/p99/max of write-to-served over the
# changes, wrk's requests and failures (non-2xx and socket errors) during the changes, RSS
# after the changes and the peak (VmHWM). The watcher's debounce (30 ms after the last
# event of a burst) is part of every sample.
# Output: target/bench-logs/config-apply-STAMP/results.tsv (one line per size).
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
INGRESSES="${INGRESSES:-20000}"
CHANGES="${CHANGES:-100}"
FILES="${FILES:-100}"
CONNS="${CONNS:-64}"
BASE_PORT="${BASE_PORT:-18180}"
apply_ports "$BASE_PORT"

apply_tools
if [[ -z "${NO_BUILD:-}" ]]; then
    bench_log "cargo build --release -p ingress-proxy"
    cargo build --release -q -p ingress-proxy
fi
PROXY="${CARGO_TARGET_DIR:-$root/target}/release/ingress-proxy"
[[ -x "$PROXY" ]] || bench_die "$PROXY not built"

apply_run config-apply

apply_machine "$out" "$INGRESSES (files $FILES)" "$CHANGES"
apply_upstream "$up_port" "$out"
results="$out/results.tsv"
apply_header "$results"

for n in $INGRESSES; do
    m="$work/manifests-$n"
    python3 "$root/bench/gen-manifests.py" "$n" $((n / 10)) --out "$m" --files "$FILES"
    bench_manifest bench.local "$up_port" >"$m/bench.yaml"
    python3 "$root/bench/config_apply.py" probe 0 >"$m/probe.json"

    bench_log "$n Ingresses: starting ingress-proxy"
    t0=$(date +%s.%N)
    INGRESS_PROXY_LOG="${INGRESS_PROXY_LOG:-warn}" taskset -c 0 "$PROXY" --manifests "$m" \
        --listen-http "127.0.0.1:$px_http" --listen-https "127.0.0.1:$px_https" \
        --listen-admin "127.0.0.1:$px_admin" --worker-threads 1 \
        >"$out/ingress-proxy-$n.log" 2>&1 &
    px=$!
    pids+=("$px")
    apply_measure "$n" "$px" "$t0" "$px_http" "$out" "$results" run "$m"
    kill -TERM "$px"
    wait "$px" 2>/dev/null || true
    rm -rf "$m"
done

echo
column -t -s $'\t' "$results"
if [[ -z "${NO_CHARTS:-}" ]]; then
    python3 "$root/bench/config_apply.py" chart "$results" "$out" || bench_log "charts failed (gnuplot)"
fi
bench_log "results: $results"
