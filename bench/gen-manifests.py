#!/usr/bin/env python3
"""Write a synthetic manifest set: N Ingresses (one host, 5 paths each), their Services
and EndpointSlices, W wildcard hosts, and the IngressClass. Deterministic.

usage: bench/gen-manifests.py [N=10000] [W=1000] > /tmp/10k.yaml
"""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
w = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
out = sys.stdout.write
out("""apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: bench}
spec: {controller: ingress-rs.dev/gateway}
""")
types = ["Prefix", "Exact", "Prefix", "ImplementationSpecific", "Prefix"]
for i in range(n):
    host = f"*.w{i}.example.com" if i < w else f"app{i}.example.com"
    out(f"""---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app{i}
  namespace: ns{i % 100}
  creationTimestamp: "2025-01-01T00:00:00Z"
spec:
  ingressClassName: bench
  rules:
  - host: "{host}"
    http:
      paths:
""")
    for j, t in enumerate(types):
        out(f"""      - path: /api/v{j}/items
        pathType: {t}
        backend:
          service:
            name: svc{i}
            port:
              number: 80
""")
    out(f"""---
apiVersion: v1
kind: Service
metadata: {{name: svc{i}, namespace: ns{i % 100}}}
spec:
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc{i}-x
  namespace: ns{i % 100}
  labels: {{kubernetes.io/service-name: svc{i}}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints:
- addresses: ["10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"]
  conditions: {{ready: true}}
""")
