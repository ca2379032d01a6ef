#!/usr/bin/env bash
# Side-by-side HTTP benchmark: ingress-proxy against nginx and HAProxy as reverse proxies
# (performance issue, scenarios 1, 2 and 3). Loopback only.
#
# Usage (as root on a fresh Debian/Ubuntu, or with the tools already installed):
#   bench/proxy-vs-nginx.sh [SCENARIO...]
# SCENARIO: h1 (scenario 1: HTTP/1.1 keep-alive, small body, 64 connections),
#           10k, 1m (scenario 3: 10 KiB and 1 MiB bodies),
#           tls (scenario 2: HTTP/1.1 over TLS 1.3, keep-alive), h2 (scenario 2: HTTP/2 over TLS, h2load).
#           Default: h1 10k 1m tls h2.
# Environment: DURATION (s per round, default 10), ROUNDS (per target, default 3),
#   CONNS (default 64), CONNS_1M (default 16), H2_CONNS (default 16), H2_STREAMS (default 10),
#   BASE_PORT (default 18080; uses BASE_PORT..BASE_PORT+7), NO_INSTALL=1, NO_BUILD=1,
#   PEERS (default "nginx haproxy"; nginx is always run: the ratios are to nginx),
#   NO_CHARTS=1 (skip the PNG charts, which need gnuplot),
#   NGINX_PROXY_BUFFERING (default off) and NGINX_PROXY_BUFFER_SIZE (default 4k): ingress-nginx's
#   defaults (proxy-buffering off, proxy-buffer-size 4k); the 1 MiB figure of nginx depends on them.
#   INGRESSES=N (scenario 4): the proxy also loads bench/gen-manifests.py's N Ingresses (5 paths
#   each, N/10 wildcard hosts, 100 files) besides bench.local, e.g. INGRESSES=20000 bench/proxy-vs-nginx.sh h1.
#   PEERS="many" (scenario 4, side by side): a second ingress-proxy, target "ingress-proxy-many",
#   loads MANY (default 20000) generated Ingresses besides bench.local and runs in the same
#   interleaved rounds as the first; the table then ends with its ratios to the first, e.g.
#   PEERS="nginx many" bench/proxy-vs-nginx.sh h1.
#   PEERS="nginx other" PROXY_OTHER=BIN: a second ingress-proxy binary, target "ingress-proxy-other",
#   on the same manifests in the same interleaved rounds (an A/B of two builds); the table then
#   ends with its ratios to the first.
#
# What runs (all on 127.0.0.1):
#   upstream     nginx (same binary), 1 worker, serving fixed files /small (64 B), /10k, /1m;
#                pinned to core 1 with the load generator
#   ingress-proxy --worker-threads 1, generated manifests (host bench.local -> Service ->
#                EndpointSlice -> upstream), access log off; pinned to core 0
#   nginx        worker_processes 1, proxy_pass to an upstream{} keepalive pool, HTTP/1.1 to the
#                upstream, access_log off, the same forwarded headers the proxy sets, proxy
#                buffering off (ingress-nginx's default); pinned to core 0
#   haproxy      nbthread 1, one frontend (HTTP, and TLS 1.3 with ALPN h2) to a backend with
#                http-reuse always, the same forwarded headers; pinned to core 0
#   wrk / h2load pinned to core 1
# Rounds are interleaved (ingress-proxy, nginx, haproxy, ingress-proxy, ...) after one short
# warm-up each. CPU µs per request = utime+stime of the proxy's processes (/proc/PID/stat;
# for nginx master + worker) over the round / requests completed; RSS = VmRSS after the round
# (nginx: the worker's). Prints one table of medians with the ratios to nginx; user and
# kernel CPU µs per request apart go to cpu-split.tsv; charts of CPU per request and p99 per
# scenario and target go to cpu-per-request.png and p99.png (gnuplot).
# Logs and raw tool output: target/bench-logs/proxy-vs-nginx-STAMP/.
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-64}"
CONNS_1M="${CONNS_1M:-16}"
H2_CONNS="${H2_CONNS:-16}"
H2_STREAMS="${H2_STREAMS:-10}"
BASE_PORT="${BASE_PORT:-18080}"
HOST=bench.local
scenarios=("$@")
read -ra peers <<<"${PEERS:-nginx haproxy}"
targets=(ingress-proxy nginx)
for p in "${peers[@]}"; do
    case $p in
        nginx) ;;
        haproxy) targets+=(haproxy) ;;
        many) targets+=(ingress-proxy-many) ;;
        other) targets+=(ingress-proxy-other) ;;
        *) echo "unknown peer $p (nginx haproxy many other)" >&2; exit 2 ;;
    esac
