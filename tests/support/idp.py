"""Starts a real `mcpgate idp` on a free loopback port in a temporary directory, registers the
lab's applications through the admin CLI, and stops it by its process id."""
import json
import os
import signal
import subprocess
import tempfile
import time

MCPGATE = os.environ["MCPGATE_BIN"]
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
DOMAIN = "contoso.onmicrosoft.com"


class Idp:
    def __init__(self, token_lifetime=None, extra_args=()):
        self.dir = tempfile.TemporaryDirectory(prefix="mcpgate-idp-")
        self.data = os.path.join(self.dir.name, "data")
        self.log_path = os.path.join(self.dir.name, "idp.log")
        self.token_lifetime = token_lifetime
        self.extra_args = list(extra_args)
        self.proc = None

    def cli(self, *args, check=True):
        r = subprocess.run([MCPGATE, "idp", "--data", self.data, *args], capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"mcpgate idp {' '.join(args)} failed: {r.stderr}")
        return json.loads(r.stdout) if r.stdout.strip() else None

    def start(self):
        ready = os.path.join(self.dir.name, "ready.json")
        args = [MCPGATE, "idp", "--data", self.data, "--listen", "127.0.0.1:0", "--ready-file", ready, *self.extra_args]
        if self.token_lifetime is not None:
            args += ["--token-lifetime", str(self.token_lifetime)]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()  # ours to end, by its pid
                with open(self.log_path) as f:
                    raise AssertionError("idp did not start: " + f.read())
            time.sleep(0.02)
        with open(ready) as f:
            info = json.load(f)
        self.port = int(info["https"].rsplit(":", 1)[1])
        self.base = f"https://localhost:{self.port}"
        self.ca = info["ca"]
        self.http_base = info.get("http")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def cleanup(self):
        self.stop()
        self.dir.cleanup()

    def logs(self):
        with open(self.log_path) as f:
            return f.read()

    def setup_lab(self):
        """Step 1 of the lab: a tenant, the MCP API (App ID URI, an app role) and a client with a secret."""
        self.cli("tenant", "create", "--id", TENANT, "--domain", DOMAIN, "--name", "Contoso")
        self.api = self.cli("app", "create", "--name", "mcp-api", "--identifier-uri", "api://mcp-api")
        self.api_v2 = self.cli("app", "create", "--name", "mcp-api-v2", "--identifier-uri", "api://mcp-api-v2",
                               "--access-token-version", "2")
        self.locked = self.cli("app", "create", "--name", "locked-api", "--identifier-uri", "api://locked",
                               "--assignment-required")
        self.client = self.cli("app", "create", "--name", "agent")
        self.other = self.cli("app", "create", "--name", "other-agent")
        for api in (self.api, self.api_v2, self.locked):
            self.cli("role", "add", "--app", api["appId"], "--value", "Tools.Call")
            self.cli("role", "add", "--app", api["appId"], "--value", "Tools.Read")
        self.cli("role", "grant", "--client", self.client["appId"], "--resource", "api://mcp-api", "--role", "Tools.Call")
        self.cli("role", "grant", "--client", self.client["appId"], "--resource", "api://mcp-api-v2", "--role", "Tools.Call")
        self.cli("role", "grant", "--client", self.client["appId"], "--resource", "api://mcp-api-v2", "--role", "Tools.Read")
        self.secret = self.cli("secret", "add", "--app", self.client["appId"])["secretText"]
        self.other_secret = self.cli("secret", "add", "--app", self.other["appId"])["secretText"]
        return self
