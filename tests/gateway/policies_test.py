#!/usr/bin/python3
"""Throttling, CORS and backend policies in `mcpgate gateway` (apim-policies.md §3, §5, §7 case 52):
rate-limit-by-key, quota-by-key, limit-concurrency, cors, set-backend-service and forward-request
fail-on-error-status-code, against fake backends. Everything on 127.0.0.1."""
import concurrent.futures
import os
import sys
import tempfile
import unittest

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from fake_upstream import FakeUpstream  # noqa: E402
from gateway import Gateway, check_config, eventually  # noqa: E402

POLICIES = {
    "rate": """<policies><inbound><base/>
  <rate-limit-by-key calls="2" renewal-period="60" counter-key="{{rate-key}}"
      remaining-calls-header-name="X-Remaining" total-calls-header-name="X-Total"/>
</inbound></policies>""",
    # The same counter key on another API: one counter for both (APIM: per key, all scopes).
    "rate-shared": """<policies><inbound><base/>
  <rate-limit-by-key calls="2" renewal-period="60" counter-key="{{rate-key}}"/>
</inbound></policies>""",
    "rate-named": """<policies><inbound><base/>
  <rate-limit-by-key calls="1" renewal-period="30" counter-key="other" retry-after-header-name="X-Wait"
      retry-after-variable-name="wait"/>
</inbound>
<on-error><base/><set-header name="X-Source" exists-action="override"><value>on-error</value></set-header></on-error>
</policies>""",
    # The same key with another period is another counter.
    "rate-other-period": """<policies><inbound><base/>
  <rate-limit-by-key calls="5" renewal-period="60" counter-key="other"/>
</inbound></policies>""",
    "rate-nocount": """<policies><inbound><base/>
  <rate-limit-by-key calls="1" renewal-period="60" counter-key="nocount" increment-condition="false"/>
</inbound></policies>""",
    "quota": """<policies><inbound><base/>
  <quota-by-key calls="1" renewal-period="3600" counter-key="quota"/>
</inbound></policies>""",
    "quota-forever": """<policies><inbound><base/>
  <quota-by-key calls="1" renewal-period="0" counter-key="forever"/>
</inbound></policies>""",
    "quota-bytes": """<policies><inbound><base/>
  <quota-by-key bandwidth="2" renewal-period="3600" counter-key="bytes"/>
</inbound></policies>""",
    "conc": """<policies><inbound><base/></inbound>
<backend><limit-concurrency key="slow-backend" max-count="1"><forward-request timeout="20"/></limit-concurrency></backend>
</policies>""",
    "cors": """<policies><inbound><base/>
  <cors allow-credentials="true" terminate-unmatched-request="true">
    <allowed-origins><origin>https://app.example</origin></allowed-origins>
    <allowed-methods preflight-result-max-age="300"><method>GET</method><method>POST</method></allowed-methods>
    <allowed-headers><header>Authorization</header><header>Content-Type</header><header>Mcp-Session-Id</header></allowed-headers>
    <expose-headers><header>Mcp-Session-Id</header></expose-headers>
  </cors>
  <check-header name="Authorization" failed-check-httpcode="401" failed-check-error-message="Not authorized" ignore-case="false"/>
</inbound></policies>""",
    "cors-open": """<policies><inbound><base/>
  <cors terminate-unmatched-request="false">
    <allowed-origins><origin>*</origin></allowed-origins>
    <allowed-headers><header>*</header></allowed-headers>
  </cors>
</inbound></policies>""",
    "by-id": """<policies><inbound><base/><set-backend-service backend-id="second"/></inbound></policies>""",
    "by-url": """<policies><inbound><base/><set-backend-service base-url="{{second-url}}/v2"/></inbound></policies>""",
    "fail": """<policies><inbound><base/></inbound>
<backend><forward-request fail-on-error-status-code="true"/></backend>
<on-error><base/><set-header name="X-Handled" exists-action="override"><value>yes</value></set-header></on-error>
</policies>""",
    "fail-replace": """<policies><inbound><base/></inbound>
<backend><forward-request fail-on-error-status-code="true"/></backend>
<on-error><base/><return-response><set-status code="502" reason="Bad Gateway"/><set-body>backend failed</set-body></return-response></on-error>
</policies>""",
    "body": """<policies><inbound><base/><set-body>{"replaced": true}</set-body></inbound></policies>""",
    "status": """<policies><inbound><base/><set-status code="202" reason="Queued"/></inbound><backend></backend></policies>""",
    "nofail": """<policies><inbound><base/></inbound>
<backend><forward-request/></backend>
<on-error><base/><set-header name="X-Handled" exists-action="override"><value>yes</value></set-header></on-error>
</policies>""",
}


