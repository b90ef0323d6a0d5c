#!/usr/bin/python3
"""Instructions per proxied request, counted by callgrind: a cost figure machine noise cannot move.

Runs `mcpgate gateway` (one worker) under valgrind's callgrind in front of a small local origin,
sends warm-up requests, zeroes the counters, sends N requests one after another on one keep-alive
connection, dumps the counters and divides. Setups:

  plain         no policy
  jwt-cached    validate-jwt (RS256, inline key, iss/aud/exp) with the same token every time
  jwt-fresh     the same with entra.token_cache_entries: 0 (every request verifies the signature)
  lab           the lab's validate-azure-ad-token policy, keys from `mcpgate idp` (the emulator,
                over TLS), the same client-credentials token every time
  oidc          validate-jwt with openid-config (the emulator's discovery document: its issuer
                is the one allowed) and a required azp claim, the lab's token every time
  lab-domain    the lab's policy with the tenant named by its domain (contoso.onmicrosoft.com)
                rather than its GUID (not in the default set)
  mcp           an API of type mcp (no policy) in front of `mcpgate sample-server`: tools/call of
                `echo` in a session opened by initialize (the body is read whole and its JSON-RPC
                envelope inspected)

  /usr/bin/python3 bench/callgrind/run.py [--requests 300] [--json out.json]
      [--check bench/callgrind/baseline.json [--tolerance 0.10]] [--write-baseline F]

With --check, exits 1 when a setup costs more than the baseline by more than the tolerance (fewer
is fine: update the baseline to keep the gain). Loopback only; stops what it started.
"""
import argparse
import base64
import glob
import http.client
import http.server
import json
import os
import re
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "load"))
from harness import (LAB_POLICY, TENANT, client_credentials_token, lab_registrations,  # noqa: E402
                     read_ready, stop_process)
BODY = (b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hello from the origin, '
        b'a reply of about two hundred bytes like a small MCP tool result"}],"isError":false}}')


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        # Head and body in one write, as nginx (the load benchmark's origin) sends them: the
        # gateway then relays both in one write too.
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)

    def log_message(self, *args):
        pass


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(d):
    """An RS256 key pair, the key's n/e for an inline issuer-signing-keys, and a token it signed."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    nums = key.public_key().public_numbers()
    n = b64url(nums.n.to_bytes(256, "big"))
    e = b64url(nums.e.to_bytes(3, "big"))
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench"}).encode())
    now = int(time.time())
    claims = b64url(json.dumps({"iss": "https://issuer.bench", "aud": "api://bench", "iat": now,
                                "nbf": now, "exp": now + 3600, "azp": "bench-client"}).encode())
    signing_input = f"{header}.{claims}".encode()
    sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return n, e, f"{header}.{claims}.{b64url(sig)}"


def policy_xml(n, e):
    return f"""<policies>
  <inbound>
    <base />
    <validate-jwt header-name="Authorization" failed-validation-httpcode="401">
      <issuer-signing-keys><key id="bench" n="{n}" e="{e}" /></issuer-signing-keys>
      <audiences><audience>api://bench</audience></audiences>
      <issuers><issuer>https://issuer.bench</issuer></issuers>
    </validate-jwt>
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>
"""


OIDC_POLICY = """<policies><inbound><base />
  <validate-jwt header-name="Authorization">
    <openid-config url="{url}" />
    <required-claims><claim name="azp"><value>{client}</value></claim></required-claims>
  </validate-jwt>
