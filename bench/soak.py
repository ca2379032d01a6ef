#!/usr/bin/env python3
"""The soak: the release proxy in file mode under mixed load, churn and faults.

Started by bench/soak.sh (which installs the tools and builds the binary). Loopback
only; every process started here is stopped by its pid at the end, on error and on
SIGINT/SIGTERM. Standard library only.

What runs (ports from --base-port B):
  proxy      ingress-proxy --manifests DIR, HTTP on B, HTTPS on B+1, admin on B+2
  upstreams  nginx processes (one per endpoint, 1 worker, 200 "ok") on B+10.., the
             endpoints of Service soak/app; a resetting upstream (reads the request,
             then RST) and a hanging one (reads, never answers), in this process
  config     the soak's Ingresses: app.soak and tls.soak (TLS, Secret soak/tls) to
             soak/app, reset.soak and hang.soak (proxy-read-timeout 1 s) to the fault
             upstreams; churn.yaml (20 Ingresses rewritten by the churn); and
             --ingresses background Ingresses from bench/gen-manifests.py (20,000 by
             default: the hardening checklist's large configuration, T48)
Load, for the whole run:
  wrk        HTTP/1.1 keep-alive, GET app.soak, 16 connections, 20 ms between requests
  h2load     in 60 s rounds, each with --rps: h2c GET app.soak (4 clients x 4 streams,
             25 rps each), h2 over TLS GET tls.soak (4 x 4, 25 rps), HTTP/1.1 over TLS
             GET tls.soak (4 clients, 25 rps); every round opens new connections
  probes     every 0.5 s a POST to app.soak on a keep-alive connection; every 2 s a GET
             to reset.soak (expects 502) and to hang.soak (expects 504 within 5 s)
Churn, one step every --churn seconds, in turn. Every manifest write carries a marker
Ingress whose host changes with each write; the write counts as applied when the
marker host serves (the time from write to applied is reported per file):
  rolling    a new nginx endpoint is started and listed ready, the oldest listed not
             ready and terminating; once that is applied and 2 s more (a preStop
             delay), the old one is stopped gracefully (nginx -s quit: in-flight
             requests finish) and then removed from the slice
  ingresses  app.soak's proxy-read-timeout annotation edited, churn.yaml rewritten
             (adds, removes and edits of 20 Ingresses); a new host must serve once
             applied
  rotation   the Secret soak/tls replaced by the next of 3 certificates; a new
             handshake must present it (checked every 50 ms)
Each step must be applied within 180 s.

Failed idempotent requests (must be 0): every GET of wrk and h2load to app.soak and
tls.soak, whose Service always has at least one ready, running endpoint, that got no
response, a transport error, a timeout (wrk: 5 s) or a status >= 400. Not counted:
requests in flight when a load round ends (h2load's "started" minus "done"), POSTs
(reported apart: a POST that was in flight on an endpoint being stopped may fail,
and is never retried), and the fault routes (reported apart: any answer other than
502 / 504 in time is an "unexpected" there).

Memory: VmRSS and CPU (utime + stime) of the proxy from /proc every 5 s. Flat means
the median RSS of the last window is within 10 % of the median of the first window,
a window being 5 minutes (runs of 15 minutes or more) or a fifth of the run, and the
first window starting after a 60 s warm-up.
"""
import argparse
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (EVENTS, STOP, Nginx, get_status, loadavg, log, proc_cpu_s,  # noqa: E402
                      proc_rss_kib, start, stop_all, write)


def indent(text, n):
    return "".join(" " * n + line + "\n" for line in text.strip().splitlines())


# --- config ------------------------------------------------------------------------------

CLASS = """apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: soak}
spec: {controller: ingress-rs.dev/gateway}
"""


def app_yaml(read_timeout):
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
  namespace: soak
  annotations:
    nginx.ingress.kubernetes.io/proxy-read-timeout: "{read_timeout}"
