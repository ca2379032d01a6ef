#!/usr/bin/env bash
# Where a proxy's CPU goes under scenario 1's load, in user space and in the kernel:
# `perf record` of the proxy process (ingress-proxy or nginx, same setup as
# bench/proxy-vs-nginx.sh) while wrk runs, and system calls counted per request. Loopback
# only. Explains CPU-per-request gaps that instruction counts (bench/proxy-callgrind.sh)
# cannot see: kernel time, cache misses, wake-ups.
#
# Usage (as root on a fresh Debian, or with nginx, wrk, perf installed):
#   bench/proxy-perf.sh [ingress-proxy|nginx]...     (default: both, one after the other)
# Environment: NO_BUILD=1, CONNS (default 64), PATH_= request path (default /small: 64 B;
#   /10k and /1m exist too), SECONDS_= seconds recorded (default 5), TOP (default 30),
#   BASE_PORT (default 18600; uses BASE_PORT..BASE_PORT+3).
#
# What runs: an nginx upstream (1 worker) and wrk on core 1; the proxy under test on core 0
# (ingress-proxy --worker-threads 1 on a one-Ingress folder; nginx: bench/proxy-vs-nginx.sh's
# configs from bench/lib.sh, without its TLS listener). After a 2 s warm-up, wrk runs
# SECONDS_+3 s; perf records the proxy (cpu-clock, 2 kHz, kernel call chains) for SECONDS_
# of them, then counts its writev/recvfrom/epoll_wait calls for as long again. Prints, per
# target: requests per second, system calls per request, the share of samples in the kernel
# and the TOP symbols by exclusive share; for the top kernel symbol, its heaviest call chain.
# Output kept in target/bench-logs/proxy-perf-STAMP/.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
CONNS="${CONNS:-64}"
REQ_PATH="${PATH_:-/small}"
SECS="${SECONDS_:-5}"
TOP="${TOP:-30}"
BASE_PORT="${BASE_PORT:-18600}"
HOST=bench.local
up_port=$BASE_PORT
px_http=$((BASE_PORT + 1))
px_admin=$((BASE_PORT + 2))
px_https=$((BASE_PORT + 3))
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(ingress-proxy nginx)

need=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v perf >/dev/null || need+=(linux-perf)
command -v curl >/dev/null || need+=(curl)
command -v taskset >/dev/null || need+=(util-linux)
bench_install "${need[@]}"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[[ $(nproc) -ge 2 ]] || bench_die "needs 2 cores (proxy on core 0, wrk and upstream on core 1)"

if [[ -z "${NO_BUILD:-}" ]]; then
    bench_log "cargo build --release -p ingress-proxy"
    cargo build --release -q -p ingress-proxy
fi
PROXY="${CARGO_TARGET_DIR:-$root/target}/release/ingress-proxy"
[[ -x "$PROXY" ]] || bench_die "$PROXY not built"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$root/target/bench-logs/proxy-perf-$stamp"
mkdir -p "$out"
work="$(mktemp -d /tmp/proxy-perf.XXXXXX)"
chmod 755 "$work"
pids=()
stop_all() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/manifests"
bench_bodies
bench_nginx_upstream "$up_port" >"$work/upstream.conf"
cat >"$work/nginx-proxy.conf" <<EOF
$(bench_nginx_main nginx-proxy)
http {
    access_log off;
$(bench_nginx_temps nginx-proxy)
    keepalive_requests 10000000;
    keepalive_timeout 600s;
$(bench_nginx_pool "$up_port")
    server {
        listen 127.0.0.1:$px_http;
        location / {
$(bench_nginx_forwarding)
        }
    }
}
EOF
bench_manifest "$HOST" "$up_port" with-class >"$work/manifests/bench.yaml"

