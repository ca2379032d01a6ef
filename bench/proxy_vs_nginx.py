#!/usr/bin/env python3
"""Helpers for bench/proxy-vs-nginx.sh (Python standard library only).

  proxy_vs_nginx.py wait URL HOST SECONDS      wait for a 200 from URL (Host header HOST)
  proxy_vs_nginx.py check URL HOST BYTES       one GET: exit 1 unless 200 with BYTES bytes
  proxy_vs_nginx.py wrk FILE                   parse wrk --latency output -> tab-separated
  proxy_vs_nginx.py h2load FILE                parse h2load output -> tab-separated
  proxy_vs_nginx.py table RESULTS.tsv          print the medians table with ratios to nginx
  proxy_vs_nginx.py chart RESULTS.tsv OUTDIR   cpu-per-request.png and p99.png (needs gnuplot)

The parsers print: requests, errors, req/s, mean latency us, p50 us, p99 us ("-" when the
tool does not report it).
"""

import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.parse


def _get(url, host, timeout=2.0):
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        import ssl

        ctx = ssl._create_unverified_context()
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    conn.request("GET", u.path or "/", headers={"Host": host})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def wait(url, host, seconds):
    deadline = time.monotonic() + float(seconds)
    last = None
    while time.monotonic() < deadline:
        try:
            status, _ = _get(url, host)
            if status == 200:
                return 0
            last = f"status {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    print(f"wait: {url} (Host {host}) not ready after {seconds}s: {last}", file=sys.stderr)
    return 1


def check(url, host, size):
    try:
        status, body = _get(url, host, timeout=10.0)
    except OSError as e:
        print(f"check: {url}: {e}", file=sys.stderr)
        return 1
    if status != 200 or len(body) != int(size):
        print(f"check: {url} (Host {host}): status {status}, {len(body)} bytes, want 200 and {size}",
              file=sys.stderr)
        return 1
    return 0


_UNITS = {"us": 1.0, "ms": 1000.0, "s": 1e6, "m": 60e6, "h": 3600e6}


def _dur_us(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(path):
    text = open(path).read()
    reqs = int(re.search(r"^\s*(\d+) requests in", text, re.M).group(1))
    rps = float(re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M).group(1))
    mean = _dur_us(re.search(r"^\s*Latency\s+(\S+)", text, re.M).group(1))
    p50 = _dur_us(re.search(r"^\s*50%\s+(\S+)", text, re.M).group(1))
    p99 = _dur_us(re.search(r"^\s*99%\s+(\S+)", text, re.M).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    print(f"{reqs}\t{errors}\t{rps:.1f}\t{mean:.1f}\t{p50:.1f}\t{p99:.1f}")
    return 0


def parse_h2load(path):
    text = open(path).read()
    rps = float(re.search(r"finished in [^,]+, ([0-9.]+) req/s", text).group(1))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    succeeded, failed, errored, timeout = (int(m.group(i)) for i in (4, 5, 6, 7))
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    non2xx = sum(int(codes.group(i)) for i in (2, 3, 4)) if codes else 0
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text)
    mean = _dur_us(m.group(3))
    print(f"{succeeded}\t{failed + errored + timeout + non2xx}\t{rps:.1f}\t{mean:.1f}\t-\t-")
    return 0


def _med(rows, key):
    vals = [float(r[key]) for r in rows if r[key] not in ("-", "")]
    return statistics.median(vals) if vals else None


def _fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


_COLS = ["scenario", "target", "round", "requests", "errors", "rps", "mean_us", "p50_us",
         "p99_us", "cpu_us_per_req", "cpu_pct", "rss_kib"]
_KEYS = ("rps", "p50_us", "p99_us", "mean_us", "cpu_us_per_req", "cpu_pct", "rss_kib")


def _rows(path):
    rows = []
    for line in open(path):
        parts = line.rstrip("\n").split("\t")
        if len(parts) == len(_COLS):
            rows.append(dict(zip(_COLS, parts)))
    return rows


def _ordered(rows, key):
    seen = []
    for r in rows:
        if r[key] not in seen:
            seen.append(r[key])
    return seen


def _medians(rows):
    """{scenario: {target: {key: median, "n": rounds, "errors": total}}}"""
    out = {}
    for s in _ordered(rows, "scenario"):
        out[s] = {}
        for t in _ordered(rows, "target"):
            rs = [r for r in rows if r["scenario"] == s and r["target"] == t]
            if not rs:
                continue
            m = {k: _med(rs, k) for k in _KEYS}
            m["n"] = len(rs)
            m["errors"] = sum(int(r["errors"]) for r in rs)
            out[s][t] = m
    return out


