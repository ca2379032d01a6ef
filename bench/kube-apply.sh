#!/usr/bin/env bash
# Config apply in kube mode (performance issue, scenario 6): ingress-proxy --kube serves N
# Ingresses listed and watched from the project's fake Kubernetes API server (the test
# suite's FakeApiServer as a process: ingress-kube's `fake-apiserver` example, real
# list/watch wire format on loopback) under wrk load; one Ingress (probe.local) is
# replaced CHANGES times through the API (a PUT, as `kubectl replace` does; its path
# becomes /vK); each change is timed from the PUT to the first 200 on the new path.
# The measuring half is bench/config-apply.sh's (bench/lib.sh's apply_* functions).
#
# Usage: bench/kube-apply.sh
# Environment: INGRESSES (space-separated sizes, default "20000"), CHANGES (default 100),
#   CONNS (wrk connections, default 64), BASE_PORT (default 18280; uses BASE_PORT..+3),
#   NO_INSTALL=1, NO_BUILD=1, NO_CHARTS=1 (else kube-time-to-served.png and kube-rss.png
#   against the sizes, when gnuplot is there).
#
# What runs (all on 127.0.0.1): nginx as the upstream and wrk on core 1; the fake API
# server on core 1 (it is the cluster, not the proxy); ingress-proxy --kube
# --worker-threads 1 --update-status false on core 0, with the same objects as
# bench/config-apply.sh (bench/gen-manifests.py's N Ingresses, bench.local, probe.local).
# Per size it prints the same columns as bench/config-apply.sh. ingress-kube's snapshot
# debounce (50 ms after the last event of a burst) is part of every sample.
# Output: target/bench-logs/kube-apply-STAMP/results.tsv (one line per size).
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
INGRESSES="${INGRESSES:-20000}"
CHANGES="${CHANGES:-100}"
CONNS="${CONNS:-64}"
BASE_PORT="${BASE_PORT:-18280}"
apply_ports "$BASE_PORT"

apply_tools
if [[ -z "${NO_BUILD:-}" ]]; then
    bench_log "cargo build --release -p ingress-proxy; fake-apiserver"
    cargo build --release -q -p ingress-proxy
    cargo build --release -q -p ingress-kube --example fake-apiserver
fi
target="${CARGO_TARGET_DIR:-$root/target}/release"
PROXY="$target/ingress-proxy"
API="$target/examples/fake-apiserver"
[[ -x "$PROXY" ]] || bench_die "$PROXY not built"
[[ -x "$API" ]] || bench_die "$API not built"

apply_run kube-apply

apply_machine "$out" "$INGRESSES" "$CHANGES"
apply_upstream "$up_port" "$out"
results="$out/results.tsv"
apply_header "$results"

for n in $INGRESSES; do
    m="$work/manifests-$n"
    python3 "$root/bench/gen-manifests.py" "$n" $((n / 10)) --out "$m" --files 100
    bench_manifest bench.local "$up_port" >"$m/bench.yaml"
    python3 "$root/bench/config_apply.py" probe 0 >"$m/probe.json"

    bench_log "$n Ingresses: starting the fake API server"
    taskset -c 1 "$API" "$m" "$work/kubeconfig" >"$out/apiserver-$n.log" 2>&1 &
    api=$!
    pids+=("$api")
    for _ in $(seq 1200); do
        grep -q '^ready ' "$out/apiserver-$n.log" 2>/dev/null && break
        kill -0 "$api" 2>/dev/null || bench_die "fake API server: $(tail -n 5 "$out/apiserver-$n.log")"
        sleep 0.1
    done
    read -r _ api_addr objects < <(grep '^ready ' "$out/apiserver-$n.log") ||
        bench_die "fake API server not ready: $(tail -n 5 "$out/apiserver-$n.log")"
    bench_log "$n Ingresses: API server at $api_addr with $objects objects; starting ingress-proxy --kube"

    t0=$(date +%s.%N)
    INGRESS_PROXY_LOG="${INGRESS_PROXY_LOG:-warn}" taskset -c 0 "$PROXY" --kube \
        --kubeconfig "$work/kubeconfig" --update-status false \
        --listen-http "127.0.0.1:$px_http" --listen-https "127.0.0.1:$px_https" \
        --listen-admin "127.0.0.1:$px_admin" --worker-threads 1 \
        >"$out/ingress-proxy-$n.log" 2>&1 &
    px=$!
    pids+=("$px")
    apply_measure "$n" "$px" "$t0" "$px_http" "$out" "$results" run-kube "http://$api_addr"
    kill -TERM "$px" "$api"
    wait "$px" "$api" 2>/dev/null || true
    rm -rf "$m"
done

echo
column -t -s $'\t' "$results"
if [[ -z "${NO_CHARTS:-}" ]]; then
    python3 "$root/bench/config_apply.py" chart "$results" "$out" kube- || bench_log "charts failed (gnuplot)"
fi
bench_log "results: $results"
