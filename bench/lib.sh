# Shared pieces of the bench scripts; `source "$root/bench/lib.sh"`.

# bench_manifest HOST UPSTREAM_PORT [with-class]: the manifests of the one benchmarked
# route: HOST / (Prefix) -> Service bench/upstream:80 -> one ready endpoint
# 127.0.0.1:UPSTREAM_PORT, access log off. With `with-class`, also the default
# IngressClass `bench` (leave it out when bench/gen-manifests.py writes one).
bench_manifest() {
    local host=$1 port=$2
    if [[ ${3:-} == with-class ]]; then
        cat <<EOF
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: bench
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: ingress-rs.dev/gateway}
---
EOF
    fi
    cat <<EOF
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench
  namespace: bench
  annotations: {nginx.ingress.kubernetes.io/enable-access-log: "false"}
spec:
  ingressClassName: bench
  rules:
    - host: $host
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: upstream, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: upstream, namespace: bench}
spec: {ports: [{port: 80, targetPort: $port}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: upstream-1, namespace: bench, labels: {kubernetes.io/service-name: upstream}}
addressType: IPv4
ports: [{port: $port}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
EOF
}

# The nginx configs of the side-by-side runs (bench/proxy-vs-nginx.sh, bench/proxy-perf.sh),
# under `$work`: bench_nginx_main NAME (the main context of a one-worker nginx),
# bench_nginx_temps NAME (its temp paths, in `http {}`), bench_bodies (the upstream's files
# $work/www/small, 10k, 1m: 64 B, 10 KiB, 1 MiB), bench_nginx_upstream PORT (the whole
# config of the upstream serving them on 127.0.0.1:PORT) and bench_nginx_pool PORT (a
# proxy's `upstream bench_upstream {}` keepalive pool to it).
bench_nginx_main() {
    cat <<EOF
worker_processes 1;
daemon off;
pid $work/$1.pid;
error_log $work/$1.error.log warn;
events { worker_connections 4096; }
EOF
}
bench_nginx_temps() {
    local k
    for k in client_body proxy fastcgi uwsgi scgi; do echo "    ${k}_temp_path $work/tmp/$1-$k;"; done
}
bench_bodies() {
    mkdir -p "$work/www" "$work/tmp"
    head -c 64 /dev/zero | tr '\0' 'a' >"$work/www/small"
    head -c 10240 /dev/zero | tr '\0' 'b' >"$work/www/10k"
    head -c 1048576 /dev/zero | tr '\0' 'c' >"$work/www/1m"
    chmod -R a+rX "$work"
}
bench_nginx_upstream() {
    bench_nginx_main upstream
    cat <<EOF
http {
    access_log off;
$(bench_nginx_temps upstream)
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=16;
    open_file_cache_valid 600s;
    keepalive_requests 10000000;
    keepalive_timeout 600s;
    server {
        listen 127.0.0.1:$1;
        root $work/www;
    }
}
EOF
}
bench_nginx_pool() {
    cat <<EOF
    upstream bench_upstream {
        server 127.0.0.1:$1;
        keepalive 128;
        keepalive_requests 10000000;
        keepalive_timeout 600s;
    }
EOF
}

# bench_nginx_forwarding: the directives of nginx's `location /` in the side-by-side runs:
# proxy_pass to the keepalive `upstream bench_upstream {}`, HTTP/1.1, and the forwarded
# fields ingress-proxy sets (ingress-nginx's set), with ingress-nginx's buffering defaults
# (NGINX_PROXY_BUFFERING, default off; NGINX_PROXY_BUFFER_SIZE, default 4k).
bench_nginx_forwarding() {
    cat <<EOF
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header X-Forwarded-Port \$server_port;
            proxy_set_header X-Request-ID \$request_id;
            proxy_buffering ${NGINX_PROXY_BUFFERING:-off};
            proxy_buffer_size ${NGINX_PROXY_BUFFER_SIZE:-4k};
            proxy_buffers 4 ${NGINX_PROXY_BUFFER_SIZE:-4k};
EOF
}

# bench_log MESSAGE...: one timestamped line on stderr; bench_die: that, then exit 1.
bench_log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
bench_die() { bench_log "error: $*"; exit 1; }

# bench_install PACKAGE...: install the Debian packages named (skipping nothing: pass only
# the missing ones), as root, unless NO_INSTALL is set. No arguments: nothing to do.
bench_install() {
    [[ $# -gt 0 ]] || return 0
    [[ -z "${NO_INSTALL:-}" ]] || bench_die "missing: $* (NO_INSTALL is set)"
    [[ $(id -u) -eq 0 ]] || bench_die "missing: $*; run as root to install them from apt"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# Config-apply benches (bench/config-apply.sh, bench/kube-apply.sh) --------------------
# They share: nginx as the upstream on core 1, wrk on core 1 against bench.local through
# the proxy on core 0, bench/config_apply.py to change probe.local and time it, and
# one results.tsv line per size. The caller sets `pids` (an array; every pid in it is
# stopped on exit) and `work` (a temporary folder, removed on exit).

# apply_tools: install what the config-apply benches run, when missing.
apply_tools() {
    local need=()
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
    command -v wrk >/dev/null || need+=(wrk)
    command -v taskset >/dev/null || need+=(util-linux)
    command -v python3 >/dev/null || need+=(python3)
    command -v bc >/dev/null || need+=(bc)
    if [[ -z "${NO_CHARTS:-}" ]]; then command -v gnuplot >/dev/null || need+=(gnuplot-nox); fi
    bench_install "${need[@]}"
    [[ $(nproc) -ge 2 ]] || bench_die "needs 2 cores"
}

# apply_cleanup: stop every pid in `pids`, remove `work` (install with `trap apply_cleanup EXIT`).
apply_cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$work"
}

# apply_ports BASE: the ports of the config-apply benches (upstream, proxy HTTP,
# HTTPS, admin) from BASE.
apply_ports() {
    up_port=$1
    px_http=$(($1 + 1))
    px_https=$(($1 + 2))
    px_admin=$(($1 + 3))
}

# apply_run NAME: the run's log folder (out, under target/bench-logs/NAME-STAMP), its
# scratch folder (work) and the list of started processes (pids), stopped and removed
# on exit (apply_cleanup).
apply_run() {
    local root
    root="$(git rev-parse --show-toplevel)"
    out="$root/target/bench-logs/$1-$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$out"
    work="$(mktemp -d "/tmp/$1.XXXXXX")"
    chmod 755 "$work"
    pids=()
    trap apply_cleanup EXIT
    trap 'exit 130' INT TERM
}

# apply_machine OUT SIZES CHANGES: the run's machine.txt (also on stderr).
apply_machine() {
    local root
    root="$(git rev-parse --show-toplevel)"
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), nproc $(nproc)"
        echo "ingress-proxy: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- ingress-proxy ingress-core ingress-kube || echo ' (modified)')"
        echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "sizes: $2; changes $3; wrk conns ${CONNS:-64}"
    } | tee "$1/machine.txt" >&2
}

# apply_upstream PORT OUT: nginx answering `return 200` on 127.0.0.1:PORT, one worker on
# core 1, in the background (added to `pids`); waits until it answers.
apply_upstream() {
    local port=$1 out=$2 nginx
    nginx="$(command -v nginx || echo /usr/sbin/nginx)"
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
        listen 127.0.0.1:$port;
        location / { return 200 "ok\n"; }
    }
}
NGX
    taskset -c 1 "$nginx" -p "$work" -c "$work/upstream.conf" >"$out/upstream.log" 2>&1 &
    pids+=($!)
    python3 "$(dirname "${BASH_SOURCE[0]}")/proxy_vs_nginx.py" wait "http://127.0.0.1:$port/" localhost 10 ||
        bench_die "upstream did not start"
}