spec:
  ingressClassName: soak
  tls:
  - {{hosts: [tls.soak], secretName: tls}}
  rules:
  - host: app.soak
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}
  - host: tls.soak
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}
"""


def service(name, endpoints):
    """endpoints: [(port, ready)]; one slice per endpoint (slice ports are per slice)."""
    out = f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: soak}}
spec: {{ports: [{{name: http, port: 80, targetPort: 8080}}]}}
"""
    for port, ready in endpoints:
        cond = "{ready: true, serving: true, terminating: false}" if ready else \
            "{ready: false, serving: true, terminating: true}"
        out += f"""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-{port}, namespace: soak, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: ["127.0.0.1"], conditions: {cond}}}]
"""
    return out


def faults_yaml(reset_port, hang_port):
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: faults
  namespace: soak
  annotations:
    nginx.ingress.kubernetes.io/proxy-read-timeout: "1"
spec:
  ingressClassName: soak
  rules:
  - host: reset.soak
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: reset, port: {{number: 80}}}}}}}}
  - host: hang.soak
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: hang, port: {{number: 80}}}}}}}}
---
{service("reset", [(reset_port, True)])}---
{service("hang", [(hang_port, True)])}"""


def churn_yaml(gen):
    docs = []
    for j in range(20):
        k = (gen * 7 + j) % 50
        docs.append(f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: churn-{k}
  namespace: soak
  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: "{1 + gen % 9}m"
spec:
  ingressClassName: soak
  rules:
  - host: c{k}.churn.soak
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}
""")
    return "---\n".join(docs)


def secret_yaml(cert, key):
    return f"""apiVersion: v1
kind: Secret
metadata: {{name: tls, namespace: soak}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{indent(cert, 4)}  tls.key: |
{indent(key, 4)}"""


def make_cert(out, i):
    crt, key = os.path.join(out, f"cert{i}.pem"), os.path.join(out, f"key{i}.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN=tls.soak {i}", "-addext",
         "subjectAltName=DNS:tls.soak", "-keyout", key, "-out", crt],
        check=True, capture_output=True)
    cert_pem, key_pem = open(crt).read(), open(key).read()
    der = ssl.PEM_cert_to_DER_cert(cert_pem)
    return cert_pem, key_pem, hashlib.sha256(der).hexdigest()


# --- upstreams ---------------------------------------------------------------------------

