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
