#!/usr/bin/env bash
# Config apply in file mode (performance issue, scenario 5): the proxy serves a manifests
# folder of N Ingresses under wrk load; one Ingress (probe.local, in its own file) is
# changed CHANGES times (its path becomes /vK); each change is timed from the file's
# rename to the first 200 on the new path. Loopback only.
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
# bench.local (wrk's target) and probe.local (the changed one). Per size it prints: the
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
up_port=$BASE_PORT
px_http=$((BASE_PORT + 1))
px_https=$((BASE_PORT + 2))
px_admin=$((BASE_PORT + 3))

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

need=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v taskset >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
if [[ -z "${NO_CHARTS:-}" ]]; then command -v gnuplot >/dev/null || need+=(gnuplot-nox); fi
if [[ ${#need[@]} -gt 0 ]]; then
    [[ -z "${NO_INSTALL:-}" ]] || die "missing: ${need[*]} (NO_INSTALL is set)"
    [[ $(id -u) -eq 0 ]] || die "missing: ${need[*]}; run as root to install them from apt"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[[ $(nproc) -ge 2 ]] || die "needs 2 cores"

if [[ -z "${NO_BUILD:-}" ]]; then
    log "cargo build --release -p ingress-proxy"
    cargo build --release -q -p ingress-proxy
fi
PROXY="${CARGO_TARGET_DIR:-$root/target}/release/ingress-proxy"
[[ -x "$PROXY" ]] || die "$PROXY not built"
PY="$root/bench/config_apply.py"
WAIT="$root/bench/proxy_vs_nginx.py"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$root/target/bench-logs/config-apply-$stamp"
mkdir -p "$out"
work="$(mktemp -d /tmp/config-apply.XXXXXX)"
chmod 755 "$work"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), nproc $(nproc)"
    echo "ingress-proxy: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- ingress-proxy ingress-core || echo ' (modified)')"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "sizes: $INGRESSES; changes $CHANGES; files $FILES; wrk conns $CONNS"
} | tee "$out/machine.txt" >&2

mkdir -p "$work/tmp"
cat >"$work/upstream.conf" <<NGX
worker_processes 1;
daemon off;
pid $work/upstream.pid;
error_log $work/upstream.error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 600s;
    server {
        listen 127.0.0.1:$up_port;
        location / { return 200 "ok\n"; }
    }
}
NGX
taskset -c 1 "$NGINX" -p "$work" -c "$work/upstream.conf" >"$out/upstream.log" 2>&1 &
pids+=($!)
python3 "$WAIT" wait "http://127.0.0.1:$up_port/" localhost 10 || die "upstream did not start"

results="$out/results.tsv"
printf 'ingresses\tready_s\trss_ready_mib\tchanges\tp50_ms\tp99_ms\tmax_ms\tmean_ms\twrk_requests\twrk_failed\trss_after_mib\tpeak_mib\tload\n' >"$results"

for n in $INGRESSES; do
    m="$work/manifests-$n"
    python3 "$root/bench/gen-manifests.py" "$n" $((n / 10)) --out "$m" --files "$FILES"
    bench_manifest bench.local "$up_port" >"$m/bench.yaml"
    python3 "$PY" probe 0 >"$m/probe.yaml"

    log "$n Ingresses: starting ingress-proxy"
    t0=$(date +%s.%N)
    INGRESS_PROXY_LOG="${INGRESS_PROXY_LOG:-warn}" taskset -c 0 "$PROXY" --manifests "$m" \
        --listen-http "127.0.0.1:$px_http" --listen-https "127.0.0.1:$px_https" \
        --listen-admin "127.0.0.1:$px_admin" --worker-threads 1 \
        >"$out/ingress-proxy-$n.log" 2>&1 &
    px=$!
    pids+=("$px")
    python3 "$WAIT" wait "http://127.0.0.1:$px_http/" bench.local 300 ||
        die "ingress-proxy not serving: $(tail -n 5 "$out/ingress-proxy-$n.log")"
    ready=$(echo "$(date +%s.%N) - $t0" | bc)
    python3 "$WAIT" wait "http://127.0.0.1:$px_http/v0" probe.local 10 || die "probe.local /v0 not served"
    read -r rss_ready _ < <(python3 "$PY" rss "$px")
    log "$n Ingresses: ready after ${ready}s, RSS ${rss_ready} MiB; wrk -c$CONNS and $CHANGES changes"

    taskset -c 1 wrk -t1 -c"$CONNS" -d600s -H "Host: bench.local" "http://127.0.0.1:$px_http/" \
        >"$out/wrk-$n.txt" 2>&1 &
    wrk_pid=$!
    sleep 2
    line="$(taskset -c 1 python3 "$PY" run "$m" "$px_http" "$CHANGES")" || die "changes failed (see $out)"
    kill -INT "$wrk_pid"
    wait "$wrk_pid" || true
    read -r rss_after peak < <(python3 "$PY" rss "$px")
    reqs="$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out/wrk-$n.txt")"
    non2xx="$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$out/wrk-$n.txt")"
    sock="$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1+\2+\3+\4/p' "$out/wrk-$n.txt")"
    failed=$(( ${non2xx:-0} + ${sock:-0} ))
    load="$(cut -d' ' -f1 /proc/loadavg)"
    printf '%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$ready" "$rss_ready" "$line" "${reqs:-0}" "$failed" "$rss_after	$peak" "$load" >>"$results"
    kill -TERM "$px"
    wait "$px" 2>/dev/null || true
    rm -rf "$m"
done

echo
column -t -s $'\t' "$results"
if [[ -z "${NO_CHARTS:-}" ]]; then
    python3 "$PY" chart "$results" "$out" || log "charts failed (gnuplot)"
fi
log "results: $results"
