#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind (repeatable on a noisy
# machine, unlike wall time), with the functions that cost the most (inclusive).
# Loopback only.
#
# Usage (as root on a fresh Debian, or with nginx, wrk and valgrind installed):
#   bench/proxy-callgrind.sh [REQUESTS]      (default 2000 measured requests)
# Environment: NO_BUILD=1 (use the binary built before), CONNS (default 4), TOP (default 40),
#   PATH_= request path (default /small: 64 bytes), BASE_PORT (default 18180),
#   INGRESSES=N (scenario 4): also load bench/gen-manifests.py's N Ingresses besides the
#   measured one (5 paths each, N/10 wildcard hosts, 100 files; loading 20,000 under
#   callgrind takes a few minutes).
#
# What runs: an nginx upstream serving /small (64 B) and /10k; ingress-proxy (release build
# with line tables) under `valgrind --tool=callgrind --instr-atstart=no` on a generated
# manifests folder (one Ingress, access log off), one Tokio worker. After a warm-up, collection is
# switched on, a keep-alive client (wrk -c CONNS) sends at least REQUESTS requests, collection
# is dumped, and the script prints instructions per request (total and by thread) and the top
# functions by inclusive cost. Output kept in target/bench-logs/proxy-callgrind-STAMP/.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
REQUESTS="${1:-2000}"
CONNS="${CONNS:-4}"
TOP="${TOP:-40}"
REQ_PATH="${PATH_:-/small}"
BASE_PORT="${BASE_PORT:-18180}"
HOST=bench.local
up_port=$BASE_PORT
px_http=$((BASE_PORT + 1))
px_admin=$((BASE_PORT + 2))
px_https=$((BASE_PORT + 3))

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

need=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v valgrind >/dev/null || need+=(valgrind)
command -v curl >/dev/null || need+=(curl)
if [[ ${#need[@]} -gt 0 ]]; then
    [[ $(id -u) -eq 0 ]] || die "missing: ${need[*]}; run as root to install them from apt"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

if [[ -z "${NO_BUILD:-}" ]]; then
    log "cargo build --release -p ingress-proxy (line tables)"
    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -q -p ingress-proxy
fi
PROXY="${CARGO_TARGET_DIR:-$root/target}/release/ingress-proxy"
[[ -x "$PROXY" ]] || die "$PROXY not built"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$root/target/bench-logs/proxy-callgrind-$stamp"
mkdir -p "$out"
work="$(mktemp -d /tmp/proxy-callgrind.XXXXXX)"
chmod 755 "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/www" "$work/manifests" "$work/tmp"
head -c 64 /dev/zero | tr '\0' 'a' >"$work/www/small"
head -c 10240 /dev/zero | tr '\0' 'b' >"$work/www/10k"
chmod -R a+rX "$work"
cat >"$work/upstream.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/upstream.pid;
error_log $work/upstream.error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
    default_type application/octet-stream;
    keepalive_requests 10000000;
    keepalive_timeout 600s;
    server { listen 127.0.0.1:$up_port; root $work/www; }
}
EOF
bench_manifest "$HOST" "$up_port" with-class >"$work/manifests/bench.yaml"
if [[ -n "${INGRESSES:-}" ]]; then
    log "generating $INGRESSES more Ingresses"
    python3 "$root/bench/gen-manifests.py" "$INGRESSES" $((INGRESSES / 10)) \
        --out "$work/manifests/many" --files 100 --no-class
fi

"$NGINX" -p "$work" -c "$work/upstream.conf" >"$out/upstream.log" 2>&1 &
pids+=($!)

INGRESS_PROXY_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$out/callgrind.out.%p" --separate-threads=no \
    "$PROXY" --manifests "$work/manifests" --listen-http "127.0.0.1:$px_http" \
    --listen-https "127.0.0.1:$px_https" --listen-admin "127.0.0.1:$px_admin" --worker-threads 1 >"$out/proxy.log" 2>&1 &
vg=$!
pids+=("$vg")

ok=""
for _ in $(seq $(( ${INGRESSES:-0} > 0 ? 6000 : 300 ))); do
    if curl -fsS -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$px_http$REQ_PATH" 2>/dev/null; then ok=1; break; fi
    sleep 0.2
done
[[ -n "$ok" ]] || die "proxy did not serve: $(tail -n 5 "$out/proxy.log")"
if [[ -n "${INGRESSES:-}" ]]; then
    # The last generated Ingress is in the served table (the admin's /routes).
    curl -fsS -o "$work/routes.json" "http://127.0.0.1:$px_admin/routes" || die "no /routes"
    grep -q "\"app$((INGRESSES - 1)).example.com\"" "$work/routes.json" ||
        die "the generated Ingresses are not loaded (app$((INGRESSES - 1)).example.com not in /routes)"
    log "the generated Ingresses are loaded (app$((INGRESSES - 1)).example.com is in /routes)"
fi

# Warm-up: connections to the upstream pooled, lazy statics initialised.
wrk -t 1 -c "$CONNS" -d 3s -H "Host: $HOST" "http://127.0.0.1:$px_http$REQ_PATH" >"$out/warmup.txt"
callgrind_control -i on "$vg" >/dev/null
# wrk runs for a fixed time; run it until at least REQUESTS requests were counted.
total=0
while [[ $total -lt $REQUESTS ]]; do
    wrk -t 1 -c "$CONNS" -d 5s -H "Host: $HOST" "http://127.0.0.1:$px_http$REQ_PATH" >"$out/wrk.txt"
    grep -q "Non-2xx" "$out/wrk.txt" && die "non-2xx answers: $(cat "$out/wrk.txt")"
    n="$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out/wrk.txt")"
    total=$((total + n))
done
callgrind_control -i off "$vg" >/dev/null
callgrind_control -d "$vg" >/dev/null
sleep 1
file="$(ls -t "$out"/callgrind.out.* | head -n 1)"
[[ -s "$file" ]] || die "no callgrind output"
ir="$(callgrind_annotate "$file" 2>/dev/null | sed -n 's/^\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)"
[[ -n "$ir" ]] || die "could not read the totals from $file"
{
    echo "requests: $total (path $REQ_PATH, $CONNS keep-alive connections, ${INGRESSES:-0} more Ingresses loaded)"
    echo "instructions: $ir"
    echo "instructions per request: $((ir / total))"
} | tee "$out/summary.txt"
callgrind_annotate --inclusive=yes "$file" 2>/dev/null | sed -n "1,$((TOP + 25))p" >"$out/inclusive.txt"
callgrind_annotate "$file" 2>/dev/null | sed -n "1,$((TOP + 25))p" >"$out/exclusive.txt"
log "per function, inclusive: $out/inclusive.txt; exclusive: $out/exclusive.txt; raw: $file"
