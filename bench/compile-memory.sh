#!/usr/bin/env bash
# Peak RSS of compiling the synthetic 10k-Ingress snapshot (docs/PERFORMANCE.md).
#
# Builds the `compile` bench binary of ingress-core (release profile, as `cargo
# bench` does) and runs it in its one-shot `--memory MODE` form under GNU time
# (`/usr/bin/time -v`), one process per figure, so each "Maximum resident set size"
# is that of exactly one thing:
#   baseline  the binary doing nothing;
#   snapshot  building the 10k snapshot (10,000 Ingresses, Services, EndpointSlices);
#   compile   building the snapshot, then compile() once (standard / ingress-nginx).
# The compile's own cost is `compile - snapshot`. Each mode runs REPEAT times (default
# 3) and the largest peak is kept.
#
# Needs /usr/bin/time (Debian package `time`): when it is missing, this script
# installs it with apt-get (root required) and says so.
#
# Usage: bench/compile-memory.sh            (from anywhere in the repository)
#        REPEAT=5 bench/compile-memory.sh
set -euo pipefail

cd "$(dirname "$0")/.."
REPEAT="${REPEAT:-3}"
LIMIT_MIB=200

if [[ ! -x /usr/bin/time ]]; then
    echo "compile-memory: /usr/bin/time is missing; installing the Debian package 'time' with apt-get" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >&2
fi

echo "compile-memory: building the compile bench binary (cargo bench --no-run)" >&2
build_json="$(mktemp)"
trap 'rm -f "$build_json"' EXIT
if ! cargo bench -p ingress-core --bench compile --no-run --message-format=json >"$build_json"; then
    echo "compile-memory: building the compile bench failed (see cargo's messages above)" >&2
    exit 1
fi
exe="$(grep -o '"executable":"[^"]*"' "$build_json" | tail -n 1 | cut -d'"' -f4)"
if [[ -z "$exe" || ! -x "$exe" ]]; then
    echo "compile-memory: could not find the compile bench executable" >&2
    exit 1
fi

# peak_kib MODE [PROFILE]: the largest "Maximum resident set size" over REPEAT runs.
peak_kib() {
    local best=0 kib log
    log="$(mktemp)"
    for _ in $(seq "$REPEAT"); do
        /usr/bin/time -v "$exe" --memory "$@" >/dev/null 2>"$log"
        kib="$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$log")"
        grep '^\[memory\]' "$log" | sed "s/^/    /" >&2
        ((kib > best)) && best="$kib"
    done
    rm -f "$log"
    echo "$best"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

echo "compile-memory: $exe, $REPEAT run(s) per figure" >&2
base="$(peak_kib baseline)"
snap="$(peak_kib snapshot)"
std="$(peak_kib compile standard)"
ngx="$(peak_kib compile ingress-nginx)"

printf '\n%-34s %12s %10s\n' "what (peak RSS, /usr/bin/time -v)" "KiB" "MiB"
printf '%-34s %12s %10s\n' "baseline (binary only)" "$base" "$(mib "$base")"
printf '%-34s %12s %10s\n' "snapshot built" "$snap" "$(mib "$snap")"
printf '%-34s %12s %10s\n' "snapshot + compile (standard)" "$std" "$(mib "$std")"
printf '%-34s %12s %10s\n' "snapshot + compile (ingress-nginx)" "$ngx" "$(mib "$ngx")"
printf '%-34s %12s %10s\n' "compile alone (standard)" "$((std - snap))" "$(mib $((std - snap)))"
printf '%-34s %12s %10s\n' "compile alone (ingress-nginx)" "$((ngx - snap))" "$(mib $((ngx - snap)))"

worst=$((std > ngx ? std : ngx))
if ((worst < LIMIT_MIB * 1024)); then
    echo "target: peak RSS of snapshot + compile under $LIMIT_MIB MiB: met ($(mib "$worst") MiB)"
else
    echo "target: peak RSS of snapshot + compile under $LIMIT_MIB MiB: NOT met ($(mib "$worst") MiB)"
fi
