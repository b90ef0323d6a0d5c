#!/usr/bin/python3
"""`mcpgate token` and `mcpgate mcp`, the lab's Steps 3 and 4 as commands: a token from the real
emulator (secret and certificate credentials, Entra's refusals), then the official
server-everything called through `mcpgate gateway` running the lab's policy. Everything on
127.0.0.1."""
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import jwt as pyjwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from gateway import MCPGATE, Gateway  # noqa: E402
from idp import TENANT, Idp  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
EVERYTHING = os.path.join(ROOT, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
LAB = """<policies><inbound><base />
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}">
    <client-application-ids><application-id>{{aad-client-application-id}}</application-id></client-application-ids>
  </validate-azure-ad-token>
</inbound></policies>"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TokenAndMcp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.idp = Idp().start()
        cls.everything = cls.gw = None
        try:
            cls.idp.setup_lab()
            cls.authority = f"https://127.0.0.1:{cls.idp.port}"
            port = free_port()
            # server-everything listens on all interfaces; we only talk to it on 127.0.0.1.
            cls.everything = subprocess.Popen(["node", EVERYTHING, "streamableHttp"], env={**os.environ, "PORT": str(port)},
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline or cls.everything.poll() is not None:
                        raise AssertionError("server-everything did not start")
                    time.sleep(0.1)
            policy = os.path.join(cls.dir.name, "lab.xml")
            with open(policy, "w") as f:
                f.write(LAB)
            cls.gw = Gateway(f"""
listeners: [{{port: 0}}]
entra: {{authority: "{cls.authority}", ca_file: "{cls.idp.ca}"}}
named_values:
  aad-tenant-id: {TENANT}
  aad-client-application-id: {cls.idp.client["appId"]}
backends: {{everything: {{url: "http://127.0.0.1:{port}"}}}}
apis:
  - {{name: mcp, path: /mcp, type: mcp, backend: everything, policy: {policy},
     resource_metadata: {{resource: "https://gw.example/mcp"}}}}
""").start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.gw:
            cls.gw.cleanup()
        if cls.everything and cls.everything.poll() is None:
            cls.everything.terminate()
            cls.everything.wait(10)
        cls.idp.cleanup()
        cls.dir.cleanup()

    def run_cli(self, *args, env=None):
        return subprocess.run([MCPGATE, *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, **(env or {})}, cwd=self.dir.name)

    def token(self, *extra, client=None, output="token.jwt", env=None):
        return self.run_cli("token", "--tenant", TENANT, "--client-id", client or self.idp.client["appId"],
                            "--authority", self.authority, "--ca-file", self.idp.ca, "-o", output, *extra, env=env)

    def test_secret_from_the_environment_writes_the_token_file(self):
        path = os.path.join(self.dir.name, "token.jwt")
        with open(path, "w") as f:  # an older token file anyone could read
            f.write("old")
        os.chmod(path, 0o644)
        r = self.token("--scope", "api://mcp-api/.default", "--show", env={"MCPGATE_CLIENT_SECRET": self.idp.secret})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(path) as f:
            token = f.read()
        claims = pyjwt.decode(token, options={"verify_signature": False})
        self.assertEqual((claims["aud"], claims["appid"], claims["ver"]), ("api://mcp-api", self.idp.client["appId"], "1.0"))
        self.assertIn("a v1.0 token for api://mcp-api", r.stderr)
        shown = json.loads(r.stdout)
        self.assertEqual(shown["claims"]["appid"], self.idp.client["appId"])
        self.assertEqual(shown["header"]["alg"], "RS256")
        self.assertNotIn(token, r.stdout + r.stderr)  # --show prints claims, not the token

    def test_the_labs_default_scope_is_graph(self):
        secret = os.path.join(self.dir.name, "secret.txt")
        with open(secret, "w") as f:
            f.write(self.idp.secret + "\n")
        r = self.token("--client-secret-file", secret, output="-")
        self.assertEqual(r.returncode, 0, r.stderr)
        claims = pyjwt.decode(r.stdout.strip(), options={"verify_signature": False})
        self.assertEqual(claims["aud"], "https://graph.microsoft.com")

    def test_certificate_credential(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agent")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
        cert_path, key_path = os.path.join(self.dir.name, "agent.pem"), os.path.join(self.dir.name, "agent-key.pem")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        app = self.idp.cli("app", "create", "--name", "cert-agent")
        self.idp.cli("certificate", "add", "--app", app["appId"], "--cert", cert_path)
        r = self.token("--certificate", cert_path, "--key", key_path, "--scope", "api://mcp-api/.default",
                       client=app["appId"], output="cert.jwt",
                       env={"MCPGATE_CLIENT_SECRET": "ignored with a certificate"})
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.dir.name, "cert.jwt")) as f:
            self.assertEqual(pyjwt.decode(f.read(), options={"verify_signature": False})["appid"], app["appId"])

    def test_refusals_name_entras_error(self):
        r = self.token("--client-secret", "wrong")
        self.assertEqual(r.returncode, 1)
        self.assertIn("the identity provider refused (401 invalid_client): AADSTS7000215", r.stderr)
        r = self.token()
        self.assertEqual(r.returncode, 2)
        self.assertIn("give one credential", r.stderr)
        r = self.run_cli("token", "--tenant", TENANT, "--client-id", "x", "--client-secret", "y",
                         "--authority", "https://127.0.0.1:1", "--ca-file", self.idp.ca)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot reach https://127.0.0.1:1/", r.stderr)

    def test_mcp_through_the_gateway(self):
        r = self.token("--scope", "api://mcp-api/.default", output="lab.jwt", env={"MCPGATE_CLIENT_SECRET": self.idp.secret})
        self.assertEqual(r.returncode, 0, r.stderr)
        url = self.gw.url + "/mcp"
        r = self.run_cli("mcp", url, "--token-file", "lab.jwt")
        self.assertEqual(r.returncode, 0, r.stderr)
        names = [t["name"] for t in json.loads(r.stdout)["tools"]]
        self.assertIn("echo", names)
        r = self.run_cli("mcp", url, "call", "echo", '{"message": "hello through mcpgate"}', "--token-file", "lab.jwt")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("hello through mcpgate", json.loads(r.stdout)["content"][0]["text"])
        r = self.run_cli("mcp", url, "ping", "--token-file", "lab.jwt")
        self.assertEqual((r.returncode, json.loads(r.stdout)), (0, {}))

    def test_mcp_refusals(self):
        url = self.gw.url + "/mcp"
        r = self.run_cli("mcp", url)
        self.assertEqual(r.returncode, 1)
        self.assertIn('initialize: 401 { "statusCode": 401, "message": "JWT not present." }', r.stderr)
        self.assertIn('WWW-Authenticate: Bearer resource_metadata="https://gw.example/.well-known/oauth-protected-resource/mcp"', r.stderr)
        with open(os.path.join(self.dir.name, "bad.jwt"), "w") as f:
            f.write("not a token")
        r = self.run_cli("mcp", url, "--token-file", "bad.jwt")
        self.assertEqual(r.returncode, 2)
        r = self.run_cli("mcp", url, "call", "no-such-tool", "{}", "-H", "Authorization: Bearer x")
        self.assertEqual(r.returncode, 1)
        self.assertIn("Invalid JWT.", r.stderr)
        r = self.run_cli("mcp", url, "-H", "Authorization Bearer secret-token-value")
        self.assertEqual(r.returncode, 2)
        self.assertNotIn("secret-token-value", r.stderr)  # a bad header may hold a credential
        r = self.run_cli("mcp", url, "call", "echo", "[1]")
        self.assertEqual(r.returncode, 2)
        self.assertIn("must be a JSON object", r.stderr)


if __name__ == "__main__":
    unittest.main()