def fault_server(port, kind):
    """kind 'reset': read the request head, then close with RST. 'hang': read, never
    answer (sockets kept at most 30 s, so descriptors stay bounded)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(128)
    ls.settimeout(0.5)
    held = []

    def run():
        while not STOP.is_set():
            now = time.monotonic()
            for t, s in [h for h in held if now - h[0] > 30]:
                s.close()
                held.remove((t, s))
            try:
                c, _ = ls.accept()
            except socket.timeout:
                continue
            c.settimeout(2)
            try:
                c.recv(65536)
            except OSError:
                pass
            if kind == "reset":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.close()
            else:
                held.append((now, c))
        for _, s in held:
            s.close()
        ls.close()

    threading.Thread(target=run, daemon=True).start()


# --- load --------------------------------------------------------------------------------

WRK_LUA = """wrk.headers["Host"] = "app.soak"
function delay() return 20 end
done = function(summary, latency, requests)
  io.write(string.format('SOAK {"requests":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
"""

RESULTS = {"wrk": None, "h2load": {}, "probes": {}}


def run_wrk(args, out, seconds):
    lua = os.path.join(out, "soak.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)
    p = start("wrk", ["wrk", "-t2", "-c16", f"-d{seconds}s", "--timeout", "5s", "-s", lua,
                      f"http://127.0.0.1:{args.base_port}/"], out)
    p.wait()
    text = open(os.path.join(out, "wrk.log")).read()
    m = re.search(r"^SOAK (\{.*\})$", text, re.M)
    RESULTS["wrk"] = json.loads(m.group(1)) if m else {"error": "no summary", "tail": text[-500:]}


H2_RE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                   r"(\d+) failed, (\d+) errored, (\d+) timeout")
STATUS_RE = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def run_h2load(args, out, name, extra, url, end):
    agg = {"rounds": 0, "done": 0, "succeeded": 0, "failed": 0, "errored": 0, "timeout": 0,
           "4xx": 0, "5xx": 0, "bad_rounds": 0}
    RESULTS["h2load"][name] = agg
    while not STOP.is_set():
        left = end - time.monotonic()
        if left < 5:
            break
        secs = int(min(60, left - 2))
        argv = ["h2load", "-D", str(secs), "--rps", "25", *extra, url]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 60)
        m, s = H2_RE.search(r.stdout), STATUS_RE.search(r.stdout)
        agg["rounds"] += 1
        if not m or not s:
            agg["bad_rounds"] += 1
            log(f"h2load {name}: no summary: {r.stdout[-300:]} {r.stderr[-300:]}")
            continue
        _, _, done, ok, failed, errored, timeout = map(int, m.groups())
        agg["done"] += done
        agg["succeeded"] += ok
        agg["failed"] += failed
        agg["errored"] += errored
        agg["timeout"] += timeout
        agg["4xx"] += int(s.group(3))
        agg["5xx"] += int(s.group(4))
        if failed or errored or timeout:
            log(f"h2load {name}: round with failures: failed {failed} errored {errored} timeout {timeout}")
            with open(os.path.join(out, f"h2load-{name}-failures.log"), "a") as f:
                f.write(r.stdout + r.stderr)


def probes(args, end):
    post = {"sent": 0, "ok": 0, "failed": 0}
    fault = {"reset": {"sent": 0, "expected": 0, "unexpected": 0},
             "hang": {"sent": 0, "expected": 0, "unexpected": 0}}
    RESULTS["probes"] = {"post": post, "faults": fault}
    conn = None
    last_fault = 0.0
    while not STOP.is_set() and time.monotonic() < end:
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", args.base_port, timeout=5)
            post["sent"] += 1
            conn.request("POST", "/p", body=b"x" * 64, headers={"Host": "app.soak"})
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                post["ok"] += 1
            else:
                post["failed"] += 1
                log(f"POST app.soak: {r.status}")
        except (OSError, http.client.HTTPException) as e:
            post["failed"] += 1
            log(f"POST app.soak: {e!r}")
            conn = None
        if time.monotonic() - last_fault >= 2:
            last_fault = time.monotonic()
            for kind, want in (("reset", 502), ("hang", 504)):
                fault[kind]["sent"] += 1
                t0 = time.monotonic()
                try:
                    c = http.client.HTTPConnection("127.0.0.1", args.base_port, timeout=10)
                    c.request("GET", "/", headers={"Host": f"{kind}.soak"})
                    r = c.getresponse()
                    r.read()
                    c.close()
                    took = time.monotonic() - t0
                    if r.status == want and took < 5:
                        fault[kind]["expected"] += 1
                    else:
                        fault[kind]["unexpected"] += 1
                        log(f"{kind}.soak: {r.status} after {took:.1f}s (want {want})")
                except (OSError, http.client.HTTPException) as e:
                    fault[kind]["unexpected"] += 1
                    log(f"{kind}.soak: {e!r}")
        time.sleep(0.5)


def served_cert(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="tls.soak") as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


# --- churn -------------------------------------------------------------------------------

MARK = {"seq": 0}


def marker(name):
    """An Ingress whose host changes with every write of file `name`: when it serves,
    the proxy has applied that write (the file is read whole and atomically)."""
    MARK["seq"] += 1
    return f"""---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: marker-{name}, namespace: soak}}
