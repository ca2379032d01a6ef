#!/usr/bin/env bash
# Config apply in file mode through the fast paths: a Secret rotation and an
# EndpointSlice change in a folder of N Ingresses (bench/gen-manifests.py), each timed
# from the file's rename to the change being served: the new certificate presented by
# a new TLS handshake (SNI tls.local), or the new endpoint answering (Host ep.local:
# the slice moves between nginx, 200, and a closed port, 502). The Secret and the slice
# are each in a file of their own. A third case changes an app's Ingress and its
# EndpointSlice in one write of one file (app.yaml: the Ingress's path becomes /vK, the
# slice's port moves as above; each kind's fast path in turn, one update), timed until
# GET /vK answers. bench/config-apply.sh does the same for an Ingress change, under wrk
# load; this one runs without load.
#
# With KUBE=1 the same objects are served by the fake Kubernetes API server (ingress-kube's
# `fake-apiserver` example, on core 1) to `ingress-proxy --kube`, and only the
# EndpointSlice change is measured: each one a PUT of the whole slice, timed from the PUT.
#
# Usage: bench/fast-apply.sh
# Environment: INGRESSES (default 20000), FILES (default 100), CHANGES (default 20 of
#   each), PROXY (the binary; default the release build, made unless NO_BUILD=1),
#   API (with KUBE=1: the fake-apiserver binary; default the release build's, made
#   unless NO_BUILD=1), BASE_PORT (default 18280; uses BASE_PORT..BASE_PORT+4),
#   NO_INSTALL=1.
# Output: target/bench-logs/fast-apply-STAMP/results.tsv: per kind, changes and the
#   p50/p99/max/mean of write-to-served in ms.
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
N="${INGRESSES:-20000}"
FILES="${FILES:-100}"
CHANGES="${CHANGES:-20}"
BASE_PORT="${BASE_PORT:-18280}"
apply_ports "$BASE_PORT"
closed=$((BASE_PORT + 4))

NO_CHARTS=1 apply_tools
command -v openssl >/dev/null || bench_die "needs openssl"
if [[ -z "${PROXY:-}" ]]; then
    if [[ -z "${NO_BUILD:-}" ]]; then
        bench_log "cargo build --release -p ingress-proxy"
        cargo build --release -q -p ingress-proxy
    fi
    PROXY="${CARGO_TARGET_DIR:-$root/target}/release/ingress-proxy"
fi
[[ -x "$PROXY" ]] || bench_die "$PROXY not built"
if [[ -n "${KUBE:-}" && -z "${API:-}" ]]; then
    if [[ -z "${NO_BUILD:-}" ]]; then
        bench_log "cargo build --release -p ingress-kube --example fake-apiserver"
        cargo build --release -q -p ingress-kube --example fake-apiserver
    fi
    API="${CARGO_TARGET_DIR:-$root/target}/release/examples/fake-apiserver"
fi
[[ -z "${KUBE:-}" || -x "$API" ]] || bench_die "$API not built"

apply_run fast-apply

apply_upstream "$up_port" "$out"
m="$work/manifests"
python3 "$root/bench/gen-manifests.py" "$N" $((N / 10)) --out "$m" --files "$FILES"
bench_manifest bench.local "$up_port" >"$m/bench.yaml"
mkdir -p "$work/certs"
for k in 0 1 2 3; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=tls.local" -addext "subjectAltName=DNS:tls.local" \
        -keyout "$work/certs/key-$k.pem" -out "$work/certs/cert-$k.pem" 2>/dev/null
done
cat >"$m/probes.yaml" <<YAML
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: tls-probe, namespace: bench}
spec:
  ingressClassName: bench
  tls: [{hosts: [tls.local], secretName: tls-probe}]
  rules:
    - host: tls.local
      http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: upstream, port: {number: 80}}}}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ep-probe, namespace: bench}
spec:
  ingressClassName: bench
  rules:
    - host: ep.local
      http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: epprobe, port: {number: 80}}}}]}
