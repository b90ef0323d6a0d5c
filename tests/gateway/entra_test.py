#!/usr/bin/python3
"""validate-azure-ad-token and validate-jwt in `mcpgate gateway`, with tokens from the real
emulator (`mcpgate idp`, client-credentials flow) and PyJWT: apim-policies.md §7 cases 1-5, 8, 11,
15, 16, 24-30, 32, 41, key rotation and an issuer that is down. Everything on 127.0.0.1."""
import base64
import os
import re
import sys
import tempfile
import time
import unittest

import jwt as pyjwt
import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from fake_upstream import FakeUpstream  # noqa: E402
from gateway import Gateway, check_config, closed_port, eventually  # noqa: E402
from idp import DOMAIN, TENANT, Idp  # noqa: E402

HS_SECRET = b"an-hs256-secret-of-32-bytes-long!"

POLICIES = {
    # The lab's policy, as the lab writes it (named values for the tenant and the client).
    "lab": """<policies>
	<inbound>
		<base />
		<validate-azure-ad-token tenant-id="{{aad-tenant-id}}" output-token-variable-name="jwt">
            <client-application-ids>
                <application-id>{{aad-client-application-id}}</application-id>
            </client-application-ids>
        </validate-azure-ad-token>
	</inbound>
	<backend><base /></backend>
	<outbound><base /></outbound>
	<on-error><base /></on-error>
</policies>""",
    "custom": """<policies><inbound>
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}" failed-validation-httpcode="403" failed-validation-error-message="Forbidden!">
    <client-application-ids><application-id>{{aad-client-application-id}}</application-id></client-application-ids>
  </validate-azure-ad-token>
</inbound></policies>""",
    "aud": """<policies><inbound>
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}">
    <audiences><audience>{{api-v2-id}}</audience></audiences>
  </validate-azure-ad-token>
</inbound></policies>""",
    "roles": """<policies><inbound>
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}">
    <audiences><audience>{{api-v2-id}}</audience></audiences>
    <required-claims>
      <claim name="roles" match="any"><value>Tools.Write</value><value>Tools.Read</value></claim>
      <claim name="roles" match="all"><value>Tools.Call</value><value>Tools.Read</value></claim>
    </required-claims>
  </validate-azure-ad-token>
</inbound></policies>""",
    "roles-all": """<policies><inbound>
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}">
    <audiences><audience>{{api-v2-id}}</audience></audiences>
    <required-claims><claim name="roles" match="all"><value>Tools.Call</value><value>Tools.Admin</value></claim></required-claims>
  </validate-azure-ad-token>
</inbound></policies>""",
    "domain": """<policies><inbound>
  <validate-azure-ad-token tenant-id="https://""" + DOMAIN + """">
    <client-application-ids><application-id>{{aad-client-application-id}}</application-id></client-application-ids>
  </validate-azure-ad-token>
</inbound></policies>""",
    "header": """<policies><inbound>
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}" header-name="X-Token">
    <client-application-ids><application-id>{{aad-client-application-id}}</application-id></client-application-ids>
  </validate-azure-ad-token>
</inbound></policies>""",
    "query": """<policies><inbound>
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}" query-parameter-name="access_token">
    <client-application-ids><application-id>{{aad-client-application-id}}</application-id></client-application-ids>
  </validate-azure-ad-token>
</inbound></policies>""",
    "oidc": """<policies><inbound>
  <validate-jwt header-name="Authorization" require-scheme="Bearer">
    <openid-config url="{{authority}}/{{aad-tenant-id}}/v2.0/.well-known/openid-configuration"/>
    <audiences><audience>00000000-0000-0000-0000-000000000000</audience><audience>{{api-v2-id}}</audience></audiences>
  </validate-jwt>
</inbound></policies>""",
    "hs": """<policies><inbound>
  <validate-jwt header-name="Authorization" require-scheme="Bearer">
    <issuer-signing-keys><key>{{hs-key}}</key></issuer-signing-keys>
  </validate-jwt>
</inbound></policies>""",
    "hs-lax": """<policies><inbound>
  <validate-jwt header-name="Authorization" require-expiration-time="false" require-signed-tokens="false" clock-skew="60">
    <issuer-signing-keys><key>{{hs-key}}</key></issuer-signing-keys>
  </validate-jwt>
</inbound></policies>""",
}