spec:
  ingressClassName: soak
  rules:
  - host: m{MARK['seq']}.{name}.marker.soak
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}
""", f"m{MARK['seq']}.{name}.marker.soak"


def apply(args, cfg, name, text, stats, end):
    """Write manifest file `name` (with its marker) and wait until the proxy serves
    it; the wait is recorded (ms) under stats["apply_ms"][name]. False when it was
    not applied within 180 s."""
    mark, host = marker(name.split(".")[0])
    t0 = time.monotonic()
    write(cfg["dir"], name, text + mark)
    while get_status(args.base_port, host) != 200:
        if time.monotonic() - t0 > 180 or (STOP.is_set() and time.monotonic() > end + 30):
            stats["late"] += 1
            log(f"churn: {name} not applied 180 s after the write")
            return False
        time.sleep(0.05)
    stats["apply_ms"].setdefault(name, []).append(round((time.monotonic() - t0) * 1000))
    return True


def churn(args, out, cfg, certs, end):
    stats = {"rolling": 0, "ingress_edits": 0, "rotations": 0, "rotations_late": 0,
             "new_host_late": 0, "late": 0, "apply_ms": {}, "rotation_ms": []}
    RESULTS["churn"] = stats
    endpoints = cfg["endpoints"]  # Nginx, all ready
    next_port = cfg["next_port"]
    step, gen, rot = 0, 0, 0
    while not STOP.wait(args.churn) and time.monotonic() < end - args.churn:
        kind = ("rolling", "ingresses", "rotation")[step % 3]
        step += 1
        if kind == "rolling":
            # As a Deployment rollout with a preStop delay: the new pod ready, the old
            # one not ready and terminating; it keeps serving until the gateway has
            # applied that (and 2 s more), then drains (nginx -s quit) and goes.
            new = Nginx(out, next_port)
            next_port += 1
            old = endpoints.pop(0)
            endpoints.append(new)
            apply(args, cfg, "endpoints.yaml",
                  service("app", [(old.port, False)] + [(e.port, True) for e in endpoints]), stats, end)
            time.sleep(2)
            old.quit()
            apply(args, cfg, "endpoints.yaml", service("app", [(e.port, True) for e in endpoints]), stats, end)
            stats["rolling"] += 1
        elif kind == "ingresses":
            gen += 1
            apply(args, cfg, "app.yaml", app_yaml(30 + gen % 30), stats, end)
            if apply(args, cfg, "churn.yaml", churn_yaml(gen), stats, end):
                host = f"c{(gen * 7 + 19) % 50}.churn.soak"
                if get_status(args.base_port, host) != 200:
                    stats["new_host_late"] += 1
                    log(f"churn: {host} not served once churn.yaml was applied")
            stats["ingress_edits"] += 1
        else:
            rot += 1
            cert, key, fp = certs[rot % len(certs)]
            t0 = time.monotonic()
            apply(args, cfg, "tls-secret.yaml", secret_yaml(cert, key), stats, end)
            seen = None
            while time.monotonic() - t0 < 185:
                try:
                    seen = served_cert(args.base_port + 1)
                except OSError:
                    seen = None
                if seen == fp:
                    break
                time.sleep(0.05)
            if seen == fp:
                stats["rotation_ms"].append(round((time.monotonic() - t0) * 1000))
            else:
                stats["rotations_late"] += 1
                log(f"rotation {rot}: new certificate not served")
            stats["rotations"] += 1


# --- sampling ----------------------------------------------------------------------------

SAMPLES = []  # (t since start, rss KiB, cpu seconds, load1)


def sampler(pid, t_start, out):
    with open(os.path.join(out, "samples.tsv"), "w") as f:
        f.write("t_s\trss_kib\tcpu_s\tload1\n")
        while not STOP.is_set():
            rss, cpu = proc_rss_kib(pid), proc_cpu_s(pid)
            if rss is None or cpu is None:
                break
            load1 = float(loadavg()[0])
            t = time.monotonic() - t_start
            SAMPLES.append((t, rss, cpu, load1))
            f.write(f"{t:.0f}\t{rss}\t{cpu:.2f}\t{load1}\n")
            f.flush()
            STOP.wait(5)


# --- main --------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--out", required=True)
    ap.add_argument("--commit", default="?")
    ap.add_argument("--ingresses", type=int, default=20000)
    ap.add_argument("--churn", type=float, default=10)
    ap.add_argument("--base-port", type=int, default=28080)
    ap.add_argument("--gen", required=True)
    args = ap.parse_args()
    out = args.out
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        return run(args, out)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        STOP.set()
        stop_all()


def run(args, out):
    b = args.base_port
    mdir = os.path.join(out, "manifests")
    os.makedirs(mdir, exist_ok=True)
    load0 = loadavg()
    log(f"generating {args.ingresses} background Ingresses and 3 certificates")
    if args.ingresses > 0:
        with open(os.path.join(mdir, "background.yaml"), "w") as f:
            subprocess.run([sys.executable, args.gen, str(args.ingresses), str(args.ingresses // 10)],
                           stdout=f, check=True)
    certs = [make_cert(out, i) for i in range(3)]
    endpoints = [Nginx(out, b + 10), Nginx(out, b + 11)]
    reset_port, hang_port = b + 8, b + 9
    fault_server(reset_port, "reset")
    fault_server(hang_port, "hang")
    write(mdir, "class.yaml", CLASS)
    write(mdir, "app.yaml", app_yaml(30) + marker("app")[0])
    write(mdir, "endpoints.yaml", service("app", [(e.port, True) for e in endpoints]) + marker("endpoints")[0])
    write(mdir, "faults.yaml", faults_yaml(reset_port, hang_port))
    write(mdir, "churn.yaml", churn_yaml(0) + marker("churn")[0])
    write(mdir, "tls-secret.yaml", secret_yaml(certs[0][0], certs[0][1]) + marker("tls-secret")[0])

    t0 = time.monotonic()
    proxy = start("proxy", [args.proxy, "--manifests", mdir, "--listen-http", f"127.0.0.1:{b}",
                            "--listen-https", f"127.0.0.1:{b + 1}", "--listen-admin",
                            f"127.0.0.1:{b + 2}"], out)
    while get_status(b + 2, "admin", "/readyz") != 200 or get_status(b, "app.soak") != 200:
        if proxy.poll() is not None or time.monotonic() - t0 > 120:
            raise RuntimeError("the proxy did not become ready; see proxy.log")
        time.sleep(0.1)
    ready_s = time.monotonic() - t0
    log(f"proxy ready after {ready_s:.1f}s (pid {proxy.pid})")
    t_start = time.monotonic()
    seconds = int(args.minutes * 60)
    end = t_start + seconds
    threading.Thread(target=sampler, args=(proxy.pid, t_start, out), daemon=True).start()
    workers = [
        threading.Thread(target=run_wrk, args=(args, out, seconds)),
        threading.Thread(target=run_h2load, args=(args, out, "h2c", ["-c4", "-m4", "--connect-to", f"127.0.0.1:{b}"], "http://app.soak/", end)),
        threading.Thread(target=run_h2load, args=(args, out, "h2-tls", ["-c4", "-m4", "--connect-to", f"127.0.0.1:{b + 1}"], "https://tls.soak/", end)),
        threading.Thread(target=run_h2load, args=(args, out, "h1-tls", ["-c4", "--h1", "--connect-to", f"127.0.0.1:{b + 1}"], "https://tls.soak/", end)),
        threading.Thread(target=probes, args=(args, end)),
        threading.Thread(target=churn, args=(args, out, {"dir": mdir, "endpoints": endpoints, "next_port": b + 12}, certs, end)),
    ]
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers):
        if proxy.poll() is not None:
            log(f"the proxy exited with {proxy.returncode}")
            STOP.set()
            break
        time.sleep(1)
    for w in workers:
        w.join(timeout=120)
    alive = proxy.poll() is None
    STOP.set()
    return report(args, out, ready_s, seconds, load0, alive)


def report(args, out, ready_s, seconds, load0, alive):
    wrk = RESULTS["wrk"] or {}
    h2 = RESULTS["h2load"]
    wrk_failed = sum(wrk.get(k, 0) for k in ("connect", "read", "write", "status", "timeout"))
    h2_failed = sum(a["failed"] + a["timeout"] + a["bad_rounds"] for a in h2.values())
    total = wrk.get("requests", 0) + sum(a["done"] for a in h2.values())
    failed = wrk_failed + h2_failed + (0 if "requests" in wrk else 1)
    window = 300 if seconds >= 900 else max(60, seconds // 5)
    first = [s for s in SAMPLES if 60 <= s[0] < 60 + window]
    last = [s for s in SAMPLES if s[0] >= SAMPLES[-1][0] - window] if SAMPLES else []
    med = lambda xs: statistics.median([x[1] for x in xs]) / 1024 if xs else float("nan")
    mx = lambda xs: max(x[1] for x in xs) / 1024 if xs else float("nan")
    flat = bool(first and last) and med(last) <= med(first) * 1.10
    cpu = SAMPLES[-1][2] - SAMPLES[0][2] if len(SAMPLES) > 1 else 0.0
    span = SAMPLES[-1][0] - SAMPLES[0][0] if len(SAMPLES) > 1 else 1.0
    loads = [s[3] for s in SAMPLES]
    churn = RESULTS.get("churn", {})
    ok = failed == 0 and flat and alive and churn.get("rotations_late", 1) == 0 \
        and churn.get("new_host_late", 1) == 0 and churn.get("late", 1) == 0
    pm = lambda xs: f"median {statistics.median(xs) / 1000:.1f} s, max {max(xs) / 1000:.1f} s ({len(xs)})" if xs else "none"
    applied = "; ".join(f"{n} {pm(v)}" for n, v in sorted(churn.get("apply_ms", {}).items()))
    lines = [
        f"soak: {args.minutes:g} min, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {args.commit}",
        f"config: {args.ingresses} background Ingresses + the soak's; proxy ready after {ready_s:.1f} s",
        f"requests (idempotent GETs): {total}: wrk h1 {wrk.get('requests', '?')}, "
        + ", ".join(f"h2load {n} {a['done']} in {a['rounds']} rounds" for n, a in h2.items()),
        f"failed idempotent requests: {failed} (wrk: connect {wrk.get('connect')}, read {wrk.get('read')}, "
        f"write {wrk.get('write')}, status>=400 {wrk.get('status')}, timeout {wrk.get('timeout')}; "
        + ", ".join(f"h2load {n}: failed {a['failed']} errored {a['errored']} timeout {a['timeout']} "
                    f"4xx {a['4xx']} 5xx {a['5xx']} unparsed rounds {a['bad_rounds']}" for n, a in h2.items()) + ")",
        f"POST probes: {RESULTS['probes'].get('post')} (not counted: a POST in flight on a stopped endpoint may fail)",
        f"fault probes: {RESULTS['probes'].get('faults')} (expected: 502 for reset.soak, 504 within 5 s for hang.soak)",
        f"churn: {churn.get('rolling')} rolling updates, {churn.get('ingress_edits')} Ingress edits "
        f"(new host not served once applied: {churn.get('new_host_late')}), "
        f"{churn.get('rotations')} certificate rotations (new handshakes got the new certificate after: "
        f"{pm(churn.get('rotation_ms', []))}; late {churn.get('rotations_late')})",
        f"write to applied (the proxy serving the file's marker host): {applied}; not applied in 180 s: {churn.get('late')}",
        f"RSS: first window ({window} s from 60 s) median {med(first):.1f} MiB max {mx(first):.1f} MiB; "
        f"last window median {med(last):.1f} MiB max {mx(last):.1f} MiB; flat (last median within 10 %): {flat}",
        f"CPU: proxy {cpu:.0f} s over {span:.0f} s ({100 * cpu / max(span, 1):.0f} % of one core)",
        f"load average: before {' '.join(load0)}; during: median {statistics.median(loads) if loads else '?'}, "
        f"max {max(loads) if loads else '?'} (2 cores, shared)",
        f"proxy alive at the end: {alive}",
        f"verdict: {'PASS' if ok else 'FAIL'}",
    ]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write(text)
        f.write("\nevents:\n" + "\n".join(EVENTS) + "\n")
    print(text, end="")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