</inbound></policies>
"""


def start_emulator(mcpgate, d):
    """`mcpgate idp` with the lab's registrations: (process, authority, CA file, client id,
    token). The caller stops the process."""
    data = os.path.join(d, "idp")
    client, secret = lab_registrations(mcpgate, data)
    ready = os.path.join(d, "idp-ready.json")
    proc = subprocess.Popen([mcpgate, "idp", "--data", data, "--listen", "127.0.0.1:0", "--ready-file", ready],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while (info := read_ready(ready)) is None:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.05)
        token = client_credentials_token(info["https"], info["ca"], client, secret)
        return proc, info["https"], info["ca"], client, token
    except BaseException:
        stop_process(proc)
        raise


MCP_VERSION = "2025-06-18"
MCP_CALL = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"message": "hello through the gateway"}}})


def open_mcp_session(conn, name):
    """initialize through the gateway: the headers a request of the session then carries."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    conn.request("POST", "/mcp", body=json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": MCP_VERSION, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}),
        headers=headers)
    r = conn.getresponse()
    r.read()
    session = r.getheader("Mcp-Session-Id")
    if r.status != 200 or not session:
        raise RuntimeError(f"{name}: initialize got {r.status}")
    return {**headers, "Mcp-Session-Id": session, "MCP-Protocol-Version": MCP_VERSION}


