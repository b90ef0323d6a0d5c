#!/usr/bin/python3
"""Side-by-side load test: the same nginx origin reached directly, through nginx as a reverse
proxy (no auth), through `mcpgate gateway` without policies, through HAProxy checking the token
with jwt_verify, and through `mcpgate gateway` running the lab's validate-azure-ad-token policy
(the same emulator token on every request), each run interleaved with the others.

Placement (2 cores): the origin and wrk share core 0, the proxy under test runs alone on core 1.
Reports medians of req/s, p50/p99 latency, and the proxy's CPU time per request (from /proc),
which is steadier than req/s on a noisy machine. Bounded in time; stops what it started.

  /usr/bin/python3 bench/load/run.py [--mcpgate build/release/src/app/mcpgate] [--rounds 3] [--seconds 8]
"""
import argparse
import base64
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BODY = ('{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hello from the origin, '
        'a reply of about two hundred bytes like a small MCP tool result"}],"isError":false}}')


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nginx_conf(directory, name, port, body=None, upstream_port=None):
    root = os.path.join(directory, name)
    os.makedirs(os.path.join(root, "logs"), exist_ok=True)
    if body is not None:
        location = f"default_type application/json; return 200 '{body}';"
        upstream = ""
    else:
        location = ("proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\";")
        upstream = f"upstream origin {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}"
    conf = f"""
worker_processes 1;
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  {upstream}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location / {{ {location} }}
  }}
}}
"""
    path = os.path.join(root, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path, root


LAB_POLICY = """<policies>
  <inbound>
    <base />
    <validate-azure-ad-token tenant-id="{{aad-tenant-id}}">
      <client-application-ids><application-id>{{aad-client-application-id}}</application-id></client-application-ids>
    </validate-azure-ad-token>
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>
"""
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def start_idp(mcpgate, d, procs):
    """The emulator with the lab's registrations; returns (authority, ca, client id, token, public key PEM)."""
    import json
    import ssl
    import urllib.parse
    import urllib.request
    data = os.path.join(d, "idp")
    cli = lambda *a: json.loads(subprocess.run([mcpgate, "idp", "--data", data, *a], check=True,
                                               capture_output=True, text=True).stdout or "null")
    cli("tenant", "create", "--id", TENANT, "--domain", "contoso.onmicrosoft.com", "--name", "Contoso")
    cli("app", "create", "--name", "mcp-api", "--identifier-uri", "api://mcp-api", "--access-token-version", "2")
    client = cli("app", "create", "--name", "agent")["appId"]
    secret = cli("secret", "add", "--app", client)["secretText"]
    ready = os.path.join(d, "idp-ready.json")
    procs.append(subprocess.Popen(["taskset", "-c", "0", mcpgate, "idp", "--data", data, "--listen", "127.0.0.1:0",
                                   "--ready-file", ready], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.time() + 20
    while not os.path.exists(ready) and time.time() < deadline:
        time.sleep(0.05)
    with open(ready) as f:
        info = json.load(f)
    authority, ca = info["https"], info["ca"]
    ctx = ssl.create_default_context(cafile=ca)
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": client, "client_secret": secret,
                                   "scope": "api://mcp-api/.default"}).encode()
    with urllib.request.urlopen(f"{authority}/{TENANT}/oauth2/v2.0/token", body, context=ctx) as r:
        token = json.load(r)["access_token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=" * (-len(token.split(".")[0]) % 4)))
    with urllib.request.urlopen(f"{authority}/{TENANT}/discovery/v2.0/keys", context=ctx) as r:
        jwk = next(k for k in json.load(r)["keys"] if k.get("kid") == header["kid"])
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
    b64 = lambda v: int.from_bytes(base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)), "big")
    pem = RSAPublicNumbers(b64(jwk["e"]), b64(jwk["n"])).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return authority, ca, client, token, pem


