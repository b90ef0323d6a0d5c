#!/usr/bin/python3
"""MCP authorization in `mcpgate gateway`: RFC 9728 protected resource metadata from the config,
served at the path-inserted and root well-known URLs, and the 401 challenge that points to it
(apim-policies.md §7 cases 20 and 22), with tokens from the real emulator. Everything on
127.0.0.1."""
import json
import os
import sys
import tempfile
import unittest

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from fake_upstream import FakeUpstream  # noqa: E402
from gateway import Gateway, check_config  # noqa: E402
from idp import TENANT, Idp  # noqa: E402

GW = "https://gw.example.com"
LAB = """<policies><inbound><base/>
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}">
    <client-application-ids><application-id>{{aad-client-application-id}}</application-id></client-application-ids>
  </validate-azure-ad-token>
</inbound></policies>"""
# Case 20: the PRM sample's on-error, which writes its own challenge with an empty body.
OWN_CHALLENGE = """<policies><inbound><base/>
  <validate-azure-ad-token tenant-id="{{aad-tenant-id}}">
    <client-application-ids><application-id>{{aad-client-application-id}}</application-id></client-application-ids>
  </validate-azure-ad-token>
</inbound>
<on-error><base/>
  <return-response>
    <set-status code="401" reason="Unauthorized"/>
    <set-header name="WWW-Authenticate" exists-action="override">
      <value>Bearer error="invalid_token", resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/own"</value>
    </set-header>
  </return-response>
</on-error></policies>"""
FORBIDDEN = LAB.replace('tenant-id="{{aad-tenant-id}}"', 'tenant-id="{{aad-tenant-id}}" failed-validation-httpcode="403"')
NOT_PRESENT = '{ "statusCode": 401, "message": "JWT not present." }'
INVALID = '{ "statusCode": 401, "message": "Invalid JWT." }'