# Start the target; `pid`: the process to record (ingress-proxy itself, or nginx's one
# worker). Not in a subshell: `pids` must keep what was started.
start_target() { # $1 = target
    case $1 in
        ingress-proxy)
            INGRESS_PROXY_LOG=warn taskset -c 0 "$PROXY" --manifests "$work/manifests" \
                --listen-http "127.0.0.1:$px_http" --listen-https "127.0.0.1:$px_https" \
                --listen-admin "127.0.0.1:$px_admin" --worker-threads 1 >"$out/ingress-proxy.log" 2>&1 &
            pids+=($!)
            pid=$!
            ;;
        nginx)
            taskset -c 0 "$NGINX" -p "$work" -c "$work/nginx-proxy.conf" >"$out/nginx.log" 2>&1 &
            pids+=($!)
            local w=""
            for _ in $(seq 50); do
                w="$(pgrep -P "${pids[-1]}" | head -n 1 || true)"
                [[ -n "$w" ]] && break
                sleep 0.1
            done
            [[ -n "$w" ]] || bench_die "no nginx worker: $(cat "$out/nginx.log")"
            pid=$w
            ;;
        *) bench_die "unknown target $1 (ingress-proxy nginx)" ;;
    esac
}

for t in "${targets[@]}"; do
    taskset -c 1 "$NGINX" -p "$work" -c "$work/upstream.conf" >"$out/upstream.log" 2>&1 &
    pids+=($!)
    pid=""
    start_target "$t"
    ok=""
    for _ in $(seq 100); do
        if curl -fsS -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$px_http$REQ_PATH" 2>/dev/null; then ok=1; break; fi
        sleep 0.1
    done
    [[ -n "$ok" ]] || bench_die "$t did not serve $REQ_PATH"
    url="http://127.0.0.1:$px_http$REQ_PATH"
    taskset -c 1 wrk -t 1 -c "$CONNS" -d 2s -H "Host: $HOST" "$url" >/dev/null
    # Record, then count system calls, while one wrk run goes on.
    taskset -c 1 wrk -t 1 -c "$CONNS" -d "$((2 * SECS + 2))s" -H "Host: $HOST" "$url" >"$out/$t-wrk.txt" &
    wrk_pid=$!
    sleep 1
    perf record -q -g -F 2000 -o "$out/$t.perf.data" -p "$pid" -- sleep "$SECS" 2>"$out/$t.perf.log" >&2
    perf stat -x, -e syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_sendfile64 \
        -p "$pid" -o "$out/$t.syscalls.csv" -- sleep "$SECS"
    wait "$wrk_pid"
    stop_all
    rps="$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$out/$t-wrk.txt")"
    [[ -n "$rps" ]] || bench_die "$t: no wrk figure: $(cat "$out/$t-wrk.txt")"
    perf report -i "$out/$t.perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' >"$out/$t.symbols.txt" || true
    top_kernel="$(grep -m1 '\[k\]' "$out/$t.symbols.txt" | sed 's/.*\[k\] //' | awk '{print $1}')"
    {
        echo "== $t: $REQ_PATH, $CONNS connections, ${rps} requests/s"
        awk -F, -v rps="$rps" -v secs="$SECS" '$1 ~ /^[0-9]+$/ {
            n = $3; sub(/.*sys_enter_/, "", n)
            printf "  %-11s %7.2f per request\n", n, $1 / (rps * secs) }' "$out/$t.syscalls.csv"
        awk '{ s = $1; sub(/%/, "", s); if ($0 ~ /\[k\]/) k += s; t += s }
            END { printf "  kernel: %.1f%% of samples\n", k * 100 / t }' "$out/$t.symbols.txt"
        echo "  top symbols (exclusive):"
        head -n "$TOP" "$out/$t.symbols.txt" | sed 's/^/    /'
        if [[ -n "$top_kernel" ]]; then
            echo "  heaviest call chain into $top_kernel:"
            perf report -i "$out/$t.perf.data" --no-children -S "$top_kernel" -G --stdio 2>/dev/null |
                grep -v '^#' | grep -v '^$' | sed -n '2,40p' | sed 's/^/    /'
        fi
    } | tee "$out/$t.summary.txt"
done
bench_log "raw output: $out"