class EntraValidation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.idp = Idp().start()
        try:
            cls.start_rest()
        except BaseException:
            cls.idp.cleanup()  # tearDownClass does not run when setUpClass fails
            raise

    @classmethod
    def start_rest(cls):
        cls.idp.setup_lab()
        cls.authority = f"https://127.0.0.1:{cls.idp.port}"
        cls.up = FakeUpstream()
        cls.dir = tempfile.TemporaryDirectory()
        for name, text in POLICIES.items():
            with open(os.path.join(cls.dir.name, name + ".xml"), "w") as f:
                f.write(text)
        apis = "\n".join(f"  - {{name: {n}, path: /{n}, backend: fake, strip_prefix: true, "
                         f"policy: {os.path.join(cls.dir.name, n + '.xml')}}}" for n in POLICIES)
        cls.config = f"""
listeners: [{{port: 0}}]
admin: {{address: 127.0.0.1, port: 0}}
entra: {{authority: "{cls.authority}", ca_file: "{cls.idp.ca}", key_refetch_min_ms: 1000}}
named_values:
  aad-tenant-id: {TENANT}
  aad-client-application-id: {cls.idp.client["appId"]}
  api-v2-id: {cls.idp.api_v2["appId"]}
  authority: "{cls.authority}"
  hs-key: {{value: "{base64.b64encode(HS_SECRET).decode()}", secret: true}}
backends: {{fake: {{url: "{cls.up.url}"}}}}
apis:
{apis}
"""
        cls.gw = Gateway(cls.config)
        try:
            cls.gw.start()
        except BaseException:
            cls.gw.cleanup()
            cls.up.stop()
            cls.dir.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        cls.up.stop()
        cls.idp.cleanup()
        cls.dir.cleanup()

    def token(self, resource="api://mcp-api", client=None, secret=None):
        client = client or self.idp.client["appId"]
        r = requests.post(f"{self.authority}/{TENANT}/oauth2/v2.0/token", verify=self.idp.ca, timeout=30, data={
            "grant_type": "client_credentials", "client_id": client, "client_secret": secret or self.idp.secret,
            "scope": resource + "/.default"})
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()["access_token"]

    def call(self, api, token=None, headers=None, path="/json"):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        return requests.get(self.gw.url + "/" + api + path, headers=h, timeout=30)

    def log_line(self, response):
        rid = response.headers["X-Request-Id"]
        return eventually(lambda: next((l for l in self.gw.access_log() if l["request_id"] == rid), None))

    def test_01_no_token_is_apims_401(self):  # case 1
        r = self.call("lab")
        self.assertEqual((r.status_code, r.text), (401, '{ "statusCode": 401, "message": "JWT not present." }'))
        self.assertNotIn("WWW-Authenticate", r.headers)  # case 22
        self.assertEqual(self.log_line(r)["error"], "validate-azure-ad-token: TokenNotPresent: JWT not present.")

    def test_02_custom_status_and_message(self):  # case 2
        r = self.call("custom")
        self.assertEqual((r.status_code, r.text), (403, '{ "statusCode": 403, "message": "Forbidden!" }'))

    def test_03_v1_and_v2_tokens_pass_the_lab_policy(self):  # cases 3, 4
        v1 = self.token("api://mcp-api")
        self.assertEqual(pyjwt.decode(v1, options={"verify_signature": False})["ver"], "1.0")
        r = self.call("lab", v1)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["headers"]["Authorization"], "Bearer " + v1)  # forwarded as sent
        line = self.log_line(r)
        self.assertEqual(line["client_app"], self.idp.client["appId"])
        with open(self.gw.log_path) as f:
            self.assertNotIn(v1, f.read())  # never a token in the log
        v2 = self.token("api://mcp-api-v2")
        self.assertEqual(pyjwt.decode(v2, options={"verify_signature": False})["ver"], "2.0")
        self.assertEqual(self.call("lab", v2).status_code, 200)

    def test_04_other_clients_and_garbage_are_refused(self):  # case 5
        r = self.call("lab", self.token(client=self.idp.other["appId"], secret=self.idp.other_secret))
        self.assertEqual((r.status_code, r.text), (401, '{ "statusCode": 401, "message": "Invalid JWT." }'))
        self.assertIn("TokenClaimValueNotAllowed", self.log_line(r)["error"])
        for bad in ("x.y.z", self.token()[:-4] + "AAAA", "a" * 100):
            self.assertEqual(self.call("lab", bad).status_code, 401)
        r = self.call("lab", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        self.assertEqual(r.json()["message"], "Invalid JWT.")

    def test_05_audiences_only(self):  # case 8
        self.assertEqual(self.call("aud", self.token("api://mcp-api-v2")).status_code, 200)
        r = self.call("aud", self.token("api://mcp-api"))  # aud api://mcp-api, not the v2 app's id
        self.assertEqual(r.status_code, 401)
        self.assertIn("TokenAudienceNotAllowed", self.log_line(r)["error"])

    def test_06_required_claims(self):  # case 11
        v2 = self.token("api://mcp-api-v2")  # roles Tools.Call and Tools.Read
        self.assertEqual(self.call("roles", v2).status_code, 200)
        r = self.call("roles-all", v2)
        self.assertEqual(r.status_code, 401)
        self.assertIn("TokenClaimValueNotAllowed", self.log_line(r)["error"])

    def test_07_tenant_by_domain(self):
        self.assertEqual(self.call("domain", self.token()).status_code, 200)

    def test_08_custom_header_and_query(self):  # cases 15, 16
        t = self.token()
        self.assertEqual(self.call("header", headers={"X-Token": t}).status_code, 200)
        self.assertEqual(self.call("header", headers={"X-Token": "Bearer " + t}).status_code, 401)
        self.assertEqual(self.call("query", path="/json?access_token=" + t).status_code, 200)
        r = self.call("query", path="/json")
        self.assertEqual(r.json()["message"], "JWT not present.")

    def test_09_validate_jwt_with_openid_config(self):  # cases 31, 32
        self.assertEqual(self.call("oidc", self.token("api://mcp-api-v2")).status_code, 200)
        r = self.call("oidc", self.token("api://mcp-api"))  # a v1 token: issuer and audience differ
        self.assertEqual(r.status_code, 401)
        r = self.call("oidc", headers={"Authorization": self.token("api://mcp-api-v2")})  # no scheme
        self.assertEqual(r.status_code, 401)

    def test_10_validate_jwt_with_an_inline_key(self):  # cases 25-30
        now = int(time.time())
        good = pyjwt.encode({"sub": "u", "exp": now + 300}, HS_SECRET, algorithm="HS256")
        self.assertEqual(self.call("hs", good).status_code, 200)
        tampered = good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:]
        r = self.call("hs", tampered)
        self.assertEqual((r.status_code, r.json()["message"]), (401, "Invalid JWT."))
        self.assertEqual(self.call("hs").json()["message"], "JWT not present.")
        no_exp = pyjwt.encode({"sub": "u"}, HS_SECRET, algorithm="HS256")
        self.assertEqual(self.call("hs", no_exp).status_code, 401)
        self.assertEqual(self.call("hs-lax", no_exp).status_code, 200)
        expired_30s = pyjwt.encode({"sub": "u", "exp": now - 30}, HS_SECRET, algorithm="HS256")
        expired_90s = pyjwt.encode({"sub": "u", "exp": now - 90}, HS_SECRET, algorithm="HS256")
        self.assertEqual(self.call("hs", expired_30s).status_code, 401)
        self.assertEqual(self.call("hs-lax", expired_30s).status_code, 200)  # clock-skew 60
        self.assertEqual(self.call("hs-lax", expired_90s).status_code, 401)
        unsigned = pyjwt.encode({"sub": "u", "exp": now + 300}, None, algorithm="none")
        self.assertEqual(self.call("hs", unsigned).status_code, 401)
        self.assertEqual(self.call("hs-lax", unsigned).status_code, 200)
        wrong_key = pyjwt.encode({"sub": "u", "exp": now + 300}, b"x" * 32, algorithm="HS256")
        self.assertEqual(self.call("hs", wrong_key).status_code, 401)

    def test_11_key_rotation_is_picked_up_with_one_fetch(self):  # case 24
        def jwks_fetches():
            return sum(1 for l in self.idp.logs().splitlines() if "/discovery/" in l and "keys" in l)
        self.assertEqual(self.call("lab", self.token()).status_code, 200)
        before = jwks_fetches()
        old_kid = pyjwt.get_unverified_header(self.token())["kid"]
        # Refetches for unknown kids are rate-limited (key_refetch_min_ms: 1000 here, 5 minutes by
        # default): let the fetch made at start-up age past that first.
        time.sleep(1.1)
        self.idp.cli("keys", "rotate")
        fresh = self.token()
        self.assertNotEqual(pyjwt.get_unverified_header(fresh)["kid"], old_kid)
        for _ in range(5):
            self.assertEqual(self.call("lab", fresh).status_code, 200)
        self.assertEqual(jwks_fetches() - before, 1)  # one fetch for the unknown kid, then cached

    def test_12_metrics_count_outcomes_and_fetches(self):
        self.call("lab")
        self.call("lab", self.token())
        # Counters move just after each response is written.
        text = eventually(lambda: (lambda t: t if 'outcome="TokenNotPresent"' in t and 'outcome="valid"' in t
                                   else None)(requests.get(self.gw.admin + "/metrics", timeout=10).text))
        self.assertRegex(text, r'mcpgate_token_validations_total\{api="lab",policy="validate-azure-ad-token",'
                               r'outcome="TokenNotPresent"\} [1-9]')
        self.assertRegex(text, r'mcpgate_token_validations_total\{api="lab",policy="validate-azure-ad-token",'
                               r'outcome="valid"\} [1-9]')
        self.assertRegex(text, r'mcpgate_key_fetches_total\{result="ok"\} [1-9]')

    def test_13_a_reloaded_policy_checks_a_known_token_again(self):
        # The token cache outlives reloads and remembers which policy a token passed; a policy
        # loaded again is another policy, and its rules (here: the client it allows) are applied.
        config = lambda client: f"""
listeners: [{{port: 0}}]
entra: {{authority: "{self.authority}", ca_file: "{self.idp.ca}"}}
named_values: {{aad-tenant-id: {TENANT}, aad-client-application-id: {client}}}
backends: {{fake: {{url: "{self.up.url}"}}}}
apis: [{{path: /lab, backend: fake, strip_prefix: true, policy: {os.path.join(self.dir.name, "lab.xml")}}}]
"""
        gw = Gateway(config(self.idp.client["appId"])).start()
        try:
            auth = {"Authorization": "Bearer " + self.token()}
            get = lambda: requests.get(gw.url + "/lab/json", headers=auth, timeout=30)
            for _ in range(3):
                self.assertEqual(get().status_code, 200)
            gw.write_config(config(self.idp.other["appId"]))
            eventually(lambda: "reloaded" in gw.stderr())
            r = get()
            self.assertEqual((r.status_code, r.json()["message"]), (401, "Invalid JWT."))
            line = eventually(lambda: next((l for l in gw.access_log() if l["status"] == 401), None))
            self.assertIn("TokenClaimValueNotAllowed", line["error"])
            gw.write_config(config(self.idp.client["appId"]))
            eventually(lambda: gw.stderr().count("reloaded") == 2)
            self.assertEqual(get().status_code, 200)
        finally:
            gw.cleanup()

    def test_14_requests_on_one_connection_share_nothing(self):
        # One keep-alive connection (a requests.Session sends them one after another on the one
        # it keeps), so one worker: each request's policy state (memory the worker reuses)
        # starts empty — no token, outcome or client from the request before.
        token = self.token()

        def counts():
            text = requests.get(self.gw.admin + "/metrics", timeout=10).text
            found = re.findall(r'mcpgate_token_validations_total\{api="lab",policy="validate-azure-ad-token",'
                               r'outcome="(\w+)"\} (\d+)', text)
            return {outcome: int(n) for outcome, n in found}
        before = counts()
        with requests.Session() as s:
            sent = []
            for auth in (token, None, token, "x.y.z", None):
                h = {"Authorization": "Bearer " + auth} if auth else {}
                sent.append(s.get(self.gw.url + "/lab/json", headers=h, timeout=30))
        self.assertEqual([r.status_code for r in sent], [200, 401, 200, 401, 401])
        lines = [self.log_line(r) for r in sent]
        self.assertEqual([l.get("client_app") for l in lines],
                         [self.idp.client["appId"], None, self.idp.client["appId"], None, None])
        self.assertNotIn("error", lines[0])
        self.assertIn("TokenNotPresent", lines[1]["error"])
        self.assertNotIn("error", lines[2])
        self.assertIn("JwtInvalid", lines[3]["error"])
        self.assertIn("TokenNotPresent", lines[4]["error"])
        # Counted each time, the outcomes alternating (log lines are written after the counts).
        after = counts()
        self.assertEqual({k: after.get(k, 0) - before.get(k, 0) for k in ("valid", "TokenNotPresent", "JwtInvalid")},
                         {"valid": 2, "TokenNotPresent": 2, "JwtInvalid": 1})

    def test_15_an_event_stream_logs_its_client(self):
        # A stream keeps only the client's name of its policy state (not the token) until it ends.
        r = self.call("lab", self.token(), path="/sse?n=3")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["Content-Type"], "text/event-stream")
        self.assertEqual(r.text.count("data: "), 3)
        self.assertEqual(self.log_line(r)["client_app"], self.idp.client["appId"])