def write(folder, name, text):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class ResourceMetadata(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.idp = Idp().start()
        cls.up = FakeUpstream()
        cls.dir = tempfile.TemporaryDirectory()
        cls.gw = cls.single = None
        try:
            cls.idp.setup_lab()
            cls.authority = f"https://127.0.0.1:{cls.idp.port}"
            d = cls.dir.name
            common = f"""
listeners: [{{port: 0}}]
entra: {{authority: "{cls.authority}", ca_file: "{cls.idp.ca}"}}
named_values:
  aad-tenant-id: {TENANT}
  aad-client-application-id: {cls.idp.client["appId"]}
backends:
  fake: {{url: "{cls.up.url}"}}
"""
            cls.gw = Gateway(common + f"""
apis:
  - name: mcp
    path: /mcp
    type: mcp
    backend: fake
    policy: {write(d, "lab.xml", LAB)}
    resource_metadata:
      resource: {GW}/mcp
      scopes_supported: [api://mcp-api/.default]
  - name: tools
    path: /tools
    type: mcp
    backend: fake
    policy: {write(d, "lab2.xml", LAB)}
    resource_metadata:
      resource: {GW}/tools
      authorization_servers: [https://login.example/{TENANT}/v2.0, https://other.example]
      bearer_methods_supported: [header, query]
      resource_name: Team tools
  - {{name: own, path: /own, type: mcp, backend: fake, policy: {write(d, "own.xml", OWN_CHALLENGE)},
     resource_metadata: {{resource: "{GW}/own"}}}}
  - {{name: forbidden, path: /forbidden, type: mcp, backend: fake, policy: {write(d, "403.xml", FORBIDDEN)},
     resource_metadata: {{resource: "{GW}/forbidden"}}}}
  - {{name: plain, path: /plain, type: mcp, backend: fake, policy: {write(d, "lab3.xml", LAB)}}}
""").start()
            cls.single = Gateway(common + f"""
apis:
  - {{name: mcp, path: /mcp, type: mcp, backend: fake, policy: {write(d, "lab4.xml", LAB)},
     resource_metadata: {{resource: "{GW}/mcp"}}}}
""").start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for g in (cls.gw, cls.single):
            if g:
                g.cleanup()
        cls.up.stop()
        cls.idp.cleanup()
        cls.dir.cleanup()

    def token(self):
        r = requests.post(f"{self.authority}/{TENANT}/oauth2/v2.0/token", verify=self.idp.ca, timeout=30,
                          data={"grant_type": "client_credentials", "scope": "api://mcp-api/.default",
                                "client_id": self.idp.client["appId"], "client_secret": self.idp.secret})
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()["access_token"]

    def post(self, gw, path, token=None):
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if token:
            headers["Authorization"] = "Bearer " + token
        return requests.post(gw.url + path, headers=headers, timeout=30,
                             data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))

    def test_path_inserted_document(self):
        r = requests.get(self.gw.url + "/.well-known/oauth-protected-resource/mcp", timeout=10)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["Content-Type"], "application/json")
        self.assertEqual(r.headers["Cache-Control"], "public, max-age=3600")
        self.assertEqual(r.headers["Access-Control-Allow-Origin"], "*")
        # The default authorization server is the v2 authority of the policy's tenant.
        self.assertEqual(r.json(), {"resource": GW + "/mcp",
                                    "authorization_servers": [f"{self.authority}/{TENANT}/v2.0"],
                                    "scopes_supported": ["api://mcp-api/.default"],
                                    "bearer_methods_supported": ["header"]})
        r = requests.get(self.gw.url + "/.well-known/oauth-protected-resource/tools", timeout=10)
        self.assertEqual(r.json(), {"resource": GW + "/tools",
                                    "authorization_servers": [f"https://login.example/{TENANT}/v2.0",
                                                              "https://other.example"],
                                    "bearer_methods_supported": ["header", "query"],
                                    "resource_name": "Team tools"})

    def test_root_document_only_when_one_resource(self):
        r = requests.get(self.gw.url + "/.well-known/oauth-protected-resource", timeout=10)
        self.assertEqual((r.status_code, r.text), (404, '{ "statusCode": 404, "message": "Resource not found" }'))
        r = requests.get(self.single.url + "/.well-known/oauth-protected-resource", timeout=10)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.json()["resource"], GW + "/mcp")
        self.assertEqual(r.text, requests.get(self.single.url + "/.well-known/oauth-protected-resource/mcp",
                                              timeout=10).text)

    def test_cors_preflight_and_other_methods(self):
        url = self.gw.url + "/.well-known/oauth-protected-resource/mcp"
        r = requests.options(url, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET",
                                           "Access-Control-Request-Headers": "mcp-protocol-version"}, timeout=10)
        self.assertEqual(r.status_code, 204)
        self.assertEqual(r.headers["Access-Control-Allow-Origin"], "*")
        self.assertEqual(r.headers["Access-Control-Allow-Methods"], "GET, OPTIONS")
        self.assertEqual(r.headers["Access-Control-Allow-Headers"], "*")
        self.assertEqual(r.text, "")
        r = requests.post(url, data="x", timeout=10)
        self.assertEqual((r.status_code, r.headers["Allow"]), (405, "GET, OPTIONS"))
        self.assertEqual(r.text, '{ "statusCode": 405, "message": "Method not allowed" }')

    def test_missing_token_challenge_has_no_error_code(self):
        r = self.post(self.gw, "/mcp")
        self.assertEqual((r.status_code, r.text), (401, NOT_PRESENT))
        self.assertEqual(r.headers["WWW-Authenticate"],
                         f'Bearer resource_metadata="{GW}/.well-known/oauth-protected-resource/mcp", '
                         'scope="api://mcp-api/.default"')

    def test_invalid_token_challenge(self):
        token = self.token()
        r = self.post(self.gw, "/mcp", token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
        self.assertEqual((r.status_code, r.text), (401, INVALID))
        self.assertEqual(r.headers["WWW-Authenticate"],
                         f'Bearer error="invalid_token", resource_metadata="{GW}/.well-known/oauth-protected-resource/mcp", '
                         'scope="api://mcp-api/.default"')
        r = self.post(self.gw, "/tools", "not-a-jwt")
        self.assertEqual(r.headers["WWW-Authenticate"],
                         f'Bearer error="invalid_token", resource_metadata="{GW}/.well-known/oauth-protected-resource/tools"')

    def test_valid_token_passes_without_challenge(self):
        r = self.post(self.gw, "/mcp", self.token())
        self.assertEqual(r.status_code, 200, r.text)
        self.assertNotIn("WWW-Authenticate", r.headers)
        self.assertEqual(r.headers["X-Upstream"], "fake")

    def test_case_20_policies_own_challenge_is_kept(self):
        r = self.post(self.gw, "/own", "not-a-jwt")
        self.assertEqual((r.status_code, r.text), (401, ""))
        self.assertEqual(r.raw.headers.getlist("WWW-Authenticate"),
                         [f'Bearer error="invalid_token", resource_metadata="{GW}/.well-known/oauth-protected-resource/own"'])

    def test_case_22_no_metadata_no_challenge(self):
        r = self.post(self.gw, "/plain")
        self.assertEqual((r.status_code, r.text), (401, NOT_PRESENT))
        self.assertNotIn("WWW-Authenticate", r.headers)

    def test_other_statuses_carry_no_challenge(self):
        r = self.post(self.gw, "/forbidden")
        self.assertEqual((r.status_code, r.text), (403, '{ "statusCode": 403, "message": "JWT not present." }'))
        self.assertNotIn("WWW-Authenticate", r.headers)


class ResourceMetadataConfig(unittest.TestCase):
    @staticmethod
    def check(api_lines):
        return check_config("apis:\n" + api_lines)

    def test_bad_metadata_is_refused(self):
        r = self.check("  - {name: m, path: /m, backend: b, resource_metadata: {resource: 'https://gw/m'}}\n")
        self.assertEqual(r.returncode, 2)
        self.assertIn("API m: resource_metadata needs authorization_servers, or a validate-azure-ad-token",
                      r.stderr)
        r = self.check("  - {name: m, path: /m, backend: b, resource_metadata: {resource: 'gw/m?x=1',\n"
                       "     scopes_supported: ['a b'], bearer_methods_supported: [cookie], colour: red}}\n")
        self.assertEqual(r.returncode, 2)
        self.assertIn("gw.yaml:6: unknown key \"colour\" in apis[0].resource_metadata", r.stderr)
        self.assertIn("gw.yaml:5: apis[0].resource_metadata.resource must be an http(s) URL", r.stderr)
        self.assertIn("\"a b\" is not a scope", r.stderr)
        self.assertIn("\"cookie\" is not header, body or query", r.stderr)
        r = self.check("  - {name: m, path: /m, backend: b, resource_metadata: {resource: 'https://gw/m',"
                       " authorization_servers: [https://as]}}\n"
                       "  - {name: n, path: /n, backend: b, resource_metadata: {resource: 'https://gw/m',"
                       " authorization_servers: [https://as]}}\n")
        self.assertEqual(r.returncode, 2)
        self.assertIn("API n: another API already serves /.well-known/oauth-protected-resource/m", r.stderr)


if __name__ == "__main__":
    unittest.main()
