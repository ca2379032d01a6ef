#!/usr/bin/env bash
# The full-size runs of the hardening checklist's sections E, F and H (T34, T35,
# T36, T39, T40, T41, T50, T51, T52) against the release proxy as a separate
# process: floods from raw HTTP/2 attackers, h2load, wrk and slowhttptest as load
# drivers, nginx and in-script upstreams, VmRSS and CPU time of the proxy read
# from /proc/<pid> from outside. Loopback only; every process it starts is stopped
# by its pid at the end, also on error and SIGINT. About 8 minutes.
#
# Usage: bench/hardening-full.sh [SCENARIO...]   (default: all; e.g. T34 T52)
# Environment: HARDENING_PROXY (a proxy binary to run; default: build it with
#   `cargo build --release -p ingress-proxy`), BASE_PORT (default 29080; each
#   scenario uses BASE_PORT+20*i .. +20*i+110), NO_INSTALL=1 (fail instead of
#   installing missing tools from apt; needs root otherwise).
#
# What each scenario does and expects: bench/hardening_full.py (its docstring) and
# docs/SECURITY.md ("Sections E, F and H at full size"). Exit status 0 only when
# every row of the table holds. Logs and report.md: target/bench-logs/hardening-full-STAMP/.
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"
source "$root/bench/lib.sh"

need=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v slowhttptest >/dev/null || need+=(slowhttptest)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
bench_install "${need[@]}"

venv="$root/target/hardening-venv"
if ! "$venv/bin/python" -c 'import hpack, h2' 2>/dev/null; then
    bench_log "making $venv (pip install h2)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q h2
fi

target="${CARGO_TARGET_DIR:-$root/target}"
if [[ -z "${HARDENING_PROXY:-}" ]]; then
    bench_log "cargo build --release -p ingress-proxy"
    cargo build --release -q -p ingress-proxy --bin ingress-proxy
fi
PROXY="${HARDENING_PROXY:-$target/release/ingress-proxy}"
[[ -x "$PROXY" ]] || bench_die "$PROXY not built"

# 4000 slowloris connections (T50) and 10,000 sockets in each of T52's two client processes.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"  # per process: T52 splits its clients in two
[[ $(ulimit -n) -ge 12000 ]] || bench_die "ulimit -n is $(ulimit -n); T52 needs 12000 per process"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$root/target/bench-logs/hardening-full-$stamp"
mkdir -p "$out"
commit="$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- ingress-proxy ingress-core || echo ' (modified)')"
bench_log "hardening full-size runs: proxy $PROXY, commit $commit, logs in $out"
exec "$venv/bin/python" "$root/bench/hardening_full.py" \
    --proxy "$PROXY" --out "$out" --commit "$commit" --base-port "${BASE_PORT:-29080}" "$@"
