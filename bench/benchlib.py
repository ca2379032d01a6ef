"""Helpers shared by the out-of-process bench scripts (bench/soak.py,
bench/hardening_full.py, bench/config_apply.py, bench/fast_apply.py): processes
started and stopped by pid, nginx upstreams, plain HTTP probes, writes through the
fake Kubernetes API server, and the proxy's VmRSS and CPU time read from /proc.
Standard library only."""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

STOP = threading.Event()
PROCS = []  # (name, Popen) of everything started, stopped by pid at the end
LOCK = threading.Lock()
EVENTS = []  # log lines, for the report


def log(msg):
    line = f"[{time.strftime('%H:%M:%S', time.gmtime())}] {msg}"
    print(line, file=sys.stderr, flush=True)
    with LOCK:
        EVENTS.append(line)


def start(name, argv, out, **kw):
    """Start argv in the background, its output in OUT/NAME.log; stopped by stop_all."""
    f = open(os.path.join(out, f"{name}.log"), "ab")
    p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, **kw)
    with LOCK:
        PROCS.append((name, p))
    return p


def stop(p, grace=5):
    """Stop one process started by `start` (SIGTERM, then SIGKILL after GRACE s)."""
    if p.poll() is None:
        try:
            p.terminate()
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        except OSError:
            pass


def stop_all():
    """Stop every process started by `start`, by its pid."""
    with LOCK:
        procs = list(PROCS)
    for _, p in procs:
        if p.poll() is None:
            try:
                p.terminate()
            except OSError:
                pass
    end = time.monotonic() + 5
    for _, p in procs:
        try:
            p.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def write(dirpath, name, text):
    """Write a file atomically (a temporary file renamed over it)."""
    tmp = os.path.join(dirpath, f".{name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(dirpath, name))


def nginx_bin():
    for c in ("/usr/sbin/nginx", "/usr/bin/nginx"):
        if os.path.exists(c):
            return c
    return "nginx"


class Nginx:
    """An nginx upstream on 127.0.0.1:PORT, one worker, answering 200 "ok PORT" at
    every path unless LOCATIONS (nginx `location` blocks) say otherwise; ROOT is
    its document root; KEEPALIVE its keepalive_timeout."""

    def __init__(self, out, port, locations="", root=None, keepalive="75s"):
        self.port = port
        d = os.path.join(out, f"nginx-{port}")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 8192;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  keepalive_requests 10000;
  keepalive_timeout {keepalive};
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    {f"root {root};" if root else ""}
    {locations}
    location / {{ return 200 "ok {port}\\n"; }}
  }}
}}
""")
        self.proc = start(f"nginx-{port}", [nginx_bin(), "-c", conf, "-p", d], out)
        wait_port(port)

    def quit(self):
        """Graceful stop: in-flight requests finish, idle keep-alive connections close."""
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_port(port, seconds=10):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def get_status(port, host, path="/", timeout=5):
    """The status of one GET on a new connection, None on any failure."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except (OSError, http.client.HTTPException):
        return None


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_rss_kib(pid):
    """VmRSS of PID in KiB, read from /proc (None once it is gone)."""
    try:
        return int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{pid}/status").read()).group(1))
    except (OSError, AttributeError):
        return None


def proc_cpu_s(pid):
    """utime + stime of PID in seconds, read from /proc (None once it is gone)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError):
        return None


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


def api_put(api, path, make):
    """A writer of one object through the Kubernetes API at `api` (the fake API
    server's URL): `write(arg)` PUTs `make(arg)` (a dict) at `path` on one kept
    connection and returns the monotonic time just before the request."""
    url = urllib.parse.urlsplit(api)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)

    def write(arg):
        body = json.dumps(make(arg)).encode()
        t0 = time.monotonic()
        conn.request("PUT", path, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"PUT {path}: {r.status}")
        return t0
    return write