class LoadErrors(unittest.TestCase):
    def test_policies_that_would_let_anything_through_are_refused(self):  # cases 10, 35
        r = check_config(policy='<policies><inbound>\n<validate-azure-ad-token tenant-id="' + TENANT + '"/>\n'
                                '<validate-jwt><issuer-signing-keys><key>c2VjcmV0</key></issuer-signing-keys></validate-jwt>\n'
                                '</inbound></policies>')
        self.assertEqual(r.returncode, 2)
        self.assertIn("p.xml:3: <validate-jwt> needs exactly one of header-name", r.stderr)
        self.assertNotIn("p.xml:2:", r.stderr)  # load errors first; then, fixed, the compile rule:
        r = check_config(policy='<policies><inbound>\n<validate-azure-ad-token tenant-id="' + TENANT + '"/>\n</inbound></policies>')
        self.assertEqual(r.returncode, 2)
        self.assertIn("p.xml:2: <validate-azure-ad-token> needs client-application-ids or audiences", r.stderr)


class IssuerDown(unittest.TestCase):
    def test_cached_keys_survive_and_no_keys_fail_closed(self):
        idp = Idp().start()
        idp.setup_lab()
        up = FakeUpstream()
        authority = f"https://127.0.0.1:{idp.port}"
        d = tempfile.TemporaryDirectory()
        with open(os.path.join(d.name, "lab.xml"), "w") as f:
            f.write(POLICIES["lab"])
        config = lambda auth: f"""
listeners: [{{port: 0}}]
entra: {{authority: "{auth}", ca_file: "{idp.ca}"}}
named_values: {{aad-tenant-id: {TENANT}, aad-client-application-id: {idp.client["appId"]}}}
backends: {{fake: {{url: "{up.url}"}}}}
apis: [{{path: /lab, backend: fake, strip_prefix: true, policy: {os.path.join(d.name, "lab.xml")}}}]
"""
        gw = Gateway(config(authority)).start()
        cold = Gateway(config(f"https://127.0.0.1:{closed_port()}")).start()
        try:
            r = requests.post(f"{authority}/{TENANT}/oauth2/v2.0/token", verify=idp.ca, timeout=30, data={
                "grant_type": "client_credentials", "client_id": idp.client["appId"],
                "client_secret": idp.secret, "scope": "api://mcp-api/.default"})
            token = r.json()["access_token"]
            auth = {"Authorization": "Bearer " + token}
            self.assertEqual(requests.get(gw.url + "/lab/json", headers=auth, timeout=30).status_code, 200)
            idp.stop()
            for _ in range(3):  # the emulator is gone: the keys the gateway has still serve
                self.assertEqual(requests.get(gw.url + "/lab/json", headers=auth, timeout=30).status_code, 200)
            # A gateway that never had keys refuses every token.
            r = requests.get(cold.url + "/lab/json", headers=auth, timeout=30)
            self.assertEqual((r.status_code, r.json()["message"]), (401, "Invalid JWT."))
            line = eventually(lambda: next((l for l in cold.access_log() if l["status"] == 401), None))
            self.assertIn("no signing keys", line["error"])
        finally:
            gw.cleanup()
            cold.cleanup()
            up.stop()
            idp.cleanup()
            d.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
