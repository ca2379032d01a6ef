#!/usr/bin/env python3
"""Write a synthetic manifest set: N Ingresses (one host, 5 paths each), their Services
and EndpointSlices, W wildcard hosts, and the IngressClass. Deterministic.

usage: bench/gen-manifests.py [N=10000] [W=1000] > /tmp/10k.yaml
       bench/gen-manifests.py N W --out DIR [--files K] [--no-class]
  --out DIR   write DIR/apps-NNNN.yaml, K files of about N/K Ingresses each (with their
              Services and EndpointSlices; default K=100) and DIR/class.yaml, instead
              of one stream on stdout (a folder the proxy re-reads file by file)
  --no-class  leave out the IngressClass (the folder has its own)
"""
import os
import sys

args = [a for a in sys.argv[1:]]
opts = {}
pos = []
while args:
    a = args.pop(0)
    if a in ("--out", "--files"):
        opts[a] = args.pop(0)
    elif a == "--no-class":
        opts[a] = True
    else:
        pos.append(a)
n = int(pos[0]) if len(pos) > 0 else 10000
w = int(pos[1]) if len(pos) > 1 else 1000
outdir = opts.get("--out")
files = int(opts.get("--files", 100)) if outdir else 1
per_file = max(1, -(-n // files))
current = {"f": None, "index": -1}


def out(text):
    if outdir is None:
        sys.stdout.write(text)
    else:
        current["f"].write(text)


def open_for(i):
    """Switch to the file that holds Ingress i (folder mode)."""
    if outdir is None:
        return
    k = i // per_file
    if k != current["index"]:
        if current["f"] is not None:
            current["f"].close()
        current["f"] = open(os.path.join(outdir, f"apps-{k:04d}.yaml"), "w")
        current["index"] = k


class_doc = """apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: bench}
spec: {controller: ingress-rs.dev/gateway}
"""
if outdir is not None:
    os.makedirs(outdir, exist_ok=True)
    if "--no-class" not in opts:
        with open(os.path.join(outdir, "class.yaml"), "w") as f:
            f.write(class_doc)
elif "--no-class" not in opts:
    out(class_doc)
types = ["Prefix", "Exact", "Prefix", "ImplementationSpecific", "Prefix"]
for i in range(n):
    open_for(i)
    sep = "" if outdir is not None and i % per_file == 0 else "---\n"
    host = f"*.w{i}.example.com" if i < w else f"app{i}.example.com"
    out(sep + f"""apiVersion: networking.k8s.io/v1
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
if current["f"] is not None:
    current["f"].close()