done
has_target() { local t; for t in "${targets[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }
[[ ${#scenarios[@]} -gt 0 ]] || scenarios=(h1 10k 1m tls h2)

up_port=$BASE_PORT
px_http=$((BASE_PORT + 1))
px_https=$((BASE_PORT + 2))
px_admin=$((BASE_PORT + 3))
ng_http=$((BASE_PORT + 4))
ng_https=$((BASE_PORT + 5))
hp_http=$((BASE_PORT + 6))
hp_https=$((BASE_PORT + 7))
pm_http=$((BASE_PORT + 8))
pm_https=$((BASE_PORT + 9))
pm_admin=$((BASE_PORT + 10))
MANY="${MANY:-20000}"
po_http=$((BASE_PORT + 11))
po_https=$((BASE_PORT + 12))
po_admin=$((BASE_PORT + 13))

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools ----------------------------------------------------------------------------
need=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v openssl >/dev/null || need+=(openssl)
command -v taskset >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
if has_target haproxy; then
    command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || need+=(haproxy)
fi
if [[ -z "${NO_CHARTS:-}" ]]; then command -v gnuplot >/dev/null || need+=(gnuplot-nox); fi
if [[ ${#need[@]} -gt 0 ]]; then
    [[ -z "${NO_INSTALL:-}" ]] || die "missing: ${need[*]} (NO_INSTALL is set)"
    [[ $(id -u) -eq 0 ]] || die "missing: ${need[*]}; run as root to install them from apt"
    log "installing from apt: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
[[ $(nproc) -ge 2 ]] || die "needs 2 cores (proxy on core 0, load generator and upstream on core 1)"

if [[ -z "${NO_BUILD:-}" ]]; then
    log "cargo build --release -p ingress-proxy"
    cargo build --release -q -p ingress-proxy
fi
PROXY="${CARGO_TARGET_DIR:-$root/target}/release/ingress-proxy"
[[ -x "$PROXY" ]] || die "$PROXY not built"
if has_target ingress-proxy-other; then
    [[ -x "${PROXY_OTHER:-}" ]] || die "PEERS has other: set PROXY_OTHER to an ingress-proxy binary"
fi

for p in $up_port $px_http $px_https $px_admin $ng_http $ng_https $hp_http $hp_https $pm_http $pm_https $pm_admin $po_http $po_https $po_admin; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        die "port $p is in use (set BASE_PORT)"
    fi
done

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$root/target/bench-logs/proxy-vs-nginx-$stamp"
mkdir -p "$out"
work="$(mktemp -d /tmp/proxy-vs-nginx.XXXXXX)"
chmod 755 "$work"
results="$out/results.tsv"
: >"$results"
PY="$root/bench/proxy_vs_nginx.py"

# --- cleanup: stop only what we started ---------------------------------------------------
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ $alive -eq 0 ]] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    # nginx workers of our masters (they exit with the master; belt and braces)
    for p in "${ngx_workers[@]:-}"; do [[ -n "$p" ]] && kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
ngx_workers=()
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- machine ------------------------------------------------------------------------------
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc: $(nproc)"
    echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "kernel: $(uname -r)"
    echo "nginx: $("$NGINX" -v 2>&1 | sed 's/.*: //')"
    echo "wrk: $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
    echo "h2load: $(h2load --version 2>&1 | head -n 1)"
    if has_target haproxy; then echo "haproxy: $("$HAPROXY" -v 2>&1 | head -n 1 | cut -d' ' -f3)"; fi
    echo "ingress-proxy: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- ingress-proxy ingress-core || echo ' (modified)')"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nginx proxy_buffering ${NGINX_PROXY_BUFFERING:-off}, proxy_buffer_size ${NGINX_PROXY_BUFFER_SIZE:-4k}"
    echo "duration ${DURATION}s x ${ROUNDS} rounds per target; conns ${CONNS} (1m: ${CONNS_1M}; h2: ${H2_CONNS} x ${H2_STREAMS} streams)"
    echo "Ingresses loaded by the proxy besides bench.local: ${INGRESSES:-0}"
    if has_target ingress-proxy-many; then echo "Ingresses loaded by ingress-proxy-many besides bench.local: $MANY"; fi
    if has_target ingress-proxy-other; then echo "ingress-proxy-other: $PROXY_OTHER"; fi
} | tee "$out/machine.txt" >&2

# --- files: bodies, certificate, configs --------------------------------------------------
mkdir -p "$work/manifests"
bench_bodies
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST" \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
chmod a+r "$work/key.pem"

bench_nginx_upstream "$up_port" >"$work/upstream.conf"

{
    bench_nginx_main nginx-proxy
    cat <<EOF
http {
    access_log off;
$(bench_nginx_temps nginx-proxy)
    keepalive_requests 10000000;
    keepalive_timeout 600s;
$(bench_nginx_pool "$up_port")
    server {
        listen 127.0.0.1:$ng_http;
        listen 127.0.0.1:$ng_https ssl http2;
        server_name $HOST;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        ssl_protocols TLSv1.3;
        location / {
$(bench_nginx_forwarding)
        }
    }
}
EOF
} >"$work/nginx-proxy.conf"

cat "$work/cert.pem" "$work/key.pem" >"$work/haproxy.pem"
cat >"$work/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 600s
    timeout server 600s
    timeout http-keep-alive 600s
frontend bench
    bind 127.0.0.1:$hp_http
    bind 127.0.0.1:$hp_https ssl crt $work/haproxy.pem alpn h2,http/1.1 ssl-min-ver TLSv1.3
    option forwardfor
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Forwarded-Port %[dst_port]
    http-request set-header X-Request-ID %[uuid]
    default_backend upstream
backend upstream
    http-reuse always
    server upstream 127.0.0.1:$up_port maxconn 1000
EOF

bench_manifest "$HOST" "$up_port" with-class >"$work/manifests/bench.yaml"

if [[ -n "${INGRESSES:-}" ]]; then
    log "generating $INGRESSES more Ingresses for the proxy (scenario 4)"
    python3 "$root/bench/gen-manifests.py" "$INGRESSES" $((INGRESSES / 10)) \
        --out "$work/manifests/many" --files 100 --no-class
fi
if has_target ingress-proxy-many; then
    log "generating $MANY Ingresses for ingress-proxy-many (scenario 4)"
    mkdir -p "$work/manifests-many"
    cp "$work/manifests/bench.yaml" "$work/manifests-many/"
    python3 "$root/bench/gen-manifests.py" "$MANY" $((MANY / 10)) \
        --out "$work/manifests-many/many" --files 100 --no-class
fi

# --- start --------------------------------------------------------------------------------
start_nginx() { # $1 = name, $2 = core
    "$NGINX" -t -q -p "$work" -c "$work/$1.conf" 2>"$out/$1.test.log" ||
        die "nginx -t $1: $(cat "$out/$1.test.log")"
    taskset -c "$2" "$NGINX" -p "$work" -c "$work/$1.conf" >"$out/$1.stdout.log" 2>&1 &
    pids+=($!)
}
nginx_worker() { # $1 = master pid
    local w=""
    for _ in $(seq 50); do
        w="$(pgrep -P "$1" | head -n 1 || true)"
        [[ -n "$w" ]] && break
        sleep 0.1
    done
    [[ -n "$w" ]] || die "no nginx worker under $1"
    echo "$w"
}

start_nginx upstream 1
up_master=${pids[-1]}
ngx_workers+=("$(nginx_worker "$up_master")")
python3 "$PY" wait "http://127.0.0.1:$up_port/small" "$HOST" 10 || die "upstream did not start"

start_nginx nginx-proxy 0
ng_master=${pids[-1]}
ng_worker="$(nginx_worker "$ng_master")"
ngx_workers+=("$ng_worker")

hp_pid=""
if has_target haproxy; then
    "$HAPROXY" -c -q -f "$work/haproxy.cfg" >"$out/haproxy.test.log" 2>&1 ||
        die "haproxy -c: $(cat "$out/haproxy.test.log")"
    taskset -c 0 "$HAPROXY" -db -f "$work/haproxy.cfg" >"$out/haproxy.log" 2>&1 &
    hp_pid=$!
    pids+=("$hp_pid")
fi

INGRESS_PROXY_LOG=warn taskset -c 0 "$PROXY" --manifests "$work/manifests" \
    --listen-http "127.0.0.1:$px_http" --listen-https "127.0.0.1:$px_https" \
    --listen-admin "127.0.0.1:$px_admin" --worker-threads 1 \
    --default-certificate "$work/cert.pem" --default-key "$work/key.pem" \
    >"$out/ingress-proxy.log" 2>&1 &
px_pid=$!
pids+=("$px_pid")
python3 "$PY" wait "http://127.0.0.1:$px_admin/readyz" localhost $(( ${INGRESSES:-0} > 0 ? 300 : 20 )) || die "ingress-proxy not ready: $(tail -n 5 "$out/ingress-proxy.log")"
# start_second NAME BINARY MANIFESTS HTTP HTTPS ADMIN: a second ingress-proxy, as the first.
start_second() {
    INGRESS_PROXY_LOG=warn taskset -c 0 "$2" --manifests "$3" \
        --listen-http "127.0.0.1:$4" --listen-https "127.0.0.1:$5" \
        --listen-admin "127.0.0.1:$6" --worker-threads 1 \
        --default-certificate "$work/cert.pem" --default-key "$work/key.pem" \
        >"$out/$1.log" 2>&1 &
    pids+=($!)
    python3 "$PY" wait "http://127.0.0.1:$6/readyz" localhost 300 || die "$1 not ready: $(tail -n 5 "$out/$1.log")"
}
pm_pid=""
if has_target ingress-proxy-many; then
    start_second ingress-proxy-many "$PROXY" "$work/manifests-many" $pm_http $pm_https $pm_admin
    pm_pid=${pids[-1]}
fi
po_pid=""
if has_target ingress-proxy-other; then
    start_second ingress-proxy-other "$PROXY_OTHER" "$work/manifests" $po_http $po_https $po_admin
    po_pid=${pids[-1]}
fi

for t in "${targets[@]}"; do
    case $t in
        nginx) h=$ng_http s=$ng_https ;;
        haproxy) h=$hp_http s=$hp_https ;;
        ingress-proxy-many) h=$pm_http s=$pm_https ;;
        ingress-proxy-other) h=$po_http s=$po_https ;;
        *) h=$px_http s=$px_https ;;
    esac
    python3 "$PY" wait "http://127.0.0.1:$h/small" "$HOST" 10 || die "$t: no 200 on /small"
    python3 "$PY" check "http://127.0.0.1:$h/small" "$HOST" 64 || die "$t /small"
    python3 "$PY" check "http://127.0.0.1:$h/10k" "$HOST" 10240 || die "$t /10k"
    python3 "$PY" check "http://127.0.0.1:$h/1m" "$HOST" 1048576 || die "$t /1m"
    python3 "$PY" check "https://127.0.0.1:$s/small" "$HOST" 64 || die "$t https /small"
