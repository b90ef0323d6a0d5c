#!/usr/bin/python3
"""`mcpgate idp` with real clients: the lab's Python snippet, requests, MSAL Python (secret and
certificate), our own validator; discovery, JWKS, Entra-shaped errors, key rotation, secrets at rest."""
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

import msal
import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from idp import DOMAIN, MCPGATE, TENANT, Idp  # noqa: E402


def b64url_json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def decode(token):
    h, p, _ = token.split(".")
    return b64url_json(h), b64url_json(p)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

class IdpTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.idp = Idp()
        cls.idp.setup_lab()
        cls.idp.start()
        os.environ["REQUESTS_CA_BUNDLE"] = cls.idp.ca
        cls.token_url = f"{cls.idp.base}/{TENANT}/oauth2/v2.0/token"

    @classmethod
    def tearDownClass(cls):
        cls.idp.cleanup()

    def post(self, data=None, url=None, **kw):
        return requests.post(url or self.token_url, data=data, timeout=30, **kw)

    def creds(self, **extra):
        d = {"client_id": self.idp.client["appId"], "client_secret": self.idp.secret,
             "grant_type": "client_credentials", "scope": "api://mcp-api/.default"}
        d.update(extra)
        return {k: v for k, v in d.items() if v is not None}

    def token(self, **extra):
        r = self.post(self.creds(**extra))
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()

    TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$")
    GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

    def expect(self, r, status, error, code, text=None):
        self.assertEqual(r.status_code, status, r.text)
        body = r.json()
        self.assertEqual(body["error"], error, body)
        self.assertEqual(body["error_codes"], [code])
        self.assertTrue(body["error_description"].startswith(f"AADSTS{code}: "), body["error_description"])
        self.assertRegex(body["timestamp"], self.TIMESTAMP)
        self.assertRegex(body["trace_id"], self.GUID)
        self.assertRegex(body["correlation_id"], self.GUID)
        if text:
            self.assertIn(text, body["error_description"])
        return body

    def verify(self, token, *args):
        jwks_v2 = requests.get(f"{self.idp.base}/{TENANT}/discovery/v2.0/keys", timeout=30).text
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write(jwks_v2)
            f.flush()
            return subprocess.run([MCPGATE, "jwt", "verify", token, "--jwks", f.name, "--tenant", TENANT,
                                   "--authority", self.idp.base, "--json", *args], capture_output=True, text=True)


