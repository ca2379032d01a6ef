#!/usr/bin/env bash
# The soak (hardening issue, "How it runs"): the release proxy in file mode on
# loopback for MINUTES (default 30) under mixed load, with control-plane churn and
# upstream faults on a schedule. Loopback only; stops everything it starts.
#
# Usage: bench/soak.sh [MINUTES]
# Environment: SOAK_INGRESSES (background Ingresses loaded next to the soak's own,
#   default 20000; 0 for none), CHURN_S (seconds between churn steps, default 10),
#   BASE_PORT (default 28080; uses BASE_PORT..BASE_PORT+2 for the proxy, BASE_PORT+10..
#   for upstreams), NO_INSTALL=1, NO_BUILD=1, SOAK_PROXY (a binary to run instead of
#   the one built here; implies NO_BUILD).
#
# What runs, what counts as a failure, and how memory is judged: see bench/soak.py
# (its docstring) and docs/SECURITY.md ("The soak"). Exit status 0 only when no
# idempotent request failed, every certificate rotation was observed and RSS is flat.
# Logs, samples and the report: target/bench-logs/soak-STAMP/.
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"
MINUTES="${1:-30}"
[[ "$MINUTES" =~ ^[0-9]+$ && "$MINUTES" -ge 1 ]] || { echo "usage: bench/soak.sh [MINUTES]" >&2; exit 2; }

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

need=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
if [[ ${#need[@]} -gt 0 ]]; then
    [[ -z "${NO_INSTALL:-}" ]] || die "missing: ${need[*]} (NO_INSTALL is set)"
    [[ $(id -u) -eq 0 ]] || die "missing: ${need[*]}; run as root to install them from apt"
    log "installing from apt: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

target="${CARGO_TARGET_DIR:-$root/target}"
if [[ -z "${NO_BUILD:-}" && -z "${SOAK_PROXY:-}" ]]; then
    log "cargo build --release -p ingress-proxy"
    cargo build --release -q -p ingress-proxy --bin ingress-proxy
fi
PROXY="${SOAK_PROXY:-$target/release/ingress-proxy}"
[[ -x "$PROXY" ]] || die "$PROXY not built"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$root/target/bench-logs/soak-$stamp"
mkdir -p "$out"
commit="$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- ingress-proxy ingress-core ingress-files || echo ' (modified)')"
log "soak: $MINUTES min, commit $commit, logs in $out"
exec python3 "$root/bench/soak.py" \
    --proxy "$PROXY" --minutes "$MINUTES" --out "$out" --commit "$commit" \
    --ingresses "${SOAK_INGRESSES:-20000}" --churn "${CHURN_S:-10}" \
    --base-port "${BASE_PORT:-28080}" --gen "$root/bench/gen-manifests.py"
