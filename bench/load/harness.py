"""The load harness's shared pieces: the processes it starts (pinned with taskset, stopped by
their pids), readiness, figures from /proc, wrk and its output, plain HTTP probes, the Entra
emulator's tokens, and the configurations of the peers (nginx, HAProxy) and of the gateway.

Placement on the 2-core machine: everything that makes load or answers it (wrk, the origins,
the emulator, this harness and its own socket clients) runs on core 0; the proxy under test runs
alone on core 1.
"""
import base64
import http.client as httpclient
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request

# Idle upstream connections a proxy keeps (nginx `keepalive`, mcpgate `max_idle_connections`):
# above the largest connection count, so that no proxy opens a connection per request at 256.
UPSTREAM_POOL = 512
CORE_LOAD = "0"   # wrk, origins, the emulator, the harness's clients
CORE_PROXY = "1"  # the proxy under test, alone
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
LUA = os.path.join(HERE, "lua")
PYTHON = "/usr/bin/python3"  # Debian's, with python3-cryptography

# ~200 bytes of JSON, like a small MCP tool result: the nginx origin's answer.
BODY = ('{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hello from the origin, '
        'a reply of about two hundred bytes like a small MCP tool result"}],"isError":false}}')

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
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


class SetupError(Exception):
    """A setup that does not work as it must: the script stops and prints this."""