class LabAndTokens(IdpTestCase):
    def test_lab_snippet_unchanged_but_for_the_host(self):
        tenant_id, client_id, client_secret = TENANT, self.idp.client["appId"], self.idp.secret
        # The lab's Step 3 code as the lab prints it, with its values filled in and
        # login.microsoftonline.com replaced by the emulator.
        with open(os.path.join(ROOT, "testdata", "lab", "get_token.py")) as f:
            code = f.read()
        code = (code.replace("YOUR_TENANT_ID", tenant_id).replace("YOUR_CLIENT_ID", client_id)
                .replace("YOUR_CLIENT_SECRET", client_secret)
                .replace("https://login.microsoftonline.com/", f"https://localhost:{self.idp.port}/"))
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "get_token.py"), "w") as f:
                f.write(code)
            r = subprocess.run(["/usr/bin/python3", "get_token.py"], cwd=d, capture_output=True, text=True,
                               timeout=60, env={**os.environ, "REQUESTS_CA_BUNDLE": self.idp.ca})
            self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
            with open(os.path.join(d, "token.jwt")) as f:
                saved = f.read()
        header, claims = decode(saved)
        self.assertIn("nonce", header)  # Graph tokens carry a nonce header, as Entra's do
        self.assertEqual(claims["aud"], "https://graph.microsoft.com")
        self.assertEqual(claims["ver"], "1.0")
        self.assertEqual(claims["idtyp"], "app")
        self.assertEqual(claims["app_displayname"], "agent")
        # Plain verification fails as it does for Entra's Graph tokens; the Graph rule passes.
        r = self.verify(saved)
        self.assertEqual(json.loads(r.stdout)["reason"], "TokenSignatureInvalid", r.stdout)
        r = self.verify(saved, "--graph-nonce", "--client-id", self.idp.client["appId"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_v1_token_shape(self):
        now = time.time()
        body = self.token()
        self.assertEqual(set(body), {"token_type", "expires_in", "ext_expires_in", "access_token"})
        self.assertEqual(body["token_type"], "Bearer")
        self.assertTrue(3590 <= body["expires_in"] <= 3600)
        header, c = decode(body["access_token"])
        self.assertEqual(header["typ"], "JWT")
        self.assertEqual(header["alg"], "RS256")
        self.assertEqual(header["x5t"], header["kid"])
        self.assertEqual(c["aud"], "api://mcp-api")
        self.assertEqual(c["iss"], f"https://sts.windows.net/{TENANT}/")
        self.assertEqual(c["idp"], c["iss"])
        self.assertEqual(c["appid"], self.idp.client["appId"])
        self.assertEqual(c["appidacr"], "1")
        self.assertNotIn("azp", c)
        self.assertEqual(c["ver"], "1.0")
        self.assertEqual(c["roles"], ["Tools.Call"])
        self.assertEqual(c["oid"], self.idp.client["servicePrincipalId"])
        self.assertEqual(c["sub"], c["oid"])
        self.assertEqual(c["tid"], TENANT)
        self.assertEqual(c["iat"], c["nbf"])
        self.assertAlmostEqual(c["iat"], now - 300, delta=5)
        self.assertEqual(c["exp"] - c["iat"], 3900)
        self.assertRegex(c["uti"], r"^[A-Za-z0-9_-]{22}$")
        for claim in ("aio", "rh"):
            self.assertIn(claim, c)
        r = self.verify(body["access_token"], "--client-id", self.idp.client["appId"], "--audience", "api://mcp-api",
                        "--require-claim", "roles=Tools.Call")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_v2_token_shape(self):
        body = self.token(scope="api://mcp-api-v2/.default")
        header, c = decode(body["access_token"])
        self.assertNotIn("x5t", header)
        self.assertEqual(c["aud"], self.idp.api_v2["appId"])
        self.assertEqual(c["iss"], f"{self.idp.base}/{TENANT}/v2.0")
        self.assertEqual(c["azp"], self.idp.client["appId"])
        self.assertEqual(c["azpacr"], "1")
        self.assertNotIn("appid", c)
        self.assertEqual(c["ver"], "2.0")
        self.assertEqual(c["roles"], ["Tools.Call", "Tools.Read"])
        r = self.verify(body["access_token"], "--client-id", self.idp.client["appId"], "--audience",
                        self.idp.api_v2["appId"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(json.loads(r.stdout)["entra_version"], 2)

    def test_resource_by_app_id_and_trailing_slash(self):
        _, c = decode(self.token(scope=self.idp.api["appId"] + "/.default")["access_token"])
        self.assertEqual(c["aud"], self.idp.api["appId"])
        _, c = decode(self.token(scope="api://mcp-api//.default")["access_token"])
        self.assertEqual(c["aud"], "api://mcp-api/")

    def test_v1_endpoint_answers_strings(self):
        r = self.post({"client_id": self.idp.client["appId"], "client_secret": self.idp.secret,
                       "grant_type": "client_credentials", "resource": "api://mcp-api"},
                      url=f"{self.idp.base}/{TENANT}/oauth2/token")
        self.assertEqual(r.status_code, 200, r.text)
        body = r.json()
        for key in ("expires_in", "ext_expires_in", "expires_on", "not_before"):
            self.assertIsInstance(body[key], str)
            self.assertTrue(body[key].isdigit())
        self.assertEqual(body["resource"], "api://mcp-api")
        self.assertEqual(decode(body["access_token"])[1]["aud"], "api://mcp-api")

    def test_jwt_verify_fetches_keys_and_resolves_domains(self):
        v2 = self.token(scope="api://mcp-api-v2/.default")["access_token"]
        base = [MCPGATE, "jwt", "verify", v2, "--json"]
        # Domain tenant: resolved to its GUID by discovery, keys from the tenant's jwks_uri.
        r = subprocess.run(base + ["--tenant", DOMAIN, "--authority", self.idp.base, "--ca-file", self.idp.ca],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # validate-jwt style: keys and the required issuer from an OpenID configuration URL.
        config = f"{self.idp.base}/{TENANT}/v2.0/.well-known/openid-configuration"
        r = subprocess.run(base + ["--openid-config", config, "--ca-file", self.idp.ca], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        v1 = self.token()["access_token"]  # its issuer is sts.windows.net, not the v2 document's
        r = subprocess.run([MCPGATE, "jwt", "verify", v1, "--json", "--openid-config", config, "--ca-file", self.idp.ca],
                           capture_output=True, text=True)
        self.assertEqual(json.loads(r.stdout)["reason"], "TokenIssuerNotAllowed")
        # Without trusting the emulator's CA the fetch fails closed.
        r = subprocess.run(base + ["--jwks-url", f"{self.idp.base}/{TENANT}/discovery/v2.0/keys"],
                           capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("certificate verify failed", r.stderr)

    def test_no_roles_claim_without_assignment(self):
        r = self.post({"client_id": self.idp.other["appId"], "client_secret": self.idp.other_secret,
                       "grant_type": "client_credentials", "scope": "api://mcp-api/.default"})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertNotIn("roles", decode(r.json()["access_token"])[1])

    def test_domain_tenant_in_any_case(self):
        r = self.post(self.creds(), url=f"{self.idp.base}/Contoso.OnMicrosoft.COM/oauth2/v2.0/token")
        self.assertEqual(r.status_code, 200, r.text)
        c = decode(r.json()["access_token"])[1]
        self.assertEqual(c["tid"], TENANT)

    def test_basic_auth_and_msal_extras(self):
        secret = self.idp.secret
        basic = base64.b64encode(f"{self.idp.client['appId']}:{requests.utils.quote(secret, safe='')}".encode()).decode()
        extras = {"grant_type": "client_credentials", "scope": "api://mcp-api/.default", "client_info": "1",
                  "x-client-SKU": "msal.js.node", "x-client-VER": "7.2.3", "claims": "{}",
                  "client-request-id": str(uuid.uuid4())}
        r = self.post(extras, headers={"Authorization": "Basic " + basic})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.headers["Cache-Control"], "no-store, no-cache")
        self.assertTrue(r.headers["Content-Type"].startswith("application/json"))
        self.assertNotIn("Retry-After", r.headers)


class Discovery(IdpTestCase):
    def get(self, path):
        return requests.get(self.idp.base + path, timeout=30)

    def test_v2_tenant_document(self):
        d = self.get(f"/{TENANT}/v2.0/.well-known/openid-configuration").json()
        self.assertEqual(d["issuer"], f"{self.idp.base}/{TENANT}/v2.0")
        self.assertEqual(d["token_endpoint"], f"{self.idp.base}/{TENANT}/oauth2/v2.0/token")
        self.assertEqual(d["jwks_uri"], f"{self.idp.base}/{TENANT}/discovery/v2.0/keys")
        self.assertIn("authorization_endpoint", d)
        self.assertTrue({"client_secret_post", "private_key_jwt", "client_secret_basic"}
                        <= set(d["token_endpoint_auth_methods_supported"]))
        self.assertEqual(d["id_token_signing_alg_values_supported"], ["RS256"])
        by_domain = self.get(f"/{DOMAIN.upper()}/v2.0/.well-known/openid-configuration").json()
        self.assertEqual(by_domain["issuer"], d["issuer"])

    def test_common_and_v1_documents(self):
        d = self.get("/common/v2.0/.well-known/openid-configuration").json()
        self.assertEqual(d["issuer"], f"{self.idp.base}/{{tenantid}}/v2.0")
        self.assertTrue(d["token_endpoint"].startswith(f"{self.idp.base}/common/"))
        self.assertIsNone(d["tenant_region_scope"])
        v1 = self.get(f"/{TENANT}/.well-known/openid-configuration").json()
        self.assertEqual(v1["issuer"], f"https://sts.windows.net/{TENANT}/")
        self.assertEqual(v1["token_endpoint"], f"{self.idp.base}/{TENANT}/oauth2/token")
        self.assertEqual(v1["jwks_uri"], f"{self.idp.base}/common/discovery/keys")

    def test_unknown_tenant(self):
        r = self.get(f"/{uuid.uuid4()}/v2.0/.well-known/openid-configuration")
        self.assertEqual(r.status_code, 400)
        self.assertEqual(r.json()["error"], "invalid_tenant")
        self.assertEqual(r.json()["error_codes"], [90002])

    def test_keys(self):
        keys = self.get(f"/{TENANT}/discovery/v2.0/keys").json()["keys"]
        self.assertGreaterEqual(len(keys), 2)
        for k in keys:
            self.assertEqual((k["kty"], k["use"], k["e"]), ("RSA", "sig", "AQAB"))
            der = base64.b64decode(k["x5c"][0])
            self.assertEqual(k["kid"], b64url(hashlib.sha1(der).digest()))
            self.assertEqual(k["x5t"], k["kid"])
            self.assertEqual(k["issuer"], f"{self.idp.base}/{TENANT}/v2.0")
        common = self.get("/common/discovery/v2.0/keys").json()["keys"]
        self.assertEqual(common[0]["issuer"], f"{self.idp.base}/{{tenantid}}/v2.0")
        self.assertNotIn("issuer", self.get("/common/discovery/keys").json()["keys"][0])

    def test_instance_discovery(self):
        for version, endpoint in (("1.1", f"{self.idp.base}/{TENANT}/oauth2/v2.0/authorize"),
                                  ("1.0", f"https://localhost/{TENANT}/oauth2/v2.0/authorize")):
            r = requests.get(f"{self.idp.base}/common/discovery/instance",
                             params={"api-version": version, "authorization_endpoint": endpoint}, timeout=30)
            self.assertEqual(r.status_code, 200, r.text)
            d = r.json()
            self.assertEqual(d["tenant_discovery_endpoint"],
                             f"{self.idp.base}/{TENANT}/v2.0/.well-known/openid-configuration")
            self.assertIn(f"localhost:{self.idp.port}", d["metadata"][0]["aliases"])
        r = requests.get(f"{self.idp.base}/common/discovery/instance",
                         params={"api-version": "1.1", "authorization_endpoint": f"https://evil.example/{TENANT}/oauth2/v2.0/authorize"},
                         timeout=30)
        self.assertEqual(r.status_code, 400)
        self.assertEqual((r.json()["error"], r.json()["error_codes"]), ("invalid_instance", [50049]))


class Errors(IdpTestCase):
    def at(self, tenant, v2=True):
        return f"{self.idp.base}/{tenant}/oauth2/{'v2.0/' if v2 else ''}token"

    def test_tenants(self):
        self.expect(self.post(self.creds(), url=self.at(uuid.uuid4())), 400, "invalid_request", 90002, "not found")
        self.expect(self.post(self.creds(), url=self.at("not_a_domain!")), 400, "invalid_request", 900023)
        self.expect(self.post(self.creds(), url=self.at("common")), 400, "invalid_request", 9001023)
        self.expect(self.post(self.creds(), url=self.at("consumers")), 400, "invalid_request", 9001023)
        self.expect(self.post(self.creds(), url=self.at("organizations")), 400, "invalid_request", 50059)

    def test_clients_and_secrets(self):
        unknown = str(uuid.uuid4())
        body = self.expect(self.post(self.creds(client_id=unknown)), 400, "unauthorized_client", 700016)
        self.assertIn(unknown, body["error_description"])
        self.assertIn("Contoso", body["error_description"])
        self.expect(self.post(self.creds(client_secret="wrong")), 401, "invalid_client", 7000215,
                    f"for a secret added to app '{self.idp.client['appId']}'")
        self.expect(self.post(self.creds(client_secret=None)), 401, "invalid_client", 7000218)
        self.expect(self.post(self.creds(client_id=None)), 400, "invalid_request", 900144, "'client_id'")
        expired = self.idp.cli("secret", "add", "--app", self.idp.other["appId"], "--expires-in", "-60")["secretText"]
        self.expect(self.post(self.creds(client_id=self.idp.other["appId"], client_secret=expired)), 401,
                    "invalid_client", 7000222)
        basic = base64.b64encode(f"{self.idp.other['appId']}:x".encode()).decode()
        self.expect(self.post(self.creds(), headers={"Authorization": "Basic " + basic}), 401, "invalid_client", 50012)

    def test_request_shape(self):
        self.expect(self.post(self.creds(grant_type=None)), 400, "invalid_request", 900144, "'grant_type'")
        self.expect(self.post(json=self.creds()), 400, "invalid_request", 900144, "'grant_type'")
        self.expect(self.post(self.creds(grant_type="password")), 400, "unsupported_grant_type", 70003,
                    "unsupported grant type 'password'")
        self.expect(requests.get(self.token_url, timeout=30), 400, "invalid_request", 900561)
        self.expect(self.post("client_id=%zz&grant_type=client_credentials",
                              headers={"Content-Type": "application/x-www-form-urlencoded"}), 400, "invalid_request", 900144)

    def test_scopes_and_resources(self):
        self.expect(self.post(self.creds(scope="api://mcp-api/read")), 400, "invalid_scope", 1002012)
        self.expect(self.post(self.creds(scope="openid")), 400, "invalid_scope", 1002012)
        self.expect(self.post(self.creds(scope=None)), 400, "invalid_request", 90014)
        self.expect(self.post(self.creds(scope="api://unknown/.default")), 400, "invalid_resource", 500011)
        self.expect(self.post(self.creds(scope="api://mcp-api/.default api://mcp-api-v2/.default")), 400,
                    "invalid_scope", 700022)
        self.expect(self.post(self.creds(scope=None, resource="api://mcp-api")), 400, "invalid_request", 901002)
        self.expect(self.post(self.creds(resource="api://mcp-api")), 400, "invalid_target", 9010010)
        self.expect(self.post(self.creds(scope="api://locked/.default")), 400, "invalid_grant", 501051)
        self.expect(self.post({"client_id": self.idp.client["appId"], "client_secret": self.idp.secret,
                               "grant_type": "client_credentials"}, url=self.at(TENANT, v2=False)),
                    400, "invalid_request", 900144, "'resource'")

    def test_correlation_id_echoes_client_request_id(self):
        rid = str(uuid.uuid4())
        body = self.expect(self.post(self.creds(client_secret="wrong"), headers={"client-request-id": rid}), 401,
                           "invalid_client", 7000215)
        self.assertEqual(body["correlation_id"], rid)
        self.assertEqual(body["error_uri"], f"{self.idp.base}/error?code=7000215")


class Certificates(IdpTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.key = os.path.join(cls.tmp.name, "client.key")
        cls.cert = os.path.join(cls.tmp.name, "client.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", cls.key, "-out", cls.cert,
                        "-subj", "/CN=agent", "-days", "30"], check=True, capture_output=True)
        cls.idp.cli("certificate", "add", "--app", cls.idp.client["appId"], "--cert", cls.cert)
        der = subprocess.run(["openssl", "x509", "-in", cls.cert, "-outform", "DER"], check=True, capture_output=True).stdout
        cls.sha1 = hashlib.sha1(der).digest()
        cls.sha256 = hashlib.sha256(der).digest()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def assertion(self, header, **claims):
        now = int(time.time())
        c = {"aud": self.token_url, "iss": self.idp.client["appId"], "sub": self.idp.client["appId"],
             "jti": str(uuid.uuid4()), "nbf": now, "iat": now, "exp": now + 600}
        c.update(claims)
        c = {k: v for k, v in c.items() if v is not None}
        alg = header.pop("alg", "RS256")
        r = subprocess.run([MCPGATE, "jwt", "sign", "--key", self.key, "--alg", alg, "--header", json.dumps(header),
                            "--claims", json.dumps(c)], capture_output=True, text=True, check=True)
        return r.stdout.strip()

    def with_assertion(self, assertion):
        return self.post({"client_id": self.idp.client["appId"], "grant_type": "client_credentials",
                          "scope": "api://mcp-api-v2/.default", "client_assertion": assertion,
                          "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})

    def test_msal_python_with_certificate(self):
        with open(self.key) as k, open(self.cert) as c:
            credential = {"private_key": k.read(), "thumbprint": self.sha1.hex(), "public_certificate": c.read()}
        app = msal.ConfidentialClientApplication(
            self.idp.client["appId"], authority=f"{self.idp.base}/{TENANT}", instance_discovery=False,
            client_credential=credential)
        result = app.acquire_token_for_client(scopes=["api://mcp-api-v2/.default"])
        self.assertIn("access_token", result, result)
        c = decode(result["access_token"])[1]
        self.assertEqual(c["azpacr"], "2")

    def test_msal_node_style_ps256_x5t_s256_reused(self):
        a = self.assertion({"alg": "PS256", "typ": "JWT", "x5t#S256": b64url(self.sha256)},
                           aud=f"{self.idp.base}/{DOMAIN}/oauth2/v2.0/token")
        for _ in range(2):  # MSAL re-sends the same assertion (same jti); Entra accepts it
            r = self.with_assertion(a)
            self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(decode(r.json()["access_token"])[1]["azpacr"], "2")

    def test_assertion_errors(self):
        e = self.expect
        e(self.with_assertion(self.assertion({"typ": "JWT"})), 401, "invalid_client", 50027, "No certificate thumbprint")
        e(self.with_assertion(self.assertion({"x5t": b64url(b"\x01" * 20)})), 401, "invalid_client", 700027,
          "The key was not found")
        e(self.with_assertion(self.assertion({"x5t": b64url(self.sha1)}, exp=int(time.time()) - 900)), 401,
          "invalid_client", 700024)
        e(self.with_assertion(self.assertion({"x5t": b64url(self.sha1)}, aud=f"{self.idp.base}/{uuid.uuid4()}/oauth2/v2.0/token")),
          401, "invalid_client", 50012)
        e(self.with_assertion(self.assertion({"x5t": b64url(self.sha1)}, iss=str(uuid.uuid4()))), 401,
          "invalid_client", 700021)
        other = os.path.join(self.tmp.name, "other.key")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", other], check=True, capture_output=True)
        forged = subprocess.run([MCPGATE, "jwt", "sign", "--key", other, "--header", json.dumps({"x5t": b64url(self.sha1)}),
                                 "--claims", json.dumps({"aud": self.token_url, "iss": self.idp.client["appId"],
                                                         "sub": self.idp.client["appId"], "exp": int(time.time()) + 600})],
                                capture_output=True, text=True, check=True).stdout.strip()
        e(self.with_assertion(forged), 401, "invalid_client", 700027, "did not match")


class MsalPython(IdpTestCase):
    def test_secret(self):
        app = msal.ConfidentialClientApplication(self.idp.client["appId"], client_credential=self.idp.secret,
                                                 authority=f"{self.idp.base}/{TENANT}", instance_discovery=False)
        result = app.acquire_token_for_client(scopes=["api://mcp-api/.default"])
        self.assertIn("access_token", result, result)
        r = self.verify(result["access_token"], "--client-id", self.idp.client["appId"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        bad = msal.ConfidentialClientApplication(self.idp.client["appId"], client_credential="nope",
                                                 authority=f"{self.idp.base}/{TENANT}", instance_discovery=False)
        result = bad.acquire_token_for_client(scopes=["api://mcp-api/.default"])
        self.assertEqual(result.get("error"), "invalid_client")
        self.assertEqual(result.get("error_codes"), [7000215])


class RotationAndSecrets(IdpTestCase):
    def test_rotation_keeps_old_tokens_valid_while_published(self):
        before = self.token()["access_token"]
        old_kid = decode(before)[0]["kid"]
        self.idp.cli("keys", "rotate")  # the CLI writes while the server runs
        after = self.token()["access_token"]
        new_kid = decode(after)[0]["kid"]
        self.assertNotEqual(old_kid, new_kid)
        for token in (before, after):
            r = self.verify(token)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.idp.cli("keys", "retire", "--kid", old_kid)
        r = self.verify(before)
        self.assertEqual(json.loads(r.stdout)["reason"], "TokenSignatureKeyNotFound")
        self.assertEqual(self.verify(after).returncode, 0)
        r = self.idp.cli("keys", "retire", "--kid", new_kid, check=False)

    def test_secrets_never_in_logs_or_database(self):
        self.token()
        self.post(self.creds(client_secret="wrong-" + self.idp.secret))
        logs = self.idp.logs()
        self.assertIn("oauth2/v2.0/token 200", logs)
        self.assertNotIn(self.idp.secret, logs)
        for name in os.listdir(self.idp.data):
            with open(os.path.join(self.idp.data, name), "rb") as f:
                content = f.read()
            for secret in (self.idp.secret, self.idp.other_secret):
                self.assertNotIn(secret.encode(), content, name)
        listed = self.idp.cli("secret", "list", "--app", self.idp.client["appId"])
        self.assertEqual(listed[0]["hint"], self.idp.secret[:3])
        self.assertNotIn("secretText", listed[0])


class AdminCli(unittest.TestCase):
    """Bad arguments to the admin CLI get a clear message and exit 2."""

    def test_errors(self):
        idp = Idp()
        try:
            def fails(args, text):
                r = subprocess.run([MCPGATE, "idp", "--data", idp.data, *args], capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn(text, r.stderr)

            fails(["app", "create", "--name", "x"], "no tenant yet")
            idp.cli("tenant", "create", "--domain", "contoso.onmicrosoft.com")
            idp.cli("tenant", "create", "--domain", "fabrikam.onmicrosoft.com")
            fails(["app", "create", "--name", "x"], "several tenants")
            fails(["tenant", "create", "--id", "nope"], "not a GUID")
            fails(["tenant", "create", "--domain", "contoso.onmicrosoft.com"], "already belongs")
            fails(["app", "create", "--tenant", "unknown.example", "--name", "x"], "no tenant")
            fails(["app", "create", "--tenant", "contoso.onmicrosoft.com", "--name", "x", "--identifier-uri", "no uri"],
                  "is not a URI")
            fails(["secret", "add", "--tenant", "contoso.onmicrosoft.com", "--app", str(uuid.uuid4())], "no application")
            app = idp.cli("app", "create", "--tenant", "contoso.onmicrosoft.com", "--name", "api")
            fails(["role", "add", "--tenant", "contoso.onmicrosoft.com", "--app", app["appId"], "--value", "two words"],
                  "one word")
            fails(["role", "grant", "--tenant", "contoso.onmicrosoft.com", "--client", app["appId"], "--resource",
                   app["appId"], "--role", "Missing"], "no app role")
            with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
                f.write("not a certificate")
                f.flush()
                fails(["certificate", "add", "--tenant", "contoso.onmicrosoft.com", "--app", app["appId"], "--cert", f.name],
                      "not a PEM certificate")
            r = subprocess.run([MCPGATE, "idp", "--data", idp.data, "app", "create", "--name", "x",
                                "--access-token-version", "3"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 2)
        finally:
            idp.cleanup()


class ServerBounds(unittest.TestCase):
    """The HTTP server under the emulator (src/net, shared with the gateway): bounds and framing."""

    @classmethod
    def setUpClass(cls):
        cls.idp = Idp(extra_args=["--http-listen", "127.0.0.1:0"])
        cls.idp.cli("tenant", "create", "--id", TENANT)
        cls.idp.start()

    @classmethod
    def tearDownClass(cls):
        cls.idp.cleanup()

    def raw(self, data, tls=True):
        import socket
        import ssl
        sock = socket.create_connection(("127.0.0.1", self.idp.port if tls else int(self.idp.http_base.rsplit(":", 1)[1])),
                                        timeout=20)
        if tls:
            ctx = ssl.create_default_context(cafile=self.idp.ca)
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        with sock:
            sock.sendall(data)
            chunks = []
            while True:
                try:
                    chunk = sock.recv(65536)
                except (ConnectionResetError, ssl.SSLError):
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)

    def test_plain_http_listener(self):
        r = requests.get(f"{self.idp.http_base}/{TENANT}/v2.0/.well-known/openid-configuration", timeout=30)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.json()["issuer"], f"{self.idp.http_base}/{TENANT}/v2.0")

    def test_keep_alive_serves_several_requests(self):
        req = f"GET /{TENANT}/discovery/v2.0/keys HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
        out = self.raw(req + req + req.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        self.assertEqual(out.count(b"HTTP/1.1 200 OK"), 3)

    def test_header_too_large_is_431(self):
        out = self.raw(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 431"), out[:100])
        self.assertIn(b'"statusCode":431', out)

    def test_body_too_large_is_413(self):
        body = b"a" * (70 * 1024)
        out = self.raw(b"POST /" + TENANT.encode() + b"/oauth2/v2.0/token HTTP/1.1\r\nHost: localhost\r\n"
                       b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
                       str(len(body)).encode() + b"\r\n\r\n" + body)
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out[:100])

    def test_garbage_is_400_and_closed(self):
        out = self.raw(b"NOT HTTP AT ALL\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:100])
        out = self.raw(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:100])

    def test_unknown_path_and_method(self):
        r = requests.get(f"{self.idp.base}/nothing/here", timeout=30, verify=self.idp.ca)
        self.assertEqual(r.status_code, 404)
        self.assertEqual(r.json()["error"], "not_found")
        r = requests.delete(f"{self.idp.base}/{TENANT}/discovery/v2.0/keys", timeout=30, verify=self.idp.ca)
        self.assertEqual(r.status_code, 405)
        r = requests.post(f"{self.idp.base}/nothing/here", timeout=30, verify=self.idp.ca)
        self.assertEqual(r.status_code, 404)


if __name__ == "__main__":
    unittest.main(verbosity=2)