done
log "all up: upstream :$up_port, ingress-proxy :$px_http/:$px_https (pid $px_pid), nginx :$ng_http/:$ng_https (worker $ng_worker)${hp_pid:+, haproxy :$hp_http/:$hp_https (pid $hp_pid)}${pm_pid:+, ingress-proxy-many :$pm_http/:$pm_https (pid $pm_pid)}${po_pid:+, ingress-proxy-other :$po_http/:$po_https (pid $po_pid)}"

# --- measuring ----------------------------------------------------------------------------
tck="$(getconf CLK_TCK)"
cpu_ticks() { # sum of utime+stime over the given pids
    local sum=0 p stat rest
    for p in "$@"; do
        stat="$(cat "/proc/$p/stat")" || die "process $p is gone"
        rest="${stat##*) }"
        read -ra f <<<"$rest"
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum"
}
cpu_split() { # "utime stime" in ticks, summed over the given pids
    local u=0 k=0 p stat rest
    for p in "$@"; do
        stat="$(cat "/proc/$p/stat")" || die "process $p is gone"
        rest="${stat##*) }"
        read -ra f <<<"$rest"
        u=$((u + f[11])) k=$((k + f[12]))
    done
    echo "$u $k"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# run_load TOOL URL CONNS SECONDS RAWFILE
run_load() {
    local tool=$1 url=$2 conns=$3 secs=$4 raw=$5
    case $tool in
        wrk)
            timeout $((secs + 30)) taskset -c 1 wrk -t 1 -c "$conns" -d "${secs}s" --latency \
                -H "Host: $HOST" "$url" >"$raw" 2>&1
            ;;
        h2load)
            timeout $((secs + 30)) taskset -c 1 h2load -t 1 -c "$conns" -m "$H2_STREAMS" \
                -D "$secs" -H ":authority: $HOST" "$url" >"$raw" 2>&1
            ;;
    esac
}