def raise_nofile():
    """RLIMIT_NOFILE soft limit up to the hard one (20,000 here): for 9,000 streams' sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


# --- /proc -------------------------------------------------------------------------------------

def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_field(pid, name):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return None


def rss_kib(pid):
    return int(status_field(pid, "VmRSS").split()[0])


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpus_allowed(pid):
    return status_field(pid, "Cpus_allowed_list")


# --- processes ---------------------------------------------------------------------------------

class Procs:
    """Every process the harness starts: pinned to a core with taskset (which execs, so the pid
    is the program's own), its output kept in the work folder, and stopped by that pid only."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.running = []   # (name, Popen)
        self.placement = {}  # name -> {"pid", "cpus"}: what the kernel reports, not what we asked

    def start(self, name, argv, core, ready_file=None, port=None, timeout=20):
        """Starts argv on `core`; waits until it writes `ready_file` (returns its JSON) or listens
        on `port`. A process that exits or is not ready in time is a SetupError with its stderr."""
        out = open(os.path.join(self.workdir, name + ".out"), "w")
        err_path = os.path.join(self.workdir, name + ".err")
        err = open(err_path, "w")
        if ready_file and os.path.exists(ready_file):
            os.unlink(ready_file)
        proc = subprocess.Popen(["taskset", "-c", core, *argv], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, preexec_fn=raise_nofile)
        out.close()
        err.close()
        self.running.append((name, proc))
        deadline = time.time() + timeout
        info = None
        while True:
            if ready_file:
                info = read_ready(ready_file)
                if info is not None:
                    break
            if port and port_open(port):
                break
            if proc.poll() is not None or time.time() > deadline:
                self.stop(proc)
                with open(err_path) as f:
                    tail = f.read()[-3000:]
                raise SetupError(f"{name} did not start ({' '.join(argv)}):\n{tail}")
            time.sleep(0.01)
        self.placement[name] = {"pid": proc.pid, "cpus": cpus_allowed(proc.pid)}
        return proc, info

    def stderr(self, name):
        try:
            with open(os.path.join(self.workdir, name + ".err")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self, proc):
        stop_process(proc)
        self.running = [(n, p) for n, p in self.running if p is not proc]

    def stop_all(self):
        for _, p in list(self.running):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _, p in list(self.running):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.running = []


def stable_binary(path, workdir, wait=60):
    """A private copy of the mcpgate binary, so that a rebuild that replaces it during the run
    (or leaves it missing for a moment) cannot change what is measured half-way."""
    copy = os.path.join(workdir, "mcpgate")
    deadline = time.time() + wait
    while True:
        try:
            shutil.copy2(path, copy)
            subprocess.run([copy, "--version"], check=True, capture_output=True, timeout=10)
            return copy
        except (OSError, subprocess.SubprocessError) as e:
            if time.time() > deadline:
                raise SetupError(f"cannot use {path}: {e}")
            time.sleep(1)


# --- wrk and HTTP ------------------------------------------------------------------------------

def wrk(url, seconds, connections, headers=(), script=None, script_args=()):
    """One wrk run from core 0 (one thread); req/s, requests, p50/p99 (ms), errors."""
    cmd = ["taskset", "-c", CORE_LOAD, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    if script_args:
        cmd += ["--", *script_args]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    out = run.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise SetupError(f"wrk failed on {url}: {run.stderr.strip() or out.strip()}")

    def ms(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(m.group(1)), "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "p50": ms("50"), "p99": ms("99"), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1).strip() if errors else ""}


def measured_wrk(pid, *args, **kwargs):
    """wrk, plus the proxy's CPU time per request (µs) over the run when pid is a proxy's."""
    before = cpu_seconds(pid) if pid else 0.0
    res = wrk(*args, **kwargs)
    if pid:
        res["cpu_us"] = (cpu_seconds(pid) - before) / max(1, res["requests"]) * 1e6
    return res


def http_request(port, method, path, headers=None, body=None, timeout=10):
    """One request on a fresh connection: (status, {lower-case name: value}, body bytes)."""
    c = httpclient.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def check_auth(who, port, path, tokens):
    """The setup must accept every token it will be sent and refuse `x.y.z`: else it measures
    nothing worth comparing."""
    for t in tokens:
        status, _, body = http_request(port, "GET", path, {"Authorization": "Bearer " + t})
        if status != 200:
            raise SetupError(f"{who} refuses the token ({status}: {body[:200]!r}); check the setup")
    status, _, _ = http_request(port, "GET", path, {"Authorization": "Bearer x.y.z"})
    if status != 401:
        raise SetupError(f"{who} answers {status} to the token x.y.z: the setup checks nothing")


# --- the emulator ------------------------------------------------------------------------------

def stop_process(proc, timeout=10):
    """SIGTERM, up to `timeout` seconds to finish, then SIGKILL: only this process, by its pid."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client_credentials_token(authority, ca, client, secret):
    """One token from the emulator for the lab's API (client-credentials grant)."""
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": client,
                                   "client_secret": secret, "scope": "api://mcp-api/.default"}).encode()
    with urllib.request.urlopen(f"{authority}/{TENANT}/oauth2/v2.0/token", form,
                                context=ssl.create_default_context(cafile=ca)) as r:
        return json.load(r)["access_token"]


def read_ready(path):
    """A ready file's JSON once it is written whole; None before."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError:
        return None  # not written whole yet


def lab_registrations(mcpgate, data):
    """The lab's tenant and app registrations in the emulator's data folder `data` (through its
    CLI): the API (v2 tokens) and the agent. Returns the agent's client id and secret."""
    def cli(*a):
        run = subprocess.run([mcpgate, "idp", "--data", data, *a], capture_output=True, text=True)
        if run.returncode:
            raise SetupError(f"mcpgate idp {' '.join(a)}: {run.stderr.strip()}")
        return json.loads(run.stdout or "null")
    cli("tenant", "create", "--id", TENANT, "--domain", "contoso.onmicrosoft.com", "--name", "Contoso")
    cli("app", "create", "--name", "mcp-api", "--identifier-uri", "api://mcp-api", "--access-token-version", "2")
    client = cli("app", "create", "--name", "agent")["appId"]
    return client, cli("secret", "add", "--app", client)["secretText"]


def start_idp(procs, mcpgate, workdir, n_tokens):
    """`mcpgate idp` with the lab's registrations, and n_tokens distinct client-credentials
    tokens from it; returns authority, ca, client id, tokens and the signing key's PEM."""
    data = os.path.join(workdir, "idp")
    client, secret = lab_registrations(mcpgate, data)
    ready = os.path.join(workdir, "idp-ready.json")
    _, info = procs.start("idp", [mcpgate, "idp", "--data", data, "--listen", "127.0.0.1:0",
                                  "--ready-file", ready], CORE_LOAD, ready_file=ready)
    authority, ca = info["https"], info["ca"]
    ctx = ssl.create_default_context(cafile=ca)
    tokens = []
    for _ in range(n_tokens * 3):
        t = client_credentials_token(authority, ca, client, secret)
        if t not in tokens:
            tokens.append(t)
        if len(tokens) == n_tokens:
            break
    if len(tokens) < n_tokens:
        raise SetupError(f"the emulator gave {len(tokens)} distinct tokens, not {n_tokens}")

    def b64(v):
        return base64.urlsafe_b64decode(v + "=" * (-len(v) % 4))
    kid = json.loads(b64(tokens[0].split(".")[0]))["kid"]
    with urllib.request.urlopen(f"{authority}/{TENANT}/discovery/v2.0/keys", context=ctx) as r:
        jwk = next(k for k in json.load(r)["keys"] if k.get("kid") == kid)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
    n = int.from_bytes(b64(jwk["n"]), "big")
    e = int.from_bytes(b64(jwk["e"]), "big")
    pem = RSAPublicNumbers(e, n).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"authority": authority, "ca": ca, "client": client, "tokens": tokens, "pem": pem,
            "issuer": f"{authority}/{TENANT}/v2.0"}


# --- configurations ----------------------------------------------------------------------------

def nginx_origin(procs, workdir, nginx):
    """nginx answering BODY to everything, on core 0; its port."""
    port = free_port()
    conf, root = _nginx_conf(workdir, "origin", port, f"location / {{ default_type application/json; return 200 '{BODY}'; }}")
    procs.start("nginx-origin", [nginx, "-p", root, "-c", conf], CORE_LOAD, port=port)
    return port