class Policies(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = FakeUpstream()
        cls.second = FakeUpstream()
        cls.dir = tempfile.TemporaryDirectory()
        cls.gw = None
        try:
            apis = []
            for name, text in POLICIES.items():
                path = os.path.join(cls.dir.name, name + ".xml")
                with open(path, "w") as f:
                    f.write(text)
                apis.append(f"  - {{name: {name}, path: /{name}, backend: fake, strip_prefix: true, policy: {path}}}")
            nl = "\n"
            cls.gw = Gateway(f"""
listeners: [{{port: 0}}]
limits: {{max_body_bytes: 65536}}
named_values:
  rate-key: shared-counter
  second-url: "{cls.second.url}"
backends:
  fake: {{url: "{cls.up.url}"}}
  second: {{url: "{cls.second.url}/v1"}}
apis:
{nl.join(apis)}
""").start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.gw:
            cls.gw.cleanup()
        cls.up.stop()
        cls.second.stop()
        cls.dir.cleanup()

    def get(self, path, **kw):
        kw.setdefault("timeout", 30)
        return requests.get(self.gw.url + path, **kw)

    def test_rate_limit_by_key(self):
        r = self.get("/rate/json")
        self.assertEqual(r.status_code, 200)
        self.assertEqual((r.headers["X-Remaining"], r.headers["X-Total"]), ("1", "2"))
        r = self.get("/rate-shared/json")  # the same counter key: the second call of two
        self.assertEqual(r.status_code, 200)
        r = self.get("/rate/json")
        self.assertEqual(r.status_code, 429)
        wait = int(r.headers["Retry-After"])
        self.assertTrue(1 <= wait <= 60, wait)
        self.assertEqual(r.text, '{ "statusCode": 429, "message": "Rate limit is exceeded. Try again in %d seconds." }'
                         % wait)
        self.assertEqual(len(r.content), 84 if wait >= 10 else 83)  # OBS-429's Content-Length
        self.assertEqual((r.headers["X-Remaining"], r.headers["X-Total"]), ("0", "2"))
        line = eventually(lambda: next((l for l in self.gw.access_log()
                                        if l["request_id"] == r.headers["X-Request-Id"]), None))
        self.assertIn("rate-limit-by-key", line["error"])
        self.assertIn("RateLimitExceeded", line["error"])
        # Refused calls are not counted, and another key has its own counter.
        self.assertEqual(self.get("/rate-named/json").status_code, 200)
        r = self.get("/rate-named/json")
        self.assertEqual(r.status_code, 429)
        self.assertNotIn("Retry-After", r.headers)
        self.assertTrue(1 <= int(r.headers["X-Wait"]) <= 30)
        self.assertEqual(r.headers["X-Source"], "on-error")  # the error went through on-error
        self.assertEqual(self.get("/rate-other-period/json").status_code, 200)

    def test_increment_condition_false_counts_nothing(self):
        for _ in range(3):
            self.assertEqual(self.get("/rate-nocount/json").status_code, 200)

    def test_quota_by_key(self):
        self.assertEqual(self.get("/quota/json").status_code, 200)
        r = self.get("/quota/json")
        self.assertEqual(r.status_code, 403)
        wait = int(r.headers["Retry-After"])
        self.assertTrue(1 <= wait <= 3600, wait)
        h, m, s = wait // 3600, wait // 60 % 60, wait % 60
        self.assertEqual(r.text, '{ "statusCode": 403, "message": "Out of call volume quota. Quota will be '
                                 'replenished in %02d:%02d:%02d." }' % (h, m, s))
        self.assertEqual(self.get("/quota-forever/json").status_code, 200)
        r = self.get("/quota-forever/json")
        self.assertEqual((r.status_code, r.text), (403, '{ "statusCode": 403, "message": "Out of call volume quota." }'))
        self.assertNotIn("Retry-After", r.headers)

    def test_quota_by_key_bandwidth(self):
        # 2 KB a window: one 1,500-byte body echoed back (in and out) spends it.
        r = requests.post(self.gw.url + "/quota-bytes/echo", data=b"x" * 1500, timeout=30)
        self.assertEqual(r.status_code, 200)

        def refused():
            r = self.get("/quota-bytes/json")
            return [r] if r.status_code == 403 else None  # a 4xx Response is falsy itself
        r = eventually(refused)[0]  # the bytes count once the answer has been sent
        wait = int(r.headers["Retry-After"])
        h, m, s = wait // 3600, wait // 60 % 60, wait % 60
        self.assertEqual(r.text, '{ "statusCode": 403, "message": "Out of bandwidth quota. Quota will be '
                                 'replenished in %02d:%02d:%02d." }' % (h, m, s))

    def test_limit_concurrency_holds_a_slot_until_the_answer_is_relayed(self):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            slow = pool.submit(self.get, "/conc/slow?delay=1.5")
            # Wait until the slow request is at the backend, then try a second one.
            eventually(lambda: any(q["path"].startswith("/slow") for q in self.up.requests))
            r = self.get("/conc/json")
            self.assertEqual((r.status_code, r.text), (429, '{ "statusCode": 429, "message": "Too many requests" }'))
            self.assertEqual(slow.result().status_code, 200)
        self.assertEqual(self.get("/conc/json").status_code, 200)  # the slot was given back

    def test_case_52_cors_preflight(self):
        pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type, mcp-session-id"}
        before = len(self.up.requests)
        r = requests.options(self.gw.url + "/cors/mcp", headers=pre, timeout=10)
        # Only cors runs on a preflight: check-header does not ask for Authorization.
        self.assertEqual((r.status_code, r.text), (200, ""))
        self.assertEqual(r.headers["Access-Control-Allow-Origin"], "https://app.example")
        self.assertEqual(r.headers["Access-Control-Allow-Credentials"], "true")
        self.assertEqual(r.headers["Access-Control-Allow-Methods"], "POST")
        self.assertEqual(r.headers["Access-Control-Allow-Headers"], "content-type,mcp-session-id")
        self.assertEqual(r.headers["Access-Control-Max-Age"], "300")
        for origin, method, headers in (("https://evil.example", "POST", "content-type"),
                                        ("https://app.example", "DELETE", ""),
                                        ("https://app.example", "POST", "x-custom")):
            r = requests.options(self.gw.url + "/cors/mcp", timeout=10, headers={
                "Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers})
            self.assertEqual((r.status_code, r.text), (200, ""), origin + method + headers)
            self.assertNotIn("Access-Control-Allow-Origin", r.headers)
        self.assertEqual(len(self.up.requests), before)  # no preflight reached the backend

    def test_cors_actual_requests(self):
        r = self.get("/cors/json", headers={"Origin": "https://app.example", "Authorization": "x"})
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["X-Upstream"], "fake")
        self.assertEqual(r.headers["Access-Control-Allow-Origin"], "https://app.example")
        self.assertEqual(r.headers["Access-Control-Expose-Headers"], "Mcp-Session-Id")
        self.assertEqual(r.headers["Vary"], "Origin")
        # The check after cors still runs, and its error answer carries the CORS fields.
        r = self.get("/cors/json", headers={"Origin": "https://app.example"})
        self.assertEqual((r.status_code, r.text), (401, '{ "statusCode": 401, "message": "Not authorized" }'))
        self.assertEqual(r.headers["Access-Control-Allow-Origin"], "https://app.example")
        # terminate-unmatched-request: an unlisted origin gets an empty 200, the backend nothing.
        before = len(self.up.requests)
        r = self.get("/cors/json", headers={"Origin": "https://evil.example", "Authorization": "x"})
        self.assertEqual((r.status_code, r.text), (200, ""))
        self.assertEqual(len(self.up.requests), before)
        # Without an Origin it is not a cross-origin request at all.
        r = self.get("/cors/json", headers={"Authorization": "x"})
        self.assertEqual(r.headers["X-Upstream"], "fake")
        self.assertNotIn("Access-Control-Allow-Origin", r.headers)

    def test_cors_wildcard_and_no_termination(self):
        r = requests.options(self.gw.url + "/cors-open/x", timeout=10, headers={
            "Origin": "https://any.example", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-anything"})
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["Access-Control-Allow-Origin"], "*")
        self.assertNotIn("Access-Control-Allow-Credentials", r.headers)
        self.assertNotIn("Access-Control-Max-Age", r.headers)  # preflight-result-max-age not set
        # A method outside the default GET, POST: not terminated, so it reaches the backend.
        r = requests.options(self.gw.url + "/cors-open/x", timeout=10, headers={
            "Origin": "https://any.example", "Access-Control-Request-Method": "PUT"})
        self.assertEqual(r.headers.get("X-Upstream"), "fake")
        self.assertNotIn("Access-Control-Allow-Origin", r.headers)

    def test_set_backend_service(self):
        r = self.get("/by-id/json?a=1")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(self.second.requests[-1]["path"], "/v1/json?a=1")
        r = self.get("/by-url/json")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(self.second.requests[-1]["path"], "/v2/json")

    def test_fail_on_error_status_code(self):
        r = self.get("/fail/503")
        # on-error ran on the backend's answer and left it otherwise as it was.
        self.assertEqual((r.status_code, r.json(), r.headers["X-Handled"]), (503, {"status": 503}, "yes"))
        line = eventually(lambda: next((l for l in self.gw.access_log()
                                        if l["request_id"] == r.headers["X-Request-Id"]), None))
        self.assertIn("BackendErrorStatusCode", line["error"])
        r = self.get("/fail/json")
        self.assertEqual(r.status_code, 200)
        self.assertNotIn("X-Handled", r.headers)
        r = self.get("/fail-replace/404")
        self.assertEqual((r.status_code, r.reason, r.text), (502, "Bad Gateway", "backend failed"))
        r = self.get("/nofail/503")  # the default: a backend error status is not an error
        self.assertEqual(r.status_code, 503)
        self.assertNotIn("X-Handled", r.headers)

    def test_on_error_runs_when_the_body_fails_before_the_client_saw_a_byte(self):
        # The backend's head came, then its body broke: nothing had gone to the client, so it
        # gets a backend failure, and on-error runs on it (after the exchange's own frame ended).
        r = self.get("/nofail/cut")
        self.assertEqual((r.status_code, r.headers.get("X-Handled")), (502, "yes"))
        self.assertEqual(r.json()["statusCode"], 502)
        line = eventually(lambda: next((l for l in self.gw.access_log()
                                        if l["request_id"] == r.headers["X-Request-Id"]), None))
        self.assertIn("reading the response body", line["error"])

    def test_set_body_in_inbound_replaces_the_request_body(self):
        want = b'{"replaced": true}'
        for body in (b"original body", iter([b"chunked ", b"original"]), None):
            r = requests.post(self.gw.url + "/body/echo", data=body, timeout=30)
            self.assertEqual((r.status_code, r.content), (200, want))
            self.assertEqual(self.up.requests[-1]["headers"].get("Content-Length"), str(len(want)))
            self.assertNotIn("Transfer-Encoding", self.up.requests[-1]["headers"])
        # A client body over max_body_bytes is still refused.
        r = requests.post(self.gw.url + "/body/echo", data=b"x" * 70000, timeout=30)
        self.assertEqual(r.status_code, 413)

    def test_set_status_in_inbound_without_forwarding(self):
        before = len(self.up.requests)
        r = self.get("/status/x")
        self.assertEqual((r.status_code, r.reason, r.text), (202, "Queued", ""))
        self.assertEqual(len(self.up.requests), before)


class LoadErrors(unittest.TestCase):
    def test_refused_at_load(self):
        r = check_config(policy='<policies><inbound>\n'
                                '<set-backend-service backend-id="b"/>\n'
                                '<quota-by-key calls="1" renewal-period="60" counter-key="k" first-period-start="yesterday"/>\n'
                                '<set-backend-service backend-id="nope"/>\n'
                                '<set-backend-service base-url="ftp://x/"/>\n'
                                '<cors allow-credentials="true"><allowed-origins><origin>*</origin></allowed-origins>'
                                '<allowed-headers><header>*</header></allowed-headers></cors>\n'
                                '</inbound></policies>')
        self.assertEqual(r.returncode, 2)
        for line, text in ((3, 'first-period-start "yesterday" is not a UTC time'),
                           (4, 'no backend named "nope"'),
                           (5, 'base-url "ftp://x/" is not an http(s) URL'),
                           (6, 'allow-credentials="true" cannot go with the origin "*"')):
            self.assertIn(f"p.xml:{line}: {text}", r.stderr)
        # Case 42: a backend section with two policies.
        r = check_config(policy='<policies>\n<backend>\n<forward-request/>\n<forward-request/>\n</backend>\n</policies>')
        self.assertEqual(r.returncode, 2)
        self.assertIn("p.xml:4: <backend> holds one policy (or <base/>), not 2", r.stderr)


if __name__ == "__main__":
    unittest.main()