def table(path):
    rows = _rows(path)
    scenarios = _ordered(rows, "scenario")
    head = ["scenario", "target", "rounds", "req/s", "p50 µs", "p99 µs", "mean µs",
            "CPU µs/req", "CPU % of core", "RSS MiB", "errors", "req/s ×", "CPU/req ×", "p99 ×"]
    out = []
    medians = _medians(rows)
    for s in scenarios:
        med = medians[s]
        for t, m in med.items():
            ratio = ["", "", ""]
            n = med.get("nginx")
            if t != "nginx" and n:
                def rat(k):
                    a, b = m[k], n[k]
                    return f"{a / b:.2f}" if a is not None and b else "-"
                ratio = [rat("rps"), rat("cpu_us_per_req"), rat("p99_us")]
            rss = m["rss_kib"] / 1024 if m["rss_kib"] is not None else None
            out.append([s, t, str(m["n"]), _fmt(m["rps"]), _fmt(m["p50_us"]), _fmt(m["p99_us"]),
                        _fmt(m["mean_us"]), _fmt(m["cpu_us_per_req"], 2), _fmt(m["cpu_pct"]),
                        _fmt(rss, 1), str(m["errors"])] + ratio)
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in out:
        print("| " + " | ".join(r) + " |")
    second_table(medians, "ingress-proxy-many", "many", "one")
    second_table(medians, "ingress-proxy-other", "other", "this")
    return 0


def second_table(medians, target, a_name, b_name):
    """A second ingress-proxy over the first, per scenario, when both ran:
    ingress-proxy-many (thousands of Ingresses loaded; scenario 4) or
    ingress-proxy-other (another build)."""
    rows = []
    for s, med in medians.items():
        a, b = med.get(target), med.get("ingress-proxy")
        if not a or not b:
            continue
        def rat(k):
            x, y = a[k], b[k]
            return f"{x / y:.3f}" if x is not None and y else "-"
        rows.append([s, rat("cpu_us_per_req"), rat("rps"), rat("p99_us")])
    if not rows:
        return
    print()
    print(f"| scenario | CPU/req {a_name} ÷ {b_name} | req/s {a_name} ÷ {b_name} | p99 {a_name} ÷ {b_name} |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def chart(path, outdir):
    """Clustered bar charts (one group per scenario, one bar per target) of the medians."""
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        print("chart: gnuplot not found (apt-get install gnuplot-nox)", file=sys.stderr)
        return 1
    rows = _rows(path)
    medians = _medians(rows)
    targets = _ordered(rows, "target")
    charts = [("cpu_us_per_req", "cpu-per-request", "CPU µs per request, log scale (lower is better)"),
              ("p99_us", "p99", "p99 latency, µs, log scale (lower is better; h2load gives none)")]
    terminal = "pngcairo" if "pngcairo" in subprocess.run(
        [gnuplot, "-e", "set terminal"], capture_output=True, text=True).stderr else "png"
    for key, name, label in charts:
        dat = os.path.join(outdir, name + ".dat")
        with open(dat, "w") as f:
            f.write("scenario " + " ".join(f'"{t}"' for t in targets) + "\n")
            for s, med in medians.items():
                vals = []
                for t in targets:
                    v = med.get(t, {}).get(key)
                    vals.append("?" if v is None else f"{v:.2f}")
                f.write(f'"{s}" ' + " ".join(vals) + "\n")
        plots = ", ".join(
            (f"'{dat}' using {i + 2}:xtic(1) title columnheader({i + 2})" if i == 0
             else f"'' using {i + 2} title columnheader({i + 2})")
            for i in range(len(targets)))
        script = f"""
set terminal {terminal} size 960,540
set output '{os.path.join(outdir, name + ".png")}'
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key top left
set grid ytics
set logscale y
set ylabel '{label}'
set xtics rotate by -15
plot {plots}
"""
        r = subprocess.run([gnuplot], input=script, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"chart: gnuplot failed for {name}: {r.stderr}", file=sys.stderr)
            return 1
        print(os.path.join(outdir, name + ".png"))
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "wait":
        return wait(*args)
    if cmd == "check":
        return check(*args)
    if cmd == "wrk":
        return parse_wrk(*args)
    if cmd == "h2load":
        return parse_h2load(*args)
    if cmd == "table":
        return table(*args)
    if cmd == "chart":
        return chart(*args)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