def nginx_proxy(procs, workdir, nginx, name, upstreams):
    """nginx 1.22 as a keep-alive reverse proxy on core 1, no auth. upstreams: {location: port};
    a location under /sse relays without buffering (proxy_buffering off), as event streams need.
    Returns (Popen, port)."""
    port = free_port()
    blocks, locations = [], []
    for i, (loc, up) in enumerate(sorted(upstreams.items())):
        blocks.append(f"upstream u{i} {{ server 127.0.0.1:{up}; keepalive {UPSTREAM_POOL}; }}")
        extra = " proxy_buffering off; proxy_read_timeout 1h;" if loc.startswith("/sse") else ""
        locations.append(f"location {loc} {{ proxy_pass http://u{i}; proxy_http_version 1.1; "
                         f"proxy_set_header Connection \"\";{extra} }}")
    conf, root = _nginx_conf(workdir, name, port, "\n    ".join(locations), "\n  ".join(blocks))
    proc, _ = procs.start(name, [nginx, "-p", root, "-c", conf], CORE_PROXY, port=port)
    return proc, port


def _nginx_conf(workdir, name, port, locations, upstreams=""):
    root = os.path.join(workdir, name)
    os.makedirs(os.path.join(root, "logs"), exist_ok=True)
    conf = f"""
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/logs/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  {upstreams}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    {locations}
  }}
}}
"""
    path = os.path.join(root, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path, root


def haproxy_jwt(procs, workdir, haproxy, name, origin_port, idp):
    """HAProxy 2.6 (one thread) on core 1 checking the token as the lab's policy does: RS256
    signature with jwt_verify, expiry, issuer and client application (azp). (Popen, port)."""
    port = free_port()
    key_file = os.path.join(workdir, "idp-key.pem")
    with open(key_file, "wb") as f:
        f.write(idp["pem"])
    path = os.path.join(workdir, name + ".cfg")
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
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.iss') -m str {idp["issuer"]} }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.azp') -m str {idp["client"]} }}
  default_backend be
backend be
  http-reuse always
  server origin 127.0.0.1:{origin_port}
""")
    proc, _ = procs.start(name, [haproxy, "-db", "-f", path], CORE_PROXY, port=port)
    return proc, port


def gateway_yaml(backends, apis, idp=None, token_cache_entries=None, admin=False):
    """The gateway's YAML: one worker, no access log, port 0 (the ready file says which).
    backends: {name: url}; apis: [(name, path, backend, type, policy file or None)]."""
    lines = ["listeners: [{address: 127.0.0.1, port: 0}]", "workers: 1", 'access_log: "off"']
    if admin:
        lines.append("admin: {address: 127.0.0.1, port: 0}")
    if idp:
        extra = f", token_cache_entries: {token_cache_entries}" if token_cache_entries is not None else ""
        lines.append(f'entra: {{authority: "{idp["authority"]}", ca_file: "{idp["ca"]}"{extra}}}')
        lines.append(f"named_values: {{aad-tenant-id: {TENANT}, aad-client-application-id: {idp['client']}}}")
    lines.append("backends: {" + ", ".join(f'{n}: {{url: "{u}", max_idle_connections: {UPSTREAM_POOL}}}'
                                           for n, u in backends.items()) + "}")
    api_lines = []
    for name, path, backend, kind, policy in apis:
        item = f"{{name: {name}, path: {path}, backend: {backend}, type: {kind}"
        item += f", policy: {policy}}}" if policy else "}"
        api_lines.append(item)
    lines.append("apis: [" + ", ".join(api_lines) + "]")
    return "\n".join(lines) + "\n"


def lab_policy_file(workdir):
    path = os.path.join(workdir, "lab.xml")
    with open(path, "w") as f:
        f.write(LAB_POLICY)
    return path


def start_gateway(procs, mcpgate, workdir, name, yaml_text, core=CORE_PROXY):
    """`mcpgate gateway` with this YAML; waits for its ready file. (Popen, ready-file JSON, port)."""
    conf = os.path.join(workdir, name + ".yaml")
    with open(conf, "w") as f:
        f.write(yaml_text)
    ready = os.path.join(workdir, name + ".ready.json")
    proc, info = procs.start(name, [mcpgate, "gateway", "-c", conf, "--no-watch", "--ready-file", ready],
                             core, ready_file=ready)
    return proc, info, int(info["listeners"][0].rsplit(":", 1)[1])


def gateway_accepts(mcpgate, workdir, yaml_text):
    """`mcpgate gateway --check` on this YAML: (accepted, its diagnostics)."""
    conf = os.path.join(workdir, "check.yaml")
    with open(conf, "w") as f:
        f.write(yaml_text)
    run = subprocess.run([mcpgate, "gateway", "--check", "-c", conf], capture_output=True, text=True, timeout=30)
    return run.returncode == 0, (run.stderr + run.stdout).strip()


def tool(name):
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    return path


def ensure_tools(names, allow_setup):
    """Each tool on PATH (or /usr/sbin); if one is missing, the repo's setup script installs the
    peers (idempotent), unless allow_setup is False."""
    missing = [n for n in names if not tool(n)]
    if missing and allow_setup:
        print(f"missing {', '.join(missing)}: running scripts/setup.sh", flush=True)
        subprocess.run([os.path.join(REPO, "scripts", "setup.sh")], check=False)
        missing = [n for n in names if not tool(n)]
    if missing:
        sys.exit(f"{', '.join(missing)} missing: run scripts/setup.sh")
    return {n: tool(n) for n in names}