def haproxy_conf(directory, port, origin_port, key_file, issuer, client):
    """HAProxy as a reverse proxy that checks the same token: RS256 signature, expiry, issuer, client."""
    path = os.path.join(directory, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(f"""global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:{port}
  http-request deny deny_status 401 unless {{ req.hdr(authorization) -m beg "Bearer " }}
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request deny deny_status 401 unless {{ var(txn.alg) -m str RS256 }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_verify(txn.alg,"{key_file}") -m int 1 }}
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 if {{ var(txn.exp),sub(txn.now) -m int lt 0 }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.iss') -m str {issuer} }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.azp') -m str {client} }}
  default_backend be
backend be
  http-reuse always
  server origin 127.0.0.1:{origin_port}
""")
    return path


def wrk(url, seconds, connections, headers=()):
    cmd = ["taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))

    def ms(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "requests": total, "p50": ms("50"), "p99": ms("99"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else ""}


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--mcpgate", default=os.path.join(here, "..", "..", "build", "release", "src", "app", "mcpgate"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--no-auth", action="store_true", help="skip the token-validating setups")
    args = ap.parse_args()
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is missing: run scripts/setup.sh")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    procs = []
    with tempfile.TemporaryDirectory(prefix="mcpgate-bench-") as d:
        try:
            origin_port, nginx_port, gw_port = free_port(), free_port(), free_port()
            conf, root = nginx_conf(d, "origin", origin_port, body=BODY)
            procs.append(subprocess.Popen(["taskset", "-c", "0", nginx, "-p", root, "-c", conf],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            conf, root = nginx_conf(d, "proxy", nginx_port, upstream_port=origin_port)
            nginx_proxy = subprocess.Popen(["taskset", "-c", "1", nginx, "-p", root, "-c", conf],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(nginx_proxy)
            gw_conf = os.path.join(d, "mcpgate.yaml")
            with open(gw_conf, "w") as f:
                f.write(f"""listeners: [{{address: 127.0.0.1, port: {gw_port}}}]
backends: {{origin: {{url: "http://127.0.0.1:{origin_port}"}}}}
apis: [{{name: bench, path: /, backend: origin}}]
workers: 1
access_log: "off"
""")
            gateway = subprocess.Popen(["taskset", "-c", "1", args.mcpgate, "gateway", "-c", gw_conf],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(gateway)
            for port in (origin_port, nginx_port, gw_port):
                wait_port(port)
            setups = [("direct", origin_port, None, ()), ("nginx proxy", nginx_port, nginx_proxy.pid, ()),
                      ("mcpgate (no policy)", gw_port, gateway.pid, ())]
            if not args.no_auth:
                # The lab's policy on every request, the same token each time; HAProxy checking
                # the same token with jwt_verify, side by side.
                authority, ca, client, token, pem = start_idp(args.mcpgate, d, procs)
                policy = os.path.join(d, "lab.xml")
                with open(policy, "w") as f:
                    f.write(LAB_POLICY)
                lab_port, haproxy_port = free_port(), free_port()
                lab_conf = os.path.join(d, "lab.yaml")
                with open(lab_conf, "w") as f:
                    f.write(f"""listeners: [{{address: 127.0.0.1, port: {lab_port}}}]
entra: {{authority: "{authority}", ca_file: "{ca}"}}
named_values: {{aad-tenant-id: {TENANT}, aad-client-application-id: {client}}}
backends: {{origin: {{url: "http://127.0.0.1:{origin_port}"}}}}
apis: [{{name: lab, path: /, backend: origin, policy: {policy}}}]
workers: 1
access_log: "off"
""")
                lab_err = open(os.path.join(d, "lab.err"), "w")
                lab = subprocess.Popen(["taskset", "-c", "1", args.mcpgate, "gateway", "-c", lab_conf],
                                       stdout=subprocess.DEVNULL, stderr=lab_err)
                procs.append(lab)
                key_file = os.path.join(d, "key.pem")
                with open(key_file, "wb") as f:
                    f.write(pem)
                hconf = haproxy_conf(d, haproxy_port, origin_port, key_file, f"{authority}/{TENANT}/v2.0", client)
                haproxy_err = open(os.path.join(d, "haproxy.err"), "w")
                haproxy = subprocess.Popen(["taskset", "-c", "1", shutil.which("haproxy") or "/usr/sbin/haproxy",
                                            "-db", "-f", hconf], stdout=subprocess.DEVNULL, stderr=haproxy_err)
                procs.append(haproxy)
                for port, name in ((lab_port, "lab.err"), (haproxy_port, "haproxy.err")):
                    try:
                        wait_port(port)
                    except RuntimeError:
                        with open(os.path.join(d, name)) as f:
                            sys.exit(f"{name[:-4]} did not start:\n{f.read()}")
                auth = ("Authorization: Bearer " + token,)
                for port, who in ((lab_port, "mcpgate"), (haproxy_port, "haproxy")):  # both accept the token
                    probe = wrk(f"http://127.0.0.1:{port}/mcp", 1, 1, auth)
                    if probe["non2xx"] or probe["requests"] == 0:
                        sys.exit(f"{who} refuses the token: {probe}; check the setup")
                    bad = wrk(f"http://127.0.0.1:{port}/mcp", 1, 1, ("Authorization: Bearer x.y.z",))
                    if bad["non2xx"] != bad["requests"]:
                        sys.exit(f"{who} lets a bad token pass: the setup checks nothing")
                setups += [("haproxy jwt_verify", haproxy_port, haproxy.pid, auth),
                           ("mcpgate (lab policy)", lab_port, lab.pid, auth)]
            results = {name: [] for name, _, _, _ in setups}
            print(f"placement: origin nginx + wrk on core 0; proxy alone on core 1; {args.connections} connections, "
                  f"{args.seconds}s x {args.rounds} rounds, interleaved")
            for r in range(args.rounds):
                for name, port, pid, headers in setups:
                    before = cpu_seconds(pid) if pid else 0
                    res = wrk(f"http://127.0.0.1:{port}/mcp", args.seconds, args.connections, headers)
                    if pid:
                        res["cpu_us"] = (cpu_seconds(pid) - before) / max(1, res["requests"]) * 1e6
                    results[name].append(res)
                    print(f"  round {r + 1} {name:22s} {res['rps']:9.0f} req/s  p50 {res['p50']:.2f} ms  p99 {res['p99']:.2f} ms"
                          + (f"  proxy CPU {res['cpu_us']:.1f} us/req" if pid else "")
                          + (f"  NON-2XX {res['non2xx']}" if res["non2xx"] else ""), flush=True)
            print()
            print(f"{'setup':22s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'proxy CPU/req':>14s}   (medians)")
            med = {}
            for name, _, pid, _ in setups:
                rows = results[name]
                med[name] = {k: statistics.median(x[k] for x in rows) for k in ("rps", "p50", "p99")}
                cpu = statistics.median(x["cpu_us"] for x in rows) if pid else None
                med[name]["cpu_us"] = cpu
                print(f"{name:22s} {med[name]['rps']:9.0f} {med[name]['p50']:8.2f} {med[name]['p99']:8.2f} "
                      f"{(f'{cpu:.1f} us' if cpu else '-'):>14s}")
            a, b = med["mcpgate (no policy)"], med["nginx proxy"]
            print(f"\nmcpgate / nginx: {a['rps'] / b['rps']:.2f}x req/s, {a['cpu_us'] / b['cpu_us']:.2f}x CPU per request")
            if "mcpgate (lab policy)" in med:
                lab, hap = med["mcpgate (lab policy)"], med["haproxy jwt_verify"]
                print(f"mcpgate lab policy / nginx without auth: {lab['rps'] / b['rps']:.2f}x req/s, "
                      f"{lab['cpu_us'] / b['cpu_us']:.2f}x CPU per request")
                print(f"mcpgate lab policy / haproxy jwt_verify: {lab['rps'] / hap['rps']:.2f}x req/s, "
                      f"{lab['cpu_us'] / hap['cpu_us']:.2f}x CPU per request")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
