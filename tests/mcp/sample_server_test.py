#!/usr/bin/python3
"""`mcpgate sample-server`'s transport rules over raw HTTP (MCP Streamable HTTP, 2025-11-25):
Accept and Content-Type, sessions (required, unknown, ended), MCP-Protocol-Version, 202 for
notifications, batches refused, DNS-rebinding protection, GET not offered. Everything on
127.0.0.1."""
import http.client
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from sample_server import SampleServer as Server  # noqa: E402

ACCEPT = "application/json, text/event-stream"


class SampleServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().start()
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def request(self, method, body=None, headers=None, path="/mcp"):
        h = {"Host": f"localhost:{self.port}", "Accept": ACCEPT, "Content-Type": "application/json"}
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request(method, path, body=json.dumps(body) if isinstance(body, (dict, list)) else body, headers=h)
            r = c.getresponse()
            data = r.read().decode()
            return r.status, dict(r.getheaders()), (json.loads(data) if data and r.getheader("Content-Type", "").startswith("application/json") else data)
        finally:
            c.close()

    def initialize(self, version="2025-11-25", capabilities=None):
        status, headers, body = self.request("POST", {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": capabilities or {}, "clientInfo": {"name": "t", "version": "1"}}})
        self.assertEqual(status, 200, body)
        return headers["Mcp-Session-Id"], body["result"]

    def test_initialize_negotiates_the_version(self):
        sid, result = self.initialize()
        self.assertEqual(result["protocolVersion"], "2025-11-25")
        self.assertEqual(len(sid), 32)
        _, result = self.initialize("2025-06-18")
        self.assertEqual(result["protocolVersion"], "2025-06-18")
        _, result = self.initialize("2099-01-01")  # unknown: the server's latest
        self.assertEqual(result["protocolVersion"], "2025-11-25")

    def test_session_rules(self):
        sid, _ = self.initialize()
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        status, _, body = self.request("POST", ping)
        self.assertEqual((status, body["error"]["code"]), (400, -32000))  # no session header
        status, _, body = self.request("POST", ping, {"Mcp-Session-Id": "0" * 32})
        self.assertEqual((status, body["error"]["code"]), (404, -32001))
        status, _, body = self.request("POST", ping, {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-03-26"})
        self.assertEqual((status, body), (200, {"jsonrpc": "2.0", "id": 1, "result": {}}))
        status, _, body = self.request("POST", ping, {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "1999-01-01"})
        self.assertEqual(status, 400)
        status, _, body = self.request("POST", {"jsonrpc": "2.0", "method": "notifications/initialized"}, {"Mcp-Session-Id": sid})
        self.assertEqual((status, body), (202, ""))
        status, _, _ = self.request("DELETE", None, {"Mcp-Session-Id": sid})
        self.assertEqual(status, 200)
        status, _, _ = self.request("POST", ping, {"Mcp-Session-Id": sid})
        self.assertEqual(status, 404)
        status, _, _ = self.request("DELETE", None, {"Mcp-Session-Id": sid})
        self.assertEqual(status, 404)

    def test_bad_requests(self):
        sid, _ = self.initialize()
        s = {"Mcp-Session-Id": sid}
        status, _, body = self.request("POST", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, {**s, "Accept": "application/json"})
        self.assertEqual(status, 406)
        status, _, _ = self.request("POST", "x", {**s, "Content-Type": "text/plain"})
        self.assertEqual(status, 415)
        status, _, body = self.request("POST", "{not json", s)
        self.assertEqual((status, body["error"]["code"], body["id"]), (400, -32700, None))
        status, _, body = self.request("POST", [{"jsonrpc": "2.0", "id": 1, "method": "ping"}], s)
        self.assertEqual((status, body["error"]["code"]), (400, -32600))
        status, _, body = self.request("POST", {"jsonrpc": "2.0", "id": 7, "method": "nope/nope"}, s)
        self.assertEqual((status, body["id"], body["error"]["code"]), (200, 7, -32601))
        status, headers, _ = self.request("PUT", "{}", s)
        self.assertEqual((status, headers["Allow"]), (405, "GET, POST, DELETE"))
        status, _, _ = self.request("GET", None, {**s, "Accept": "application/json"})
        self.assertEqual(status, 406)
        status, _, _ = self.request("POST", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, s, path="/other")
        self.assertEqual(status, 404)

    def test_progress_arrives_as_an_event_stream_before_the_answer(self):
        sid, _ = self.initialize()
        status, headers, body = self.request("POST", {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
            "name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "p-1"}}}, {"Mcp-Session-Id": sid})
        self.assertEqual((status, headers["Content-Type"]), (200, "text/event-stream"))
        events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
        self.assertEqual([e.get("method") for e in events], ["notifications/progress"] * 3 + [None])
        self.assertEqual([e["params"]["progressToken"] for e in events[:3]], ["p-1"] * 3)
        self.assertEqual(events[3]["id"], 5)
        # Without a token there is nothing to report: a plain JSON answer.
        status, headers, body = self.request("POST", {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {
            "name": "test_tool_with_progress"}}, {"Mcp-Session-Id": sid})
        self.assertEqual((status, headers["Content-Type"], body["id"]), (200, "application/json", 6))

    def open_call(self, sid, call_id, tool, arguments):
        """POSTs a tools/call and returns the connection, its event-stream response and a reader of
        its messages."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("POST", "/mcp", body=json.dumps({"jsonrpc": "2.0", "id": call_id, "method": "tools/call", "params": {
            "name": tool, "arguments": arguments}}), headers={
            "Host": f"localhost:{self.port}", "Accept": ACCEPT, "Content-Type": "application/json",
            "Mcp-Session-Id": sid})
        r = c.getresponse()
        self.assertEqual((r.status, r.getheader("Content-Type"), r.getheader("Transfer-Encoding")),
                         (200, "text/event-stream", "chunked"))

        def next_message():
            while True:
                line = r.readline().decode()  # chunked decoding, line by line
                self.assertTrue(line, "the stream ended early")
                if line.startswith("data: "):
                    return json.loads(line[6:])
        return c, r, next_message

    def test_sampling_keeps_the_call_open_until_the_client_answers(self):
        sid, _ = self.initialize(capabilities={"sampling": {}})
        c, r, next_message = self.open_call(sid, 9, "test_sampling", {"prompt": "2+2?"})
        try:
            ask = next_message()  # arrives while the call is still open
            self.assertEqual(ask["method"], "sampling/createMessage")
            self.assertEqual(ask["params"]["messages"][0]["content"]["text"], "2+2?")
            # An answer to a question never asked is accepted and ignored.
            status, _, _ = self.request("POST", {"jsonrpc": "2.0", "id": 424242, "result": {}}, {"Mcp-Session-Id": sid})
            self.assertEqual(status, 202)
            status, _, _ = self.request("POST", {"jsonrpc": "2.0", "id": ask["id"], "result": {
                "role": "assistant", "content": {"type": "text", "text": "4"}, "model": "m", "stopReason": "endTurn"}},
                {"Mcp-Session-Id": sid})
            self.assertEqual(status, 202)
            result = next_message()
            self.assertEqual((result["id"], result["result"]["content"][0]["text"]), (9, "LLM response: 4"))
            self.assertEqual(r.read(), b"\n")  # the last event's blank line, then the end
        finally:
            c.close()

    def test_questions_end_with_their_session_and_need_the_capability(self):
        sid, _ = self.initialize(capabilities={"elicitation": {}})
        c, r, next_message = self.open_call(sid, 4, "test_elicitation", {"message": "name?"})
        try:
            self.assertEqual(next_message()["method"], "elicitation/create")
            status, _, _ = self.request("DELETE", None, {"Mcp-Session-Id": sid})
            self.assertEqual(status, 200)
            ended = next_message()  # the open call gets an error, and its stream ends
            self.assertEqual((ended["id"], ended["error"]["message"]), (4, "The session ended"))
            self.assertEqual(r.read(), b"\n")
        finally:
            c.close()
        # A client that did not declare sampling gets a tool error at once, not a question.
        sid, _ = self.initialize()
        status, _, body = self.request("POST", {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
            "name": "test_sampling", "arguments": {"prompt": "x"}}}, {"Mcp-Session-Id": sid})
        self.assertEqual((status, body["result"]["isError"]), (200, True))
        self.assertIn("does not support sampling/createMessage", body["result"]["content"][0]["text"])
        # Ids we never issued (fractional, huge, strings) are not taken for ours.
        for bad in (1.5, 1e300, "1"):
            status, _, _ = self.request("POST", {"jsonrpc": "2.0", "id": bad, "result": {}}, {"Mcp-Session-Id": sid})
            self.assertEqual(status, 202)

    def test_the_get_stream_carries_what_the_server_sends_on_its_own(self):
        sid, _ = self.initialize()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", "/mcp", headers={"Host": f"localhost:{self.port}", "Accept": "text/event-stream",
                                              "Mcp-Session-Id": sid})
            r = c.getresponse()
            self.assertEqual((r.status, r.getheader("Content-Type")), (200, "text/event-stream"))
            status, _, _ = self.request("GET", None, {"Mcp-Session-Id": sid, "Accept": "text/event-stream"})
            self.assertEqual(status, 409)  # one stream per session
            status, _, body = self.request("POST", {"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe",
                                                    "params": {"uri": "test://watched-resource"}}, {"Mcp-Session-Id": sid})
            self.assertEqual((status, body["result"]), (200, {}))
            while True:
                line = r.readline().decode()
                if line.startswith("data: "):
                    break
            update = json.loads(line[6:])
            self.assertEqual(update, {"jsonrpc": "2.0", "method": "notifications/resources/updated",
                                      "params": {"uri": "test://watched-resource"}})
            status, _, _ = self.request("DELETE", None, {"Mcp-Session-Id": sid})
            self.assertEqual(status, 200)
            self.assertEqual(r.read(), b"\n")  # the session ended: so does its stream
        finally:
            c.close()

    def test_dns_rebinding_protection(self):
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        status, _, _ = self.request("POST", init, {"Host": "evil.example.com"})
        self.assertEqual(status, 403)
        status, _, _ = self.request("POST", init, {"Origin": "https://evil.example.com"})
        self.assertEqual(status, 403)
        for host in (f"localhost:{self.port}", f"127.0.0.1:{self.port}", "[::1]"):
            status, _, _ = self.request("POST", init, {"Host": host, "Origin": f"http://{host}"})
            self.assertEqual(status, 200, host)

    def test_health(self):
        status, _, body = self.request("GET", None, path="/health")
        self.assertEqual((status, body), (200, {"status": "ok"}))


if __name__ == "__main__":
    unittest.main()
