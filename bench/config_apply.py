#!/usr/bin/env python3
"""Helper of bench/config-apply.sh and bench/kube-apply.sh (Python standard library only).

  config_apply.py run DIR PORT CHANGES          change DIR/probe.json CHANGES times and
                                                time each change until it is served
  config_apply.py run-kube API PORT CHANGES     the same through the Kubernetes API at
                                                API (http://HOST:PORT): PUT the probe Ingress
  config_apply.py probe K                       print probe.json for change K
  config_apply.py rss PID                       print VmRSS and VmHWM in MiB
  config_apply.py chart RESULTS.tsv OUTDIR [PREFIX]
                                                PREFIXtime-to-served.png and PREFIXrss.png
                                                against the number of Ingresses (gnuplot)

`run` writes probe.json atomically (temporary file, then rename, as editors and
Kubernetes volume updates do); `run-kube` replaces the Ingress with one PUT, as
`kubectl replace` does. Either way the Ingress's path becomes /vK, and the helper polls
GET http://127.0.0.1:PORT/vK (Host probe.local) on one keep-alive connection until it
answers 200; the time from just before the rename (or the PUT) to that response is one
sample. It prints: changes, p50 ms, p99 ms, max ms, mean ms, tab-separated.
"""

import http.client
import json
import os

import benchlib
import shutil
import subprocess
import statistics
import sys
import time


def probe_object(k):
    """The probe Ingress of change K (path /vK), in the Kubernetes wire format."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "probe", "namespace": "bench"},
        "spec": {
            "ingressClassName": "bench",
            "rules": [{
                "host": "probe.local",
                "http": {"paths": [{
                    "path": f"/v{k}",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": "upstream", "port": {"number": 80}}},
                }]},
            }],
        },
    }


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


def write_file(folder):
    """A change through the folder: probe.json rewritten atomically."""
    def write(k):
        tmp = os.path.join(folder, ".probe.json.tmp")
        with open(tmp, "w") as f:
            json.dump(probe_object(k), f)
        t0 = time.monotonic()
        os.rename(tmp, os.path.join(folder, "probe.json"))
        return t0
    return write


def write_api(api):
    """A change through the Kubernetes API: PUT the whole Ingress."""
    return benchlib.api_put(api, "/apis/networking.k8s.io/v1/namespaces/bench/ingresses/probe", probe_object)


def run(write, port, changes):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    samples = []
    for k in range(1, changes + 1):
        t0 = write(k)
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


def chart(results, outdir, prefix=""):
    """Line charts over the sizes of one run: write -> served p50/p99, and RSS.
    PREFIX `kube-` labels the change as an API write rather than a file write."""
    kube = prefix.startswith("kube")
    what = "API write (PUT)" if kube else "file write"
    if kube:
        targets = "1000 with lines dashtype 2 title 'target (1 s)'"
    else:
        targets = ("50 with lines dashtype 2 title 'p50 target (50 ms)', "
                   "200 with lines dashtype 3 title 'p99 target (200 ms)'")
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        print("chart: gnuplot not found (apt-get install gnuplot-nox)", file=sys.stderr)
        return 1
    lines = open(results).read().splitlines()
    if len(lines) < 2:
        print(f"chart: no rows in {results}", file=sys.stderr)
        return 1
    head = lines[0].split("\t")
    col = {name: i + 1 for i, name in enumerate(head)}  # gnuplot columns are 1-based
    dat = os.path.join(outdir, "by-size.dat")
    with open(dat, "w") as f:
        for line in lines[1:]:
            f.write(line.replace("\t", " ") + "\n")
    terminal = "pngcairo" if "pngcairo" in subprocess.run(
        [gnuplot, "-e", "set terminal"], capture_output=True, text=True).stderr else "png"
    common = f"""
set terminal {terminal} size 960,540
set datafile missing '-'
set logscale x
set grid
set key top left
set xlabel 'Ingresses loaded'
set xtics (1000, 5000, 20000, 50000)
set xrange [700:70000]
"""
    charts = {
        "time-to-served.png": f"""
set logscale y
set ylabel '{what} -> new route served, ms (log scale)'
plot '{dat}' using {col['ingresses']}:{col['p50_ms']} with linespoints title 'p50', \
     '' using {col['ingresses']}:{col['p99_ms']} with linespoints title 'p99', \
     {targets}
""",
        "rss.png": f"""
set ylabel 'RSS of the proxy, MiB'
plot '{dat}' using {col['ingresses']}:{col['rss_ready_mib']} with linespoints title 'after the first load', \
     '' using {col['ingresses']}:{col['peak_mib']} with linespoints title 'peak (VmHWM) after the changes', \
     300 with lines dashtype 2 title 'peak target at 20,000 (300 MiB)'
""",
    }
    for name, body in charts.items():
        name = prefix + name
        script = common + f"set output '{os.path.join(outdir, name)}'\n" + body
        r = subprocess.run([gnuplot], input=script, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"chart: gnuplot failed for {name}: {r.stderr}", file=sys.stderr)
            return 1
        print(os.path.join(outdir, name))
    return 0


def main():
    cmd = sys.argv[1]
    if cmd in ("run", "run-kube"):
        target, port, changes = sys.argv[2:5]
        write = write_file(target) if cmd == "run" else write_api(target)
        return run(write, int(port), int(changes))
    if cmd == "probe":
        print(json.dumps(probe_object(int(sys.argv[2])), indent=2))
        return 0
    if cmd == "chart":
        return chart(*sys.argv[2:5])
    if cmd == "rss":
        r, h = rss(int(sys.argv[2]))
        print(f"{r:.1f}\t{h:.1f}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