def start_sample_server(mcpgate, d):
    """`mcpgate sample-server` on a port of its choosing: (process, its base URL)."""
    ready = os.path.join(d, "sample-ready.json")
    proc = subprocess.Popen([mcpgate, "sample-server", "--listen", "127.0.0.1:0", "--ready-file", ready],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while (info := read_ready(ready)) is None:
        if proc.poll() is not None or time.time() > deadline:
            stop_process(proc)
            raise RuntimeError("the sample server did not start")
        time.sleep(0.05)
    return proc, info["mcp"][0].rsplit("/", 1)[0]


def count(mcpgate, d, name, config, requests, headers, keep=None, mcp=False):
    """Instructions per request for one gateway configuration (`mcp`: tools/call in a session,
    else GET of the origin's ~200-byte answer)."""
    conf = os.path.join(d, f"{name}.yaml")
    with open(conf, "w") as f:
        f.write(config)
    ready = os.path.join(d, f"{name}.ready")
    out = os.path.join(d, f"{name}.callgrind.%p")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--compress-strings=no", f"--callgrind-out-file={out}",
                             mcpgate, "gateway", "-c", conf, "--no-watch", "--ready-file", ready],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not os.path.exists(ready):
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{name}: the gateway did not start")
            time.sleep(0.1)
        with open(ready) as f:
            url = json.load(f)["listeners"][0]
        host, port = re.match(r"http://([\d.]+):(\d+)", url).groups()
        conn = http.client.HTTPConnection(host, int(port), timeout=60)

        if mcp:
            headers = open_mcp_session(conn, name)

        def send(n):
            for _ in range(n):
                if mcp:
                    conn.request("POST", "/mcp", body=MCP_CALL, headers=headers)
                else:
                    conn.request("GET", "/mcp", headers=headers)
                r = conn.getresponse()
                body = r.read()
                ok = b"hello through the gateway" in body if mcp else body == BODY
                if r.status != 200 or not ok:
                    raise RuntimeError(f"{name}: got {r.status} {body[:200]!r}")

        send(50)  # warm up: pools, caches, lazy initialisation
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True,
                       stdout=subprocess.DEVNULL)
        send(requests)
        subprocess.run(["callgrind_control", "--dump=measured", str(proc.pid)], check=True,
                       stdout=subprocess.DEVNULL)
        conn.close()
        dumps = [p for p in glob.glob(os.path.join(d, f"{name}.callgrind.{proc.pid}*"))
                 if not p.endswith(f".{proc.pid}")]
        total = 0
        for path in dumps:  # one file per thread may be written; the worker's holds the work
            with open(path) as f:
                text = f.read()
            if "measured" not in text:
                continue
            if keep:
                os.makedirs(keep, exist_ok=True)
                shutil.copy(path, os.path.join(keep, f"{name}.callgrind"))
            m = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
            total += int(m.group(1)) if m else 0
        if not total:
            raise RuntimeError(f"{name}: no callgrind dump found")
        return total / requests
    finally:
        stop_process(proc, 60)  # callgrind writes its dumps on the way out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mcpgate", default=os.path.join(HERE, "..", "..", "build", "release", "src", "app", "mcpgate"))
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--only", default="plain,jwt-cached,jwt-fresh,lab,oidc,mcp")
    ap.add_argument("--json")
    ap.add_argument("--check")
    ap.add_argument("--tolerance", type=float, default=0.10)
    ap.add_argument("--write-baseline")
    ap.add_argument("--keep", help="copy the callgrind dumps here (for callgrind_annotate)")
    args = ap.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("valgrind is missing: run scripts/setup.sh")
    mcpgate = os.path.abspath(args.mcpgate)
    origin = ThreadingServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    origin_port = origin.server_address[1]
    results = {}
    with tempfile.TemporaryDirectory(prefix="mcpgate-callgrind-") as d:
        n, e, token = make_token(d)
        policy = os.path.join(d, "jwt.xml")
        with open(policy, "w") as f:
            f.write(policy_xml(n, e))
        common = (f"listeners: [{{address: 127.0.0.1, port: 0}}]\n"
                  f"backends: {{origin: {{url: \"http://127.0.0.1:{origin_port}\"}}}}\n"
                  f"workers: 1\naccess_log: \"off\"\n")
        setups = {
            "plain": (common + "apis: [{name: bench, path: /, backend: origin}]\n", {}),
            "jwt-cached": (common + f"apis: [{{name: bench, path: /, backend: origin, policy: {policy}}}]\n",
                           {"Authorization": f"Bearer {token}"}),
            "jwt-fresh": (common + f"apis: [{{name: bench, path: /, backend: origin, policy: {policy}}}]\n"
                          "entra: {token_cache_entries: 0}\n", {"Authorization": f"Bearer {token}"}),
        }
        emulator = sample = None
        try:
            if "mcp" in args.only.split(","):
                sample, sample_url = start_sample_server(mcpgate, d)
                setups["mcp"] = (
                    common.replace(f"http://127.0.0.1:{origin_port}", sample_url)
                    + "apis: [{name: mcp, path: /mcp, backend: origin, type: mcp}]\n", {})
            if {"lab", "oidc", "lab-domain"} & set(args.only.split(",")):
                emulator, authority, ca, client, lab_token = start_emulator(mcpgate, d)
                entra = f"entra: {{authority: \"{authority}\", ca_file: \"{ca}\"}}\n"
                auth = {"Authorization": f"Bearer {lab_token}"}
                for name, tenant, text in (
                        ("lab", TENANT, LAB_POLICY), ("lab-domain", "contoso.onmicrosoft.com", LAB_POLICY),
                        ("oidc", TENANT, OIDC_POLICY.format(
                            url=f"{authority}/{TENANT}/v2.0/.well-known/openid-configuration", client=client))):
                    policy_file = os.path.join(d, f"{name}.xml")
                    with open(policy_file, "w") as f:
                        f.write(text)
                    setups[name] = (
                        common + entra
                        + f"named_values: {{aad-tenant-id: {tenant}, aad-client-application-id: {client}}}\n"
                        f"apis: [{{name: bench, path: /, backend: origin, policy: {policy_file}}}]\n", auth)
            for name in args.only.split(","):
                config, headers = setups[name]
                results[name] = round(count(mcpgate, d, name, config, args.requests, headers, args.keep,
                                            mcp=name == "mcp"))
                print(f"{name:12s} {results[name]:>10,d} instructions per request", flush=True)
        finally:
            if emulator:
                stop_process(emulator)
            if sample:
                stop_process(sample)
    origin.shutdown()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if args.write_baseline:
        with open(args.write_baseline, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
    if args.check:
        with open(args.check) as f:
            baseline = json.load(f)
        worse = []
        for name, value in results.items():
            if name in baseline:
                ratio = value / baseline[name]
                print(f"{name:12s} {ratio:6.3f}x the baseline ({baseline[name]:,d})")
                if ratio > 1 + args.tolerance:
                    worse.append(name)
        if worse:
            sys.exit(f"costlier than the baseline by more than {args.tolerance:.0%}: {', '.join(worse)}")


if __name__ == "__main__":
    main()
