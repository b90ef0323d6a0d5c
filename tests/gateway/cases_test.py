#!/usr/bin/python3
"""apim-policies.md §7 cases against the real `mcpgate gateway`, with tokens from the real
emulator (`mcpgate idp`, client-credentials flow) where a token is involved and PyJWT where the
token must have a shape the emulator does not issue. Everything on 127.0.0.1.

Cases covered (one test method each, named after the case):
   6  a token of another tenant U, correctly signed by the emulator, against a policy for tenant T
   7  tenant-id="organizations" / "common" with tokens from tenant U and from the personal-account
      (MSA) tenant 9188040d-6c67-4c5b-b112-36a304b66dad (created in the emulator with that id)
   9  <audience>api://A</audience> against a v2 token, whose aud is A's client id
  12  <claim name="scp" separator=" " match="all"> (validate-jwt, inline HS256 key: client-credentials
      tokens carry roles, not scp)
  13  a required claim the token does not have
  14  exp one second ago and nbf ten minutes ahead (validate-jwt); an emulator token issued already
      expired (--token-lifetime -1) against validate-azure-ad-token
  19  a Microsoft Graph token (nonce in its header) against an audiences-only
      validate-azure-ad-token and against validate-jwt
  33  validate-jwt with two inline RSA keys (n, e): a token naming k2, and one naming an unknown kid
  34  header-name="XX-Authorization" require-scheme="Bearer": the scheme is not stripped
  37  an ES384 token with a matching P-384 key: validate-jwt's inline keys take only symmetric and
      RSA keys, so the EC keys come from an openid-config served over http by this test
  53  a passthrough MCP API: initialize forwarded to the backend path, Mcp-Session-Id relayed, an
      event-stream answer relayed event by event
  54  a global inbound policy and an API inbound policy with <base/> first: the global one runs first
  23  authentication-endpoint="login.microsoftonline.us": the gateway's entra.hosts serves that
      authority from a second emulator on 127.0.0.1 (its certificate names the host)
"""
import base64
import json
import os
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt as pyjwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from fake_upstream import FakeUpstream  # noqa: E402
from gateway import Gateway, eventually  # noqa: E402
from idp import TENANT, Idp  # noqa: E402

MSA_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
HS_SECRET = b"a-case-test-hs256-secret-32-bytes"
ES_ISSUER = "https://es-issuer.example"
SESSION_ID = "backend-session-4f2a"
INVALID = '{ "statusCode": 401, "message": "Invalid JWT." }'