# scenario NAME TOOL PATH CONNS SCHEME
scenario() {
    local name=$1 tool=$2 path=$3 conns=$4 scheme=$5 round t port url pidlist rss before after
    log "scenario $name: $tool $scheme $path, $conns connections, ${DURATION}s x $ROUNDS rounds per target"
    for t in "${targets[@]}"; do # warm-up (pools, caches)
        url="$(target_url "$t" "$scheme" "$path")"
        run_load "$tool" "$url" "$conns" 2 "$out/${name// /_}-$t-warmup.txt" || log "warm-up $t failed"
    done
    for round in $(seq "$ROUNDS"); do
        for t in "${targets[@]}"; do
            url="$(target_url "$t" "$scheme" "$path")"
            case $t in
                nginx) pidlist=("$ng_master" "$ng_worker") rss=$ng_worker ;;
                haproxy) pidlist=("$hp_pid") rss=$hp_pid ;;
                ingress-proxy-many) pidlist=("$pm_pid") rss=$pm_pid ;;
                ingress-proxy-other) pidlist=("$po_pid") rss=$po_pid ;;
                *) pidlist=("$px_pid") rss=$px_pid ;;
            esac
            local raw="$out/${name// /_}-$t-$round.txt"
            before="$(cpu_ticks "${pidlist[@]}")"
            local split_before split_after
            split_before="$(cpu_split "${pidlist[@]}")"
            local t0 t1
            t0="$(date +%s.%N)"
            run_load "$tool" "$url" "$conns" "$DURATION" "$raw" || { log "$t round $round: $tool failed: $(tail -n 3 "$raw")"; continue; }
            t1="$(date +%s.%N)"
            after="$(cpu_ticks "${pidlist[@]}")"
            split_after="$(cpu_split "${pidlist[@]}")"
            local parsed
            parsed="$(python3 "$PY" "$tool" "$raw")" || { log "$t round $round: cannot parse $raw"; continue; }
            local reqs
            reqs="$(cut -f1 <<<"$parsed")"
            local cpu_us cpu_pct
            cpu_us="$(awk -v a="$before" -v b="$after" -v n="$reqs" -v hz="$tck" 'BEGIN { printf "%.3f", (b - a) * 1e6 / hz / n }')"
            cpu_pct="$(awk -v a="$before" -v b="$after" -v t0="$t0" -v t1="$t1" -v hz="$tck" 'BEGIN { printf "%.1f", (b - a) / hz / (t1 - t0) * 100 }')"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$t" "$round" "$parsed" "$cpu_us" "$cpu_pct" "$(rss_kib "$rss")" | tee -a "$results" >&2
            # User and kernel CPU µs per request, apart (cpu-split.tsv).
            read -r ub kb <<<"$split_before"
            read -r ua ka <<<"$split_after"
            awk -v n="$name" -v t="$t" -v r="$round" -v u=$((ua - ub)) -v k=$((ka - kb)) -v q="$reqs" -v hz="$tck" \
                'BEGIN { printf "%s\t%s\t%s\tuser %.2f\tsys %.2f\n", n, t, r, u * 1e6 / hz / q, k * 1e6 / hz / q }' |
                tee -a "$out/cpu-split.tsv" >&2
        done
    done
}
target_url() { # $1 target, $2 scheme, $3 path
    local port
    case "$1/$2" in
        ingress-proxy/http) port=$px_http ;;
        ingress-proxy/https) port=$px_https ;;
        nginx/http) port=$ng_http ;;
        nginx/https) port=$ng_https ;;
        haproxy/http) port=$hp_http ;;
        haproxy/https) port=$hp_https ;;
        ingress-proxy-many/http) port=$pm_http ;;
        ingress-proxy-many/https) port=$pm_https ;;
        ingress-proxy-other/http) port=$po_http ;;
        ingress-proxy-other/https) port=$po_https ;;
    esac
    echo "$2://127.0.0.1:$port$3"
}

for s in "${scenarios[@]}"; do
    case $s in
        h1) scenario "1 h1 small" wrk /small "$CONNS" http ;;
        10k) scenario "3 h1 10KiB" wrk /10k "$CONNS" http ;;
        1m) scenario "3 h1 1MiB" wrk /1m "$CONNS_1M" http ;;
        tls) scenario "2 tls1.3 h1 small" wrk /small "$CONNS" https ;;
        h2) scenario "2 h2 tls small" h2load /small "$H2_CONNS" https ;;
        *) die "unknown scenario $s (h1 10k 1m tls h2)" ;;
    esac
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt" >&2
python3 "$PY" table "$results" | tee "$out/table.md"
if [[ -z "${NO_CHARTS:-}" ]]; then
    python3 "$PY" chart "$results" "$out" || log "charts failed (gnuplot)"
fi
log "raw output: $out"