---
apiVersion: v1
kind: Service
metadata: {name: epprobe, namespace: bench}
spec: {ports: [{port: 80}]}
YAML
python3 - "$m" "$work/certs" "$up_port" <<'PY'
import sys
sys.path.insert(0, "bench")
import fast_apply as f
m, certs, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
open(f"{m}/secret.yaml", "w").write(f.secret_yaml(open(f"{certs}/cert-0.pem").read(), open(f"{certs}/key-0.pem").read()))
open(f"{m}/eps.yaml", "w").write(f.slice_yaml(port))
open(f"{m}/app.yaml", "w").write(f.app_yaml(0, port))
PY

source_args=(--manifests "$m")
if [[ -n "${KUBE:-}" ]]; then
    bench_log "$N Ingresses: starting the fake API server ($API)"
    taskset -c 1 "$API" "$m" "$work/kubeconfig" >"$out/apiserver.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 1200); do
        grep -q '^ready ' "$out/apiserver.log" 2>/dev/null && break
        kill -0 "${pids[-1]}" 2>/dev/null || bench_die "fake API server: $(tail -n 5 "$out/apiserver.log")"
        sleep 0.1
    done
    read -r _ api_addr _ < <(grep '^ready ' "$out/apiserver.log") ||
        bench_die "fake API server not ready: $(tail -n 5 "$out/apiserver.log")"
    source_args=(--kube --kubeconfig "$work/kubeconfig" --update-status false)
fi
bench_log "$N Ingresses: starting ingress-proxy ($PROXY${KUBE:+ --kube})"
t0=$(date +%s.%N)
INGRESS_PROXY_LOG="${INGRESS_PROXY_LOG:-info}" taskset -c 0 "$PROXY" "${source_args[@]}" \
    --listen-http "127.0.0.1:$px_http" --listen-https "127.0.0.1:$px_https" \
    --listen-admin "127.0.0.1:$px_admin" --worker-threads 1 \
    >"$out/ingress-proxy.log" 2>&1 &
px=$!
pids+=("$px")
python3 "$root/bench/proxy_vs_nginx.py" wait "http://127.0.0.1:$px_http/" ep.local 600 ||
    bench_die "ingress-proxy not serving: $(tail -n 5 "$out/ingress-proxy.log")"
bench_log "ready after $(echo "$(date +%s.%N) - $t0" | bc) s"
results="$out/results.tsv"
printf 'kind\tingresses\tchanges\tp50_ms\tp99_ms\tmax_ms\tmean_ms\n' >"$results"
# The table of results and the proxy's update counters by kind.
report() {
    curl -s "http://127.0.0.1:$px_admin/metrics" | grep config_updates_total >"$out/updates.txt" || true
    echo
    column -t -s $'\t' "$results"
    cat "$out/updates.txt"
    bench_log "results: $results"
}
if [[ -n "${KUBE:-}" ]]; then
    line="$(taskset -c 1 python3 "$root/bench/fast_apply.py" slice-kube "http://$api_addr" "$px_http" "$up_port" "$closed" "$CHANGES")" ||
        bench_die "slice changes failed"
    printf 'endpointslice-kube\t%s\t%s\n' "$N" "$line" >>"$results"
    report
    # Let it shut down (in --kube mode it takes longer than the cleanup waits).
    kill -TERM "$px" 2>/dev/null || true
    wait "$px" 2>/dev/null || true
    exit 0
fi
line="$(taskset -c 1 python3 "$root/bench/fast_apply.py" secret "$m" "$work/certs" "$px_https" "$CHANGES")" ||
    bench_die "rotations failed"
printf 'secret\t%s\t%s\n' "$N" "$line" >>"$results"
line="$(taskset -c 1 python3 "$root/bench/fast_apply.py" slice "$m" "$px_http" "$up_port" "$closed" "$CHANGES")" ||
    bench_die "slice changes failed"
printf 'endpointslice\t%s\t%s\n' "$N" "$line" >>"$results"
line="$(taskset -c 1 python3 "$root/bench/fast_apply.py" app "$m" "$px_http" "$up_port" "$closed" "$CHANGES")" ||
    bench_die "app changes failed"
printf 'ingress+endpointslice\t%s\t%s\n' "$N" "$line" >>"$results"
report