def b64url_int(value, size=None):
    raw = value.to_bytes(size or (value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rsa_n_e(key):
    numbers = key.public_key().public_numbers()
    return b64url_int(numbers.n), b64url_int(numbers.e)


def ec_jwk(key, kid, crv, size):
    numbers = key.public_key().public_numbers()
    return {"kty": "EC", "crv": crv, "kid": kid, "use": "sig",
            "x": b64url_int(numbers.x, size), "y": b64url_int(numbers.y, size)}


RSA_K1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_K2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_K3 = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not in the policy
EC_P384 = ec.generate_private_key(ec.SECP384R1())
EC_P256 = ec.generate_private_key(ec.SECP256R1())

HS_KEYS = '<issuer-signing-keys><key>{{hs-key}}</key></issuer-signing-keys>'

GLOBAL_POLICY = """<policies>
  <inbound><set-header name="X-Order" exists-action="append"><value>g</value></set-header></inbound>
  <backend><forward-request/></backend>
</policies>"""

POLICIES = {
    # 6: tenant T, and a client id that U's client has, so that only the tenant can refuse it.
    "tenant-t": """<policies><inbound><base/>
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}">
    <client-application-ids><application-id>{{u-client-id}}</application-id></client-application-ids>
  </validate-azure-ad-token>
</inbound></policies>""",
    "tenant-u": """<policies><inbound><base/>
  <validate-azure-ad-token tenant-id="{{u-tenant-id}}">
    <client-application-ids><application-id>{{u-client-id}}</application-id></client-application-ids>
  </validate-azure-ad-token>
</inbound></policies>""",
    # 7
    "organizations": """<policies><inbound><base/>
  <validate-azure-ad-token tenant-id="organizations">
    <audiences><audience>{{u-api-id}}</audience><audience>{{msa-api-id}}</audience></audiences>
  </validate-azure-ad-token>
</inbound></policies>""",
    "common": """<policies><inbound><base/>
  <validate-azure-ad-token tenant-id="common">
    <audiences><audience>{{u-api-id}}</audience><audience>{{msa-api-id}}</audience></audiences>
  </validate-azure-ad-token>
</inbound></policies>""",
    # 9: App ID URIs only; a v2 token's aud is the client id.
    "aud-uri": """<policies><inbound><base/>
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}">
    <audiences><audience>api://mcp-api-v2</audience><audience>api://mcp-api</audience></audiences>
  </validate-azure-ad-token>
</inbound></policies>""",
    # 12
    "scp": """<policies><inbound><base/>
  <validate-jwt header-name="Authorization" require-scheme="Bearer">
    """ + HS_KEYS + """
    <required-claims><claim name="scp" separator=" " match="all"><value>mcp.invoke</value></claim></required-claims>
  </validate-jwt>
</inbound></policies>""",
    # 13
    "ctry-aad": """<policies><inbound><base/>
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}">
    <client-application-ids><application-id>{{aad-client-application-id}}</application-id></client-application-ids>
    <required-claims><claim name="ctry"><value>US</value></claim></required-claims>
  </validate-azure-ad-token>
</inbound></policies>""",
    "ctry-jwt": """<policies><inbound><base/>
  <validate-jwt header-name="Authorization">
    """ + HS_KEYS + """
    <required-claims><claim name="ctry"><value>US</value></claim></required-claims>
  </validate-jwt>
</inbound></policies>""",
    # 14 (and the HS256 baseline)
    "hs": """<policies><inbound><base/>
  <validate-jwt header-name="Authorization">""" + HS_KEYS + """</validate-jwt>
</inbound></policies>""",
    "lab": """<policies><inbound><base/>
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}">
    <client-application-ids><application-id>{{aad-client-application-id}}</application-id></client-application-ids>
  </validate-azure-ad-token>
</inbound></policies>""",
    # 19: policy 8 (audiences only), and validate-jwt trusting the tenant's v1 keys and issuer.
    "graph-aad": """<policies><inbound><base/>
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}">
    <audiences><audience>{{api-v2-id}}</audience></audiences>
  </validate-azure-ad-token>
</inbound></policies>""",
    "graph-jwt": """<policies><inbound><base/>
  <validate-jwt header-name="Authorization">
    <openid-config url="{{authority}}/{{aad-tenant-id}}/.well-known/openid-configuration"/>
  </validate-jwt>
</inbound></policies>""",
    # 33
    "rsa": """<policies><inbound><base/>
  <validate-jwt header-name="Authorization" require-scheme="Bearer">
    <issuer-signing-keys>
      <key id="k1" n="{{k1-n}}" e="{{k1-e}}"/>
      <key id="k2" n="{{k2-n}}" e="{{k2-e}}"/>
    </issuer-signing-keys>
  </validate-jwt>
</inbound></policies>""",
    # 34
    "xx": """<policies><inbound><base/>
  <validate-jwt header-name="XX-Authorization" require-scheme="Bearer">""" + HS_KEYS + """</validate-jwt>
</inbound></policies>""",
    # 37: P-384 and P-256 keys from an OpenID configuration served by the test.
    "es": """<policies><inbound><base/>
  <validate-jwt header-name="Authorization">
    <openid-config url="{{es-config}}"/>
  </validate-jwt>
</inbound></policies>""",
    # 54: <base/> first, and (to show the order follows it) <base/> last.
    "order-first": """<policies>
  <inbound><base/><set-header name="X-Order" exists-action="append"><value>a</value></set-header></inbound>
  <backend><base/></backend><outbound><base/></outbound><on-error><base/></on-error>
</policies>""",
    "order-last": """<policies>
  <inbound><set-header name="X-Order" exists-action="append"><value>a</value></set-header><base/></inbound>
  <backend><base/></backend><outbound><base/></outbound><on-error><base/></on-error>
</policies>""",
}
MCP_APIS = {"order-first", "order-last"}


class LocalServer:
    """Plain-HTTP peer on 127.0.0.1 for what FakeUpstream cannot do: fixed JSON documents (an
    OpenID configuration and its JWKS) and a Streamable HTTP MCP endpoint that sets
    Mcp-Session-Id and answers `initialize` with an event stream it holds open until released."""

    def __init__(self):
        self.documents = {}
        self.mcp_requests = []
        self.release = threading.Event()
        self.released_in_time = None  # False: nobody released the stream, it went on by timeout
        self.closed_at = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                doc = server.documents.get(self.path)
                data = json.dumps(doc).encode() if doc is not None else b"{}"
                self.send_response(200 if doc is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def chunk(self, data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                message = json.loads(body)
                server.mcp_requests.append({"path": self.path, "message": message,
                                            "headers": dict(self.headers.items())})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Mcp-Session-Id", SESSION_ID)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                # A notification first, then silence until the test has seen it, then the answer.
                note = {"jsonrpc": "2.0", "method": "notifications/message",
                        "params": {"level": "info", "data": "starting"}}
                self.chunk(b"event: message\ndata: " + json.dumps(note).encode() + b"\n\n")
                server.released_in_time = server.release.wait(5)
                result = {"jsonrpc": "2.0", "id": message.get("id"),
                          "result": {"protocolVersion": "2025-06-18", "capabilities": {},
                                     "serverInfo": {"name": "stub", "version": "1"}}}
                self.chunk(b"event: message\ndata: " + json.dumps(result).encode() + b"\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                server.closed_at = time.time()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class ApimCases(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.idp = Idp().start()
        cls.up = FakeUpstream()
        cls.local = LocalServer()
        cls.dir = tempfile.TemporaryDirectory()
        cls.gw = None
        try:
            cls.start_rest()
        except BaseException:
            cls.tearDownClass()  # tearDownClass does not run when setUpClass fails
            raise

    @classmethod
    def tenant(cls, name, tenant_id=None):
        """A tenant with a v2 API app and a client app with a secret, made with the admin CLI."""
        args = ["tenant", "create", "--name", name] + (["--id", tenant_id] if tenant_id else [])
        tid = cls.idp.cli(*args)["id"]
        api = cls.idp.cli("app", "create", "--tenant", tid, "--name", name + "-api",
                          "--identifier-uri", f"api://{name}-api", "--access-token-version", "2")
        client = cls.idp.cli("app", "create", "--tenant", tid, "--name", name + "-agent")
        secret = cls.idp.cli("secret", "add", "--tenant", tid, "--app", client["appId"])["secretText"]
        return {"id": tid, "api": api["appId"], "scope": f"api://{name}-api", "client": client["appId"],
                "secret": secret}

    @classmethod
    def start_rest(cls):
        cls.idp.setup_lab()  # tenant T (the lab's), before the others: its CLI calls name no tenant
        cls.u = cls.tenant("fabrikam")
        cls.msa = cls.tenant("msa", MSA_TENANT)
        cls.authority = f"https://127.0.0.1:{cls.idp.port}"

        cls.local.documents["/es/.well-known/openid-configuration"] = {
            "issuer": ES_ISSUER, "jwks_uri": cls.local.url + "/es/keys"}
        cls.local.documents["/es/keys"] = {"keys": [ec_jwk(EC_P384, "es384", "P-384", 48),
                                                    ec_jwk(EC_P256, "es256", "P-256", 32)]}

        def write(name, text):
            path = os.path.join(cls.dir.name, name + ".xml")
            with open(path, "w") as f:
                f.write(text)
            return path

        apis = [f"  - {{name: {n}, path: /{n}, backend: fake, strip_prefix: true, "
                f"type: {'mcp' if n in MCP_APIS else 'http'}, policy: {write(n, text)}}}"
                for n, text in POLICIES.items()]
        apis.append("  - {name: mcp, path: /mcp, type: mcp, backend: stub}")  # 53: no prefix stripped
        k1_n, k1_e = rsa_n_e(RSA_K1)
        k2_n, k2_e = rsa_n_e(RSA_K2)
        nl = "\n"
        config = f"""
listeners: [{{port: 0}}]
entra: {{authority: "{cls.authority}", ca_file: "{cls.idp.ca}"}}
policy: {write("global", GLOBAL_POLICY)}
named_values:
  aad-tenant-id: {TENANT}
  aad-client-application-id: {cls.idp.client["appId"]}
  api-v2-id: {cls.idp.api_v2["appId"]}
  u-tenant-id: {cls.u["id"]}
  u-client-id: {cls.u["client"]}
  u-api-id: {cls.u["api"]}
  msa-api-id: {cls.msa["api"]}
  authority: "{cls.authority}"
  hs-key: {{value: "{base64.b64encode(HS_SECRET).decode()}", secret: true}}
  k1-n: "{k1_n}"
  k1-e: "{k1_e}"
  k2-n: "{k2_n}"
  k2-e: "{k2_e}"
  es-config: "{cls.local.url}/es/.well-known/openid-configuration"
backends:
  fake: {{url: "{cls.up.url}"}}
  stub: {{url: "{cls.local.url}/svc"}}
apis:
{nl.join(apis)}
"""
        cls.gw = Gateway(config).start()

    @classmethod
    def tearDownClass(cls):
        if cls.gw:
            cls.gw.cleanup()
        cls.local.stop()
        cls.up.stop()
        cls.idp.cleanup()
        cls.dir.cleanup()

    # -- helpers ------------------------------------------------------------------------------

    def token(self, scope, tenant=TENANT, client=None, secret=None, authority=None):
        """An access token from the emulator's v2 token endpoint (client credentials)."""
        r = requests.post(f"{authority or self.authority}/{tenant}/oauth2/v2.0/token", verify=self.idp.ca,
                          timeout=30, data={"grant_type": "client_credentials", "scope": scope + "/.default",
                                            "client_id": client or self.idp.client["appId"],
                                            "client_secret": secret or self.idp.secret})
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()["access_token"]

    def tenant_token(self, t):
        return self.token(t["scope"], tenant=t["id"], client=t["client"], secret=t["secret"])

    @staticmethod
    def hs(claims):
        return pyjwt.encode(claims, HS_SECRET, algorithm="HS256")

    def call(self, api, token=None, headers=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        return requests.get(f"{self.gw.url}/{api}/json", headers=h, timeout=30)

    def log_line(self, response):
        rid = response.headers["X-Request-Id"]
        return eventually(lambda: next((l for l in self.gw.access_log() if l["request_id"] == rid), None))

    def assert_passes(self, response):
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.headers.get("X-Upstream"), "fake")  # the backend answered

    def assert_refused(self, response, reason=None, detail=None):
        """APIM's 401 for an invalid token, byte for byte; the access log names the reason."""
        self.assertEqual((response.status_code, response.text), (401, INVALID))
        self.assertTrue(response.headers["Content-Type"].startswith("application/json"))
        error = self.log_line(response).get("error", "")
        if reason:
            self.assertIn(": " + reason + ":", error)
        if detail:
            self.assertIn(detail, error)

    # -- validate-azure-ad-token --------------------------------------------------------------

    def test_case_06_token_from_another_tenant(self):
        token = self.tenant_token(self.u)
        claims = pyjwt.decode(token, options={"verify_signature": False})
        self.assertEqual((claims["tid"], claims["ver"]), (self.u["id"], "2.0"))
        self.assert_passes(self.call("tenant-u", token))  # signed well, right client: only T differs
        self.assert_refused(self.call("tenant-t", token), "TokenIssuerNotAllowed")

    def test_case_07_organizations_and_common(self):
        u_token = self.tenant_token(self.u)
        msa_token = self.tenant_token(self.msa)
        msa_claims = pyjwt.decode(msa_token, options={"verify_signature": False})
        self.assertEqual(msa_claims["tid"], MSA_TENANT)
        self.assertEqual(msa_claims["iss"], f"{self.authority}/{MSA_TENANT}/v2.0")
        self.assert_passes(self.call("organizations", u_token))
        self.assert_refused(self.call("organizations", msa_token), "TokenIssuerNotAllowed")
        self.assert_passes(self.call("common", msa_token))
        self.assert_passes(self.call("common", u_token))
        # Validated once under common, the token is in the verified-token cache: organizations must
        # still refuse it.
        self.assert_refused(self.call("organizations", msa_token), "TokenIssuerNotAllowed")

    def test_case_09_app_id_uri_audience_with_a_v2_token(self):
        v2 = self.token("api://mcp-api-v2")
        self.assertEqual(pyjwt.decode(v2, options={"verify_signature": False})["aud"], self.idp.api_v2["appId"])
        self.assert_refused(self.call("aud-uri", v2), "TokenAudienceNotAllowed")
        self.assert_passes(self.call("aud-uri", self.token("api://mcp-api")))  # v1: aud is the URI

    def test_case_12_scp_split_on_spaces_match_all(self):
        exp = int(time.time()) + 300
        self.assert_passes(self.call("scp", self.hs({"scp": "openid mcp.invoke", "exp": exp})))
        self.assert_refused(self.call("scp", self.hs({"scp": "openid", "exp": exp})), "TokenClaimValueNotAllowed")
        # Whole values after splitting, not substrings.
        self.assert_refused(self.call("scp", self.hs({"scp": "openid mcp.invoke.all", "exp": exp})),
                            "TokenClaimValueNotAllowed")
        self.assert_refused(self.call("scp", self.hs({"exp": exp})), "TokenClaimNotFound")

    def test_case_13_required_claim_absent(self):
        token = self.token("api://mcp-api")
        self.assertNotIn("ctry", pyjwt.decode(token, options={"verify_signature": False}))
        self.assert_passes(self.call("lab", token))  # the same policy without the claim passes it
        self.assert_refused(self.call("ctry-aad", token), "TokenClaimNotFound", "ctry")
        exp = int(time.time()) + 300
        self.assert_passes(self.call("ctry-jwt", self.hs({"ctry": "US", "exp": exp})))
        self.assert_refused(self.call("ctry-jwt", self.hs({"sub": "u", "exp": exp})), "TokenClaimNotFound", "ctry")

    def test_case_14_expired_and_not_yet_valid(self):
        now = int(time.time())
        self.assert_passes(self.call("hs", self.hs({"exp": now + 300, "nbf": now - 5})))
        self.assert_refused(self.call("hs", self.hs({"exp": now - 1})), "TokenExpired")
        self.assert_refused(self.call("hs", self.hs({"exp": now + 3600, "nbf": now + 600})))
        # validate-azure-ad-token: a second emulator on the same directory (same tenant, same
        # signing keys) whose tokens expire one second before they are issued. v1 tokens, so that
        # the issuer does not name the second emulator's port.
        expired_idp = Idp(token_lifetime=-1)
        expired_idp.data = self.idp.data
        expired_idp.start()
        try:
            token = self.token("api://mcp-api", authority=f"https://127.0.0.1:{expired_idp.port}")
        finally:
            expired_idp.cleanup()
        claims = pyjwt.decode(token, options={"verify_signature": False})
        self.assertLess(claims["exp"], time.time())
        self.assertEqual(claims["iss"], f"https://sts.windows.net/{TENANT}/")
        self.assert_refused(self.call("lab", token), "TokenExpired")

    def test_case_19_microsoft_graph_token(self):
        graph = self.token("https://graph.microsoft.com")
        self.assertIn("nonce", pyjwt.get_unverified_header(graph))
        self.assertEqual(pyjwt.decode(graph, options={"verify_signature": False})["aud"], "https://graph.microsoft.com")
        self.assert_refused(self.call("graph-aad", graph), "TokenAudienceNotAllowed")
        # validate-jwt with the tenant's v1 keys and issuer takes the tenant's own v1 tokens; the
        # Graph token's signature is over a different header, so it fails there.
        self.assert_passes(self.call("graph-jwt", self.token("api://mcp-api")))
        self.assert_refused(self.call("graph-jwt", graph), "TokenSignatureInvalid", "nonce")

    # -- validate-jwt -------------------------------------------------------------------------

    def test_case_33_two_inline_rsa_keys(self):
        claims = {"sub": "u", "exp": int(time.time()) + 300}
        by_k2 = pyjwt.encode(claims, RSA_K2, algorithm="RS256", headers={"kid": "k2"})
        by_k1_unknown_kid = pyjwt.encode(claims, RSA_K1, algorithm="RS256", headers={"kid": "zzz"})
        by_k3_unknown_kid = pyjwt.encode(claims, RSA_K3, algorithm="RS256", headers={"kid": "zzz"})
        self.assert_passes(self.call("rsa", by_k2))
        self.assert_passes(self.call("rsa", by_k1_unknown_kid))  # no key matches: each is tried
        self.assert_refused(self.call("rsa", by_k3_unknown_kid), "TokenSignatureInvalid")

    def test_case_34_custom_header_keeps_the_scheme(self):
        token = self.hs({"sub": "u", "exp": int(time.time()) + 300})
        self.assert_refused(self.call("xx", headers={"XX-Authorization": "Bearer " + token}), "JwtInvalid")
        self.assert_passes(self.call("xx", headers={"XX-Authorization": token}))

    def test_case_37_es384_is_not_accepted(self):
        claims = {"iss": ES_ISSUER, "sub": "u", "exp": int(time.time()) + 300}
        es256 = pyjwt.encode(claims, EC_P256, algorithm="ES256", headers={"kid": "es256"})
        es384 = pyjwt.encode(claims, EC_P384, algorithm="ES384", headers={"kid": "es384"})
        pyjwt.decode(es384, EC_P384.public_key(), algorithms=["ES384"])  # a well-made ES384 token
        self.assert_passes(self.call("es", es256))  # the same key set serves ES256 (documented)
        self.assert_refused(self.call("es", es384), "TokenSignatureInvalid", "ES384")

    # -- MCP and scopes -----------------------------------------------------------------------

    def test_case_53_passthrough_mcp(self):
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "cases-test", "version": "1"}}}
        headers = {"Accept": "application/json, text/event-stream"}
        events = []
        with requests.post(self.gw.url + "/mcp", json=init, headers=headers, stream=True, timeout=30) as r:
            self.assertEqual(r.status_code, 200)
            self.assertEqual(r.headers["Mcp-Session-Id"], SESSION_ID)
            self.assertTrue(r.headers["Content-Type"].startswith("text/event-stream"))
            buf = b""
            for chunk in r.iter_content(chunk_size=None):
                buf += chunk
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    events.append(json.loads(event.split(b"data: ", 1)[1]))
                    if len(events) == 1:
                        # The backend holds its stream open until released: this event came
                        # through while the backend was still writing.
                        self.assertIsNone(self.local.closed_at)
                        self.local.release.set()
        # A buffering gateway delivers nothing until the backend ends, which it does only after
        # its wait for the release times out.
        self.assertTrue(self.local.released_in_time, "the first event did not arrive while the backend held")
        self.assertEqual([e.get("method") for e in events], ["notifications/message", None])
        self.assertEqual(events[1]["result"]["serverInfo"]["name"], "stub")
        seen = self.local.mcp_requests[-1]
        self.assertEqual(seen["path"], "/svc/mcp")
        self.assertEqual(seen["message"], init)

    def test_case_54_global_policy_runs_before_the_api_policy(self):
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        r = requests.post(self.gw.url + "/order-first/json", json=listing, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["headers"]["X-Order"], "g,a")
        r = requests.post(self.gw.url + "/order-last/json", json=listing, timeout=30)
        self.assertEqual(r.json()["headers"]["X-Order"], "a,g")  # the order follows <base/>


US_HOST = "login.microsoftonline.us"


class SovereignAuthority(unittest.TestCase):
    """Case 23: a national-cloud authority, offline. The emulator answers for login.microsoftonline.us
    (its certificate names it, its issuer follows the Host it is asked under); the gateway reaches it
    through entra.hosts while SNI, Host and the certificate check keep the real name."""

    def test_case_23_authentication_endpoint(self):
        idp = Idp(extra_args=["--name", US_HOST]).start()
        up = FakeUpstream()
        d = tempfile.TemporaryDirectory()
        gw = None
        try:
            idp.setup_lab()
            policy = """<policies><inbound><base/>
  <validate-azure-ad-token tenant-id="{{tenant}}" %s>
    <audiences><audience>{{api}}</audience></audiences>
  </validate-azure-ad-token>
</inbound></policies>"""
            paths = {}
            for name, endpoint in (("us", 'authentication-endpoint="%s"' % US_HOST), ("public", "")):
                paths[name] = os.path.join(d.name, name + ".xml")
                with open(paths[name], "w") as f:
                    f.write(policy % endpoint)
            gw = Gateway(f"""
listeners: [{{port: 0}}]
entra:
  authority: "https://127.0.0.1:{idp.port}"
  ca_file: "{idp.ca}"
  hosts:
    {US_HOST.upper()}: {{address: "127.0.0.1:{idp.port}", ca_file: "{idp.ca}"}}
named_values: {{tenant: {TENANT}, api: {idp.api_v2["appId"]}}}
backends: {{fake: {{url: "{up.url}"}}}}
apis:
  - {{name: us, path: /us, backend: fake, strip_prefix: true, policy: {paths["us"]}}}
  - {{name: public, path: /public, backend: fake, strip_prefix: true, policy: {paths["public"]}}}
""").start()
            # A token from the US authority: the emulator sees that Host and issues under it.
            r = requests.post(f"https://127.0.0.1:{idp.port}/{TENANT}/oauth2/v2.0/token", verify=idp.ca, timeout=30,
                              headers={"Host": US_HOST},
                              data={"grant_type": "client_credentials", "scope": "api://mcp-api-v2/.default",
                                    "client_id": idp.client["appId"], "client_secret": idp.secret})
            self.assertEqual(r.status_code, 200, r.text)
            token = r.json()["access_token"]
            self.assertEqual(pyjwt.decode(token, options={"verify_signature": False})["iss"],
                             f"https://{US_HOST}/{TENANT}/v2.0")
            auth = {"Authorization": "Bearer " + token}
            ok = requests.get(gw.url + "/us/json", headers=auth, timeout=30)
            self.assertEqual(ok.status_code, 200, ok.text)
            self.assertEqual(ok.headers["X-Upstream"], "fake")
            wrong = requests.get(gw.url + "/public/json", headers=auth, timeout=30)
            self.assertEqual((wrong.status_code, wrong.text), (401, INVALID))
            rid = wrong.headers["X-Request-Id"]
            line = eventually(lambda: next((l for l in gw.access_log() if l["request_id"] == rid), None))
            self.assertIn("TokenIssuerNotAllowed", line["error"])
        finally:
            if gw:
                gw.cleanup()
            up.stop()
            idp.cleanup()
            d.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
