#!/usr/bin/env python3
"""Helper of bench/config-apply.sh (Python standard library only).

  config_apply.py run DIR PORT CHANGES          change DIR/probe.yaml CHANGES times and
                                                time each change until it is served
  config_apply.py probe K         print probe.yaml for change K
  config_apply.py rss PID                       print VmRSS and VmHWM in MiB

`run` writes probe.yaml atomically (temporary file, then rename, as editors and
Kubernetes volume updates do), with the Ingress's path changed to /vK, and polls
GET http://127.0.0.1:PORT/vK (Host probe.local) on one keep-alive connection until it
answers 200; the time from just before the rename to that response is one sample.
It prints: changes, p50 ms, p99 ms, max ms, mean ms, tab-separated.
"""

import http.client
import os
import statistics
import sys
import time


def probe_yaml(k):
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: probe
  namespace: bench
spec:
  ingressClassName: bench
  rules:
    - host: probe.local
      http:
        paths:
          - path: /v{k}
            pathType: Prefix
            backend:
              service:
                name: upstream
                port:
                  number: 80
"""


def rss(pid):
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                vals[k] = int(v.split()[0]) / 1024
    return vals["VmRSS"], vals["VmHWM"]


def status(conn, path):
    conn.request("GET", path, headers={"Host": "probe.local"})
    r = conn.getresponse()
    r.read()
    return r.status


def run(folder, port, changes):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    samples = []
    for k in range(1, changes + 1):
        text = probe_yaml(k)
        tmp = os.path.join(folder, ".probe.yaml.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        t0 = time.monotonic()
        os.rename(tmp, os.path.join(folder, "probe.yaml"))
        deadline = t0 + 30
        while True:
            try:
                if status(conn, f"/v{k}") == 200:
                    break
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            if time.monotonic() > deadline:
                print(f"change {k} not served after 30 s", file=sys.stderr)
                return 1
            time.sleep(0.0005)
        samples.append((time.monotonic() - t0) * 1e3)
        # Let the watcher settle so that changes do not merge into one debounce.
        time.sleep(0.05)
    samples.sort()
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    print(
        f"{len(samples)}\t{p(0.5):.1f}\t{p(0.99):.1f}\t{samples[-1]:.1f}\t{statistics.mean(samples):.1f}"
    )
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "run":
        d, port, changes = sys.argv[2:5]
        return run(d, int(port), int(changes))
    if cmd == "probe":
        print(probe_yaml(int(sys.argv[2])), end="")
        return 0
    if cmd == "rss":
        r, h = rss(int(sys.argv[2]))
        print(f"{r:.1f}\t{h:.1f}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