# apply_header RESULTS: the header line of results.tsv.
apply_header() {
    printf 'ingresses\tready_s\trss_ready_mib\tchanges\tp50_ms\tp99_ms\tmax_ms\tmean_ms\twrk_requests\twrk_failed\trss_after_mib\tpeak_mib\tload\n' >"$1"
}

# apply_measure N PROXY_PID STARTED HTTP_PORT OUT RESULTS MODE TARGET: once the proxy
# (started at STARTED, `date +%s.%N`) serves bench.local and probe.local's /v0: RSS, then
# wrk -c${CONNS:-64} against bench.local while config_apply.py MODE TARGET (`run DIR` or
# `run-kube API_URL`) makes ${CHANGES:-100} changes; appends one line to RESULTS.
apply_measure() {
    local n=$1 px=$2 t0=$3 port=$4 out=$5 results=$6 mode=$7 target=$8
    local here py wait ready rss_ready rss_after peak wrk_pid line reqs non2xx sock failed load
    here="$(dirname "${BASH_SOURCE[0]}")"
    py="$here/config_apply.py"
    wait="$here/proxy_vs_nginx.py"
    python3 "$wait" wait "http://127.0.0.1:$port/" bench.local 600 ||
        bench_die "ingress-proxy not serving: $(tail -n 5 "$out/ingress-proxy-$n.log")"
    ready=$(echo "$(date +%s.%N) - $t0" | bc)
    python3 "$wait" wait "http://127.0.0.1:$port/v0" probe.local 10 || bench_die "probe.local /v0 not served"
    read -r rss_ready _ < <(python3 "$py" rss "$px")
    bench_log "$n Ingresses: ready after ${ready}s, RSS ${rss_ready} MiB; wrk -c${CONNS:-64} and ${CHANGES:-100} changes"
    taskset -c 1 wrk -t1 -c"${CONNS:-64}" -d600s -H "Host: bench.local" "http://127.0.0.1:$port/" \
        >"$out/wrk-$n.txt" 2>&1 &
    wrk_pid=$!
    sleep 2
    line="$(taskset -c 1 python3 "$py" "$mode" "$target" "$port" "${CHANGES:-100}")" ||
        bench_die "changes failed (see $out)"
    kill -INT "$wrk_pid"
    wait "$wrk_pid" || true
    read -r rss_after peak < <(python3 "$py" rss "$px")
    reqs="$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out/wrk-$n.txt")"
    non2xx="$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$out/wrk-$n.txt")"
    sock="$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1+\2+\3+\4/p' "$out/wrk-$n.txt")"
    failed=$(( ${non2xx:-0} + ${sock:-0} ))
    load="$(cut -d' ' -f1 /proc/loadavg)"
    printf '%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$ready" "$rss_ready" "$line" "${reqs:-0}" "$failed" "$rss_after	$peak" "$load" >>"$results"
}
