#!/usr/bin/env python3
"""Helper of bench/fast-apply.sh (Python standard library only).

  fast_apply.py secret DIR CERTS HTTPS_PORT CHANGES
        rotate Secret bench/tls-probe (DIR/secret.yaml) through the PEM pairs
        CERTS/cert-K.pem, CERTS/key-K.pem, K = 0..; each rotation is timed from just
        before the rename to the first new TLS handshake (SNI tls.local) presenting
        the new certificate
  fast_apply.py slice DIR HTTP_PORT GOOD_PORT BAD_PORT CHANGES
        move EndpointSlice bench/epprobe-1 (DIR/eps.yaml) between GOOD_PORT (nginx:
        200) and BAD_PORT (closed: 502); each change is timed from just before the
        rename to the first response (Host ep.local) showing it (200, or not 200)

  fast_apply.py slice-kube API HTTP_PORT GOOD_PORT BAD_PORT CHANGES
        the same EndpointSlice moves through the Kubernetes API (http://HOST:PORT, the
        fake-apiserver example): each change is a PUT of the whole slice, timed from
        just before the PUT

All print: changes, p50 ms, p99 ms, max ms, mean ms, tab-separated.
"""

import http.client
import os
import socket
import ssl
import statistics
import sys
import time

import benchlib


def rename_in(folder, name, text):
    tmp = os.path.join(folder, f".{name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    t0 = time.monotonic()
    os.rename(tmp, os.path.join(folder, name))
    return t0


def indent(pem):
    return "".join(f"    {line}\n" for line in pem.splitlines())


def secret_yaml(crt, key):
    return (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: tls-probe, namespace: bench}\n"
        "type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n" + indent(crt)
        + "  tls.key: |\n" + indent(key)
    )


def slice_yaml(port):
    return (
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
        "metadata: {name: epprobe-1, namespace: bench, labels: {kubernetes.io/service-name: epprobe}}\n"
        f"addressType: IPv4\nports: [{{port: {port}}}]\n"
        'endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]\n'
    )


CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE


def leaf(port):
    """The leaf certificate (DER) a new handshake with SNI tls.local presents."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with CTX.wrap_socket(s, server_hostname="tls.local") as t:
            return t.getpeercert(binary_form=True)


def summary(samples):
    samples.sort()
    n = len(samples)
    p = lambda q: samples[min(n - 1, int(q * n))]
    print(f"{n}\t{p(0.5):.1f}\t{p(0.99):.1f}\t{samples[-1]:.1f}\t{statistics.mean(samples):.1f}")


def secret(folder, certs, port, changes):
    samples = []
    pairs = sorted(f for f in os.listdir(certs) if f.startswith("cert-"))
    for k in range(1, changes + 1):
        name = pairs[k % len(pairs)]
        crt = open(os.path.join(certs, name)).read()
        key = open(os.path.join(certs, name.replace("cert-", "key-"))).read()
        want = ssl.PEM_cert_to_DER_cert(crt)
        t0 = rename_in(folder, "secret.yaml", secret_yaml(crt, key))
        while True:
            try:
                if leaf(port) == want:
                    break
            except OSError:
                pass
            if time.monotonic() > t0 + 60:
                print(f"rotation {k} not served after 60 s", file=sys.stderr)
                return 1
            time.sleep(0.0005)
        samples.append((time.monotonic() - t0) * 1e3)
        time.sleep(0.05)
    summary(samples)
    return 0


def status(conn):
    conn.request("GET", "/", headers={"Host": "ep.local"})
    r = conn.getresponse()
    r.read()
    return r.status


def slice_object(port):
    """slice_yaml(port) as the API serves it (JSON)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "epprobe-1",
            "namespace": "bench",
            "labels": {"kubernetes.io/service-name": "epprobe"},
        },
        "addressType": "IPv4",
        "ports": [{"port": port}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
    }


def put_slice(api):
    """A slice change through the Kubernetes API: PUT the whole EndpointSlice."""
    return benchlib.api_put(api, "/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices/epprobe-1", slice_object)


def timed_changes(port, changes, write, served):
    """`changes` changes, each `write(k)` (returns its monotonic start), timed until
    `served(conn, k)` holds on a keep-alive connection to `port`; prints the summary."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    samples = []
    for k in range(1, changes + 1):
        t0 = write(k)
        while True:
            try:
                if served(conn, k):
                    break
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            if time.monotonic() > t0 + 60:
                print(f"change {k} not served after 60 s", file=sys.stderr)
                return 1
            time.sleep(0.0005)
        samples.append((time.monotonic() - t0) * 1e3)
        time.sleep(0.05)
    summary(samples)
    return 0


def slice_changes(write, port, good, bad, changes):
    """Change k moves the slice to the upstream (k even: 200) or the closed port
    (502): `write(port)` makes it; timed until ep.local answers accordingly."""
    return timed_changes(
        port,
        changes,
        lambda k: write(good if k % 2 == 0 else bad),
        lambda conn, k: (status(conn) == 200) == (k % 2 == 0),
    )


def app_yaml(k, port):
    """One app in one file: an Ingress (app.local, path /vK), its Service and its
    EndpointSlice (one endpoint on 127.0.0.1:port)."""
    return (
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
        "metadata: {name: app-probe, namespace: bench}\n"
        "spec:\n  ingressClassName: bench\n  rules:\n    - host: app.local\n"
        f"      http: {{paths: [{{path: /v{k}, pathType: Prefix, backend: "
        "{service: {name: appprobe, port: {number: 80}}}}]}\n"
        "---\napiVersion: v1\nkind: Service\n"
        "metadata: {name: appprobe, namespace: bench}\nspec: {ports: [{port: 80}]}\n"
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
        "metadata: {name: appprobe-1, namespace: bench, "
        "labels: {kubernetes.io/service-name: appprobe}}\n"
        f"addressType: IPv4\nports: [{{port: {port}}}]\n"
        'endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]\n'
    )


def app(folder, port, good, bad, changes):
    """Change k writes app.yaml with the Ingress's path /vk and the slice's port
    alternately on the upstream (200) and on a closed port (502), in one write:
    timed until GET /vk answers the new status (404 before: no route)."""

    def served(conn, k):
        conn.request("GET", f"/v{k}", headers={"Host": "app.local"})
        r = conn.getresponse()
        r.read()
        return r.status == (200 if k % 2 == 0 else 502)

    return timed_changes(
        port,
        changes,
        lambda k: rename_in(folder, "app.yaml", app_yaml(k, good if k % 2 == 0 else bad)),
        served,
    )


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "secret":
        sys.exit(secret(a[1], a[2], int(a[3]), int(a[4])))
    if a and a[0] == "slice":
        folder = a[1]
        write = lambda port: rename_in(folder, "eps.yaml", slice_yaml(port))
        sys.exit(slice_changes(write, int(a[2]), int(a[3]), int(a[4]), int(a[5])))
    if a and a[0] == "app":
        sys.exit(app(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5])))
    if a and a[0] == "slice-kube":
        sys.exit(slice_changes(put_slice(a[1]), int(a[2]), int(a[3]), int(a[4]), int(a[5])))
    print(__doc__)
    sys.exit(2)
