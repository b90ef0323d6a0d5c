#!/usr/bin/python3
"""`mcpgate gateway` in front of a scriptable upstream: routing, streaming relay (SSE unbuffered),
APIM-shaped errors, bounds, keep-alive, access log, configuration checks, drain on SIGTERM."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from fake_upstream import FakeUpstream  # noqa: E402
from gateway import MCPGATE, Gateway, closed_port, eventually  # noqa: E402


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"closed after {len(data)} of {n} bytes: {data!r}")
        data += chunk
    return data


def read_response(sock):
    """One response with a Content-Length body from a raw socket, and not a byte more (a
    pipelined answer after it stays in the socket): (head text, body bytes)."""
    data = b""
    while True:
        seen = sock.recv(65536, socket.MSG_PEEK)
        if not seen:
            raise AssertionError(f"closed before the head ended: {data!r}")
        end = (data + seen).find(b"\r\n\r\n")
        if end >= 0:
            data += recv_exact(sock, end + 4 - len(data))
            break
        data += recv_exact(sock, len(seen))
    head = data[:-4]
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                  if line.lower().startswith(b"content-length:"))
    return head.decode("latin-1"), recv_exact(sock, length)


class GatewayRelay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = FakeUpstream()
        # A backend whose accept queue is full: Linux drops further SYNs, so a connect to it
        # neither succeeds nor fails until the gateway's connect timeout ends it.
        cls.stuck = socket.socket()
        cls.stuck.bind(("127.0.0.1", 0))
        cls.stuck.listen(0)
        cls.fill = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(cls.stuck.getsockname())
            cls.fill.append(s)
        cls.gw = Gateway(f"""
listeners: [{{address: 127.0.0.1, port: 0}}]
backends:
  fake: {{url: "{cls.up.url}/base", response_timeout_ms: 1000}}
  named: {{url: "{cls.up.url.replace('127.0.0.1', 'localhost')}/base"}}
  dead: {{url: "http://127.0.0.1:{closed_port()}", connect_timeout_ms: 1000}}
  stuck: {{url: "http://127.0.0.1:{cls.stuck.getsockname()[1]}", connect_timeout_ms: 400}}
apis:
  - {{name: api, path: /api, backend: fake, strip_prefix: true}}
  - {{name: keep, path: /keep, backend: fake}}
  - {{name: named, path: /named, backend: named, strip_prefix: true}}
  - {{name: mcp, path: /mcp, type: mcp, backend: fake, strip_prefix: true, allowed_origins: ["https://app.example"]}}
  - {{name: dead, path: /dead, backend: dead}}
  - {{name: stuck, path: /stuck, backend: stuck}}
  - {{name: hosted, path: /hosted, backend: fake, strip_prefix: true, allowed_hosts: [localhost, "mcp.example:8443"]}}
  - {{name: timed, path: /timed, backend: fake, strip_prefix: true, request_timeout_ms: 300}}
  - {{name: beat, path: /beat, backend: fake, strip_prefix: true, sse_keepalive_ms: 150}}
limits: {{max_body_bytes: 2000000, max_header_bytes: 8192}}
admin: {{address: 127.0.0.1, port: 0}}
workers: 2
""").start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        cls.up.stop()
        for s in cls.fill + [cls.stuck]:
            s.close()

    def get(self, path, **kw):
        return requests.get(self.gw.url + path, timeout=30, **kw)

    def test_routes_rewrites_and_marks_requests(self):
        r = self.get("/api/json?x=1", headers={"X-Request-Id": "req-123"})
        self.assertEqual(r.status_code, 200, r.text)
        seen = r.json()
        self.assertEqual(seen["path"], "/base/json?x=1")  # prefix stripped, backend base path added
        self.assertEqual(seen["headers"]["Host"], f"127.0.0.1:{self.up.port}")
        self.assertEqual(seen["headers"]["X-Request-Id"], "req-123")
        self.assertEqual(seen["headers"]["X-Forwarded-For"], "127.0.0.1")
        self.assertEqual(r.headers["X-Request-Id"], "req-123")
        self.assertEqual(r.headers["X-Upstream"], "fake")
        kept = self.get("/keep/json").json()
        self.assertEqual(kept["path"], "/base/keep/json")
        generated = self.get("/api/json").headers["X-Request-Id"]
        self.assertRegex(generated, r"^[0-9a-f]{32}$")
        with requests.Session() as s:  # one connection, one worker: its prefix, then a counter
            a, b = (s.get(self.gw.url + "/api/json", timeout=30).headers["X-Request-Id"] for _ in range(2))
        self.assertEqual(a[:16], b[:16])
        self.assertEqual(int(b[16:], 16), int(a[16:], 16) + 1)

    def test_hop_by_hop_fields_stay_and_the_gateways_own_fields_replace_the_callers(self):
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
            s.sendall(b"GET /api/hop HTTP/1.1\r\nHost: evil.example\r\n"
                      b"Connection: keep-alive, X-Hop-In\r\nX-Hop-In: secret\r\nKeep-Alive: timeout=9\r\n"
                      b"TE: trailers\r\nProxy-Connection: keep-alive\r\n"
                      b"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Kept: yes\r\n\r\n")
            head, body = read_response(s)
        self.assertTrue(head.startswith("HTTP/1.1 200 "), head)
        fields = [line.split(":", 1) for line in head.split("\r\n")[1:]]
        names = [n.strip().lower() for n, _ in fields]
        for gone in ("x-hop-out", "keep-alive"):
            self.assertNotIn(gone, names, head)
        self.assertEqual(names.count("x-request-id"), 1, head)
        self.assertRegex(dict((n.strip().lower(), v.strip()) for n, v in fields)["x-request-id"], r"^[0-9a-f]{32}$")
        sent = [(n.lower(), v) for n, v in json.loads(body)["header_list"]]
        sent_names = [n for n, _ in sent]
        for gone in ("connection", "x-hop-in", "keep-alive", "te", "proxy-connection"):
            self.assertNotIn(gone, sent_names, sent)
        self.assertEqual([v for n, v in sent if n == "x-forwarded-for"], ["127.0.0.1"])
        self.assertEqual([v for n, v in sent if n == "x-forwarded-proto"], ["http"])
        self.assertEqual([v for n, v in sent if n == "host"], [f"127.0.0.1:{self.up.port}"])
        self.assertEqual([v for n, v in sent if n == "x-kept"], ["yes"])

    def test_interim_answers_are_not_relayed_and_the_connection_stays_good(self):
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
            for _ in range(2):  # the second request reuses the client and upstream connections
                s.sendall(b"GET /api/early HTTP/1.1\r\nHost: x\r\n\r\n")
                head, body = read_response(s)
                self.assertTrue(head.startswith("HTTP/1.1 200 "), head)
                self.assertEqual(body, b"final")

    def test_interim_answers_without_end_are_a_bad_response(self):
        r = self.get("/api/endless-early")
        self.assertEqual(r.status_code, 502)
        self.assertEqual(r.json()["message"], "Bad gateway: the backend sent an invalid response")

    def test_a_body_that_fails_before_any_byte_reached_the_client_is_a_502(self):
        r = self.get("/api/cut")
        self.assertEqual(r.status_code, 502)
        self.assertEqual(r.json(), {"statusCode": 502,
                                    "message": "Bad gateway: the backend sent an invalid response"})

    def test_answer_heads_are_read_to_the_letter(self):
        r = self.get("/api/length-list")  # "Content-Length: 5, 5" is one length
        self.assertEqual((r.status_code, r.content), (200, b"hello"))
        self.assertEqual(r.headers["Content-Length"], "5")
        r = self.get("/api/no-reason")  # no reason phrase: the status's own is sent
        self.assertEqual((r.status_code, r.reason, r.content), (200, "OK", b"ok"))
        # Framing that could be read two ways, or a head over limits.max_header_bytes: 502.
        for bad in ("length-clash", "two-framings", "big-head"):
            r = self.get(f"/api/{bad}")
            self.assertEqual(r.status_code, 502, bad)
            self.assertEqual(r.json()["message"], "Bad gateway: the backend sent an invalid response")

    def test_an_empty_body_keeps_its_length(self):
        # No body to read (the gateway needs no body parser), but the upstream still learns the
        # length the client gave: some servers want one on every POST.
        r = requests.post(self.gw.url + "/api/json", data=b"", timeout=30)
        self.assertEqual(r.status_code, 200)
        seen = r.json()
        self.assertEqual(seen["method"], "POST")
        self.assertEqual(seen["headers"].get("Content-Length"), "0")
        self.assertEqual(seen["body_len"], 0)

    def test_which_upstream_connections_are_used_again(self):
        # Not after bytes past the answer (a Content-Length body: the one-write path; a body on
        # a 204: the relay's path), an HTTP/1.0 answer without keep-alive, or "close"; after an
        # HTTP/1.0 answer with keep-alive, yes. Each raw answer's connection stays open upstream.
        for name, status, reused in (("overlong", 200, False), ("stray", 204, False),
                                     ("http10", 200, False), ("says-close", 200, False),
                                     ("http10-keep", 200, True)):
            with requests.Session() as s:  # one client connection: one worker, one pool
                for path, want in (("/api/json", 200), (f"/api/{name}", status), ("/api/json", 200)):
                    r = s.get(self.gw.url + path, timeout=30)
                    self.assertEqual(r.status_code, want, path)
                self.assertEqual(r.content[:1], b"{")
                last = self.up.requests[-1]
                before = next(x for x in reversed(self.up.requests) if x["path"].endswith("/" + name))
                self.assertEqual(last["peer"] == before["peer"], reused, name)
                # A clean answer's connection is used again.
                r = s.get(self.gw.url + "/api/json", timeout=30)
                self.assertEqual(self.up.requests[-1]["peer"], last["peer"], name)

    def test_http10_clients_keep_their_connection_only_when_they_ask(self):
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
            for _ in range(2):
                s.sendall(b"GET /api/json HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
                head, body = read_response(s)
                self.assertTrue(head.startswith("HTTP/1.0 200 "), head)
                self.assertIn("connection: keep-alive", head.lower())
                self.assertEqual(body[:1], b"{")
            s.sendall(b"GET /api/json HTTP/1.0\r\nHost: x\r\n\r\n")
            head, body = read_response(s)
            self.assertTrue(head.startswith("HTTP/1.0 200 "), head)
            self.assertNotIn("connection: keep-alive", head.lower())
            self.assertEqual(s.recv(100), b"")  # closed after the answer

    def test_a_coding_read_until_close_keeps_its_label(self):
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
            s.sendall(b"GET /api/gzip-close HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertIn(b"\r\ntransfer-encoding: gzip, chunked", head.lower())
        content = b""
        while True:  # the chunks as they came (one per read of the upstream)
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                self.assertEqual(body, b"\r\n")
                break
            content, body = content + body[:size], body[size + 2:]
        self.assertEqual(content, b"XYZ")

    def test_transfer_codings_other_than_chunked_alone_are_refused(self):
        for codings in (b"Transfer-Encoding: gzip\r\n",
                        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"):
            with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
                s.sendall(b"POST /api/echo HTTP/1.1\r\nHost: x\r\n" + codings + b"\r\n5\r\nhello\r\n0\r\n\r\n")
                head, body = read_response(s)
                self.assertTrue(head.startswith("HTTP/1.1 400 "), head)
                self.assertIn("connection: close", head.lower())
                self.assertEqual(s.recv(100), b"")  # closed: the body is never read as a request

    def test_response_bodies_have_no_size_limit(self):
        # Relayed as they arrive, never held: 9 MiB passes (Beast's default limit is 8 MiB).
        r = self.get("/api/big?mib=9")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(len(r.content), 9 << 20)

    def test_a_client_that_stops_reading_gets_every_byte_in_order_later(self):
        # The gateway writes what a socket takes at once and awaits the rest. A client that
        # reads nothing for a while lets the gateway's send buffer fill (a write then goes in
        # part, or not at all); once it reads, the 9 MiB must come whole and in order: byte i of
        # the origin's body is i % 256.
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=30) as s:
            s.sendall(b"GET /api/big?mib=9 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(1)
            data = bytearray()
            while not data.endswith(b"\r\n0\r\n\r\n"):
                chunk = s.recv(1 << 20)
                self.assertTrue(chunk, "closed early")
                data += chunk
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertIn(b"Transfer-Encoding: chunked", head)
        content = bytearray()
        while True:
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            content += body[:size]
            self.assertEqual(body[size:size + 2], b"\r\n")
            body = body[size + 2:]
        self.assertEqual(len(content), 9 << 20)
        self.assertTrue(content == bytes(range(256)) * (len(content) // 256), "bytes out of order")

    def test_unknown_path_is_apims_404(self):
        for path in ("/nothing", "/apix", "/"):
            r = self.get(path)
            self.assertEqual(r.status_code, 404)
            self.assertEqual(r.text, '{ "statusCode": 404, "message": "Resource not found" }')
            self.assertTrue(r.headers["Content-Type"].startswith("application/json"))

    def test_bodies_stream_both_ways(self):
        body = os.urandom(1_500_000)
        r = requests.post(self.gw.url + "/api/echo", data=body, timeout=30)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.content, body)

        def chunks():
            for i in range(5):
                yield os.urandom(1000)
        r = requests.post(self.gw.url + "/api/echo", data=chunks(), timeout=30)  # chunked upload
        self.assertEqual(len(r.content), 5000)
        r = self.get("/api/chunked")
        self.assertEqual(r.text, "one,two,three")

    def test_expect_100_continue_is_answered_before_the_body(self):
        def head_of(sock):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(1)
                self.assertTrue(chunk, f"closed after {data!r}")
                data += chunk
            return data.decode("latin-1")

        # A streamed body (the relay) and an MCP message (read whole before the policies).
        for path, extra in (("/api/echo", ""), ("/mcp/echo", "Content-Type: application/json\r\n")):
            with socket.create_connection(("127.0.0.1", self.gw.port), timeout=5) as s:
                s.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Content-Length: 17\r\n"
                           "Expect: 100-continue\r\n\r\n").encode())
                # A client that waits for the 100 before its body (as curl does): without it,
                # this read times out.
                self.assertEqual(head_of(s), "HTTP/1.1 100 Continue\r\n\r\n", path)
                s.sendall(b'{"jsonrpc":"2.0"}')
                head, body = read_response(s)
                self.assertTrue(head.startswith("HTTP/1.1 200"), (path, head))
                self.assertEqual(body, b'{"jsonrpc":"2.0"}', path)
                self.assertNotIn("expect:", head.lower())
        # Refused before its body is read: the final answer, no 100, and the body is never asked for.
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=5) as s:
            s.sendall(b"POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
                      b"Expect: 100-continue\r\n\r\n")
            head, _ = read_response(s)
            self.assertTrue(head.startswith("HTTP/1.1 404"), head)

    def test_a_body_that_came_with_its_head_is_taken_whole(self):
        # Head and body in one write: the body is taken as it is (no parser), goes upstream with
        # the head, and nothing of it is read as the next request — even when the request is
        # refused before the body would have been read.
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
            looks_like_a_request = b"GET /api/json HTTP/1.1\r\nHost: x\r\n\r\n"
            s.sendall(b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(looks_like_a_request)
                      + looks_like_a_request +
                      b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                      b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            head, _ = read_response(s)
            self.assertTrue(head.startswith("HTTP/1.1 404 "), head)
            self.assertNotIn("connection: close", head.lower())
            head, body = read_response(s)
            self.assertTrue(head.startswith("HTTP/1.1 200 "), head)
            self.assertEqual(body, b"hello")
            head, body = read_response(s)
            self.assertTrue(head.startswith("HTTP/1.1 200 "), head)
            self.assertEqual(body, b"")
            # A body that comes after its head (the parser reads it) goes on as well.
            s.sendall(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nfirst")
            time.sleep(0.1)
            s.sendall(b"-half")
            head, body = read_response(s)
            self.assertTrue(head.startswith("HTTP/1.1 200 "), head)
            self.assertEqual(body, b"first-half")
        # A length over the limit is never taken whole (the parser refuses it): 413.
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
            s.sendall(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n" + b"x" * 1000)
            head, _ = read_response(s)
            self.assertTrue(head.startswith("HTTP/1.1 413 "), head)

    def test_body_over_the_limit_is_413(self):
        r = requests.post(self.gw.url + "/api/echo", data=b"x" * 2_100_000, timeout=30)
        self.assertEqual(r.status_code, 413)
        self.assertEqual(r.json(), {"statusCode": 413, "message": "Request entity too large"})

    def test_header_over_the_limit_is_431(self):
        r = self.get("/api/json", headers={"X-Big": "a" * 10000})
        self.assertEqual(r.status_code, 431)

    def test_sse_is_relayed_event_by_event(self):
        with requests.get(self.gw.url + "/api/sse?n=4&ack=1&id=t1", stream=True, timeout=30) as r:
            self.assertEqual(r.headers["Content-Type"], "text/event-stream")
            self.assertEqual(r.headers["X-Accel-Buffering"], "no")
            got = []
            buf = b""
            for chunk in r.iter_content(chunk_size=None):
                buf += chunk
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    n = json.loads(event.split(b"data: ")[1])["n"]
                    got.append(n)
                    # The upstream sends the next event only after this acknowledgement; a
                    # buffering gateway never delivers this one and the stream stalls.
                    self.up.ack("t1", n)
            self.assertEqual(got, [0, 1, 2, 3])

    def test_sse_cut_anywhere_arrives_whole(self):
        # Between events the gateway waits on the upstream socket holding no buffer; bytes it
        # cannot use yet (half a size line, a lone CR) must survive the wait.
        with requests.get(self.gw.url + "/api/sse?n=3&split=1", stream=True, timeout=30) as r:
            self.assertEqual(r.status_code, 200)
            body = b"".join(r.iter_content(chunk_size=None))
        events = [e for e in body.split(b"\n\n") if e]
        self.assertEqual([json.loads(e.split(b"data: ")[1])["n"] for e in events], [0, 1, 2])
        self.assertEqual(body, b"".join(b'id: %d\ndata: {"n": %d}\n\n' % (i, i) for i in range(3)))

    def test_connection_serves_on_after_an_event_stream(self):
        # Between events a plain connection's stream is parked (no coroutine holds it); when it
        # ends, the same TCP connection takes the next request.
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
            s.sendall(b"GET /api/sse?n=2&split=1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            data = b""
            while not data.endswith(b"\r\n0\r\n\r\n"):
                chunk = s.recv(4096)
                self.assertTrue(chunk, data)
                data += chunk
            body, rest = b"", data.split(b"\r\n\r\n", 1)[1]
            while rest:  # the chunks as the gateway cut them (one per read from the upstream)
                size, rest = rest.split(b"\r\n", 1)
                body, rest = body + rest[:int(size, 16)], rest[int(size, 16) + 2:]
            self.assertEqual(body, b'id: 0\ndata: {"n": 0}\n\nid: 1\ndata: {"n": 1}\n\n')
            s.sendall(b"GET /api/json HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = s.recv(4096)
                self.assertTrue(chunk, answer)
                answer += chunk
            self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer)
        self.assertTrue(eventually(lambda: "mcpgate_active_sse_streams 0" in requests.get(self.gw.admin + "/metrics", timeout=10).text or None))

    def test_client_leaving_an_event_stream_cancels_the_upstream(self):
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=10)
        s.sendall(b"GET /api/sse?hold=1&id=gone HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        got = b""
        while b"data:" not in got:
            got += s.recv(4096)
        left = time.time()
        s.close()
        deadline = time.time() + 5
        while "gone" not in self.up.disconnects and time.time() < deadline:
            time.sleep(0.02)
        self.assertIn("gone", self.up.disconnects, "the upstream request was not cancelled")
        self.assertLess(self.up.disconnects["gone"] - left, 1.0)
        line = eventually(lambda: next((l for l in self.gw.access_log() if l["path"] == "/api/sse" and l["status"] == 499), None))
        self.assertEqual(line["status"], 499)

    def test_connect_timeout_is_504(self):
        started = time.time()
        r = self.get("/stuck/x")
        self.assertEqual(r.status_code, 504)
        self.assertEqual(r.json()["message"], "Gateway timeout: the backend did not answer in time")
        self.assertLess(time.time() - started, 3.0)  # the 400 ms connect timeout, not TCP's minutes
        line = eventually(lambda: next((l for l in self.gw.access_log() if l["path"] == "/stuck/x"), None))
        self.assertEqual(line["status"], 504)
        self.assertIn("timed out", line["error"])

    def test_upstream_failures_are_apim_errors(self):
        r = self.get("/dead/x")
        self.assertEqual(r.status_code, 502)
        self.assertEqual(r.json()["statusCode"], 502)
        r = self.get("/api/slow?delay=3")
        self.assertEqual(r.status_code, 504)
        self.assertEqual(r.json()["message"], "Gateway timeout: the backend did not answer in time")
        self.assertEqual(self.get("/api/reset").status_code, 502)
        r = self.get("/api/garbage")
        self.assertEqual(r.status_code, 502)
        self.assertEqual(r.json()["statusCode"], 502)
        # Upstream errors that are answers pass through unchanged.
        self.assertEqual(self.get("/api/503").status_code, 503)

    def test_backend_by_name(self):
        # Other backends are IP literals (read without the resolver); this one is looked up.
        r = self.get("/named/json")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.json()["path"], "/base/json")

    def test_keep_alive_both_sides(self):
        before = self.up.connections
        with requests.Session() as s:
            for _ in range(20):
                self.assertEqual(s.get(self.gw.url + "/api/json", timeout=30).status_code, 200)
        # 20 requests over one client connection reuse upstream connections (one per worker at most).
        self.assertLessEqual(self.up.connections - before, 2)

    def test_head_requests(self):
        r = requests.head(self.gw.url + "/api/json", timeout=30)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.content, b"")

    def test_origin_check_on_mcp_apis(self):
        self.assertEqual(self.get("/mcp/json", headers={"Origin": "https://app.example"}).status_code, 200)
        self.assertEqual(self.get("/mcp/json").status_code, 200)  # no Origin: not a browser
        r = self.get("/mcp/json", headers={"Origin": "https://evil.example"})
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r.text, '{ "statusCode": 403, "message": "Origin not allowed" }')

    def test_host_check(self):
        for host in ("localhost", "LOCALHOST:1234", "mcp.example:8443"):
            self.assertEqual(self.get("/hosted/json", headers={"Host": host}).status_code, 200, host)
        for host in ("evil.example", "mcp.example:9999", "localhost.evil.example"):
            r = self.get("/hosted/json", headers={"Host": host})
            self.assertEqual(r.status_code, 403, host)
            self.assertEqual(r.text, '{ "statusCode": 403, "message": "Host not allowed" }')
        # Other APIs have no allow-list.
        self.assertEqual(self.get("/api/json", headers={"Host": "evil.example"}).status_code, 200)

    def test_request_timeout(self):
        started = time.time()
        r = self.get("/timed/slow?delay=3")
        self.assertEqual(r.status_code, 504)
        self.assertLess(time.time() - started, 2.5)  # the 300 ms deadline, not the upstream's 3 s
        self.assertEqual(r.json()["statusCode"], 504)
        self.assertEqual(self.get("/timed/json").status_code, 200)

    def read_raw_stream(self, path, until, timeout=10):
        """Bytes of a GET's response as they come, until `until` is in them (raw: comments show)."""
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = b""
            while until not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data

    def test_sse_keep_alive_comments_between_events(self):
        # Two events 1 s apart; a comment every 150 ms of silence keeps the stream warm.
        data = self.read_raw_stream("/beat/sse?n=2&gap=1", b"\r\n0\r\n\r\n")
        head, body = data.split(b"\r\n\r\n", 1)
        self.assertIn(b"Transfer-Encoding: chunked", head)
        chunks = []
        while body:
            size, rest = body.split(b"\r\n", 1)
            n = int(size, 16)
            chunks.append(rest[:n])
            body = rest[n + 2:]
            if n == 0:
                break
        self.assertEqual(chunks[0], b'id: 0\ndata: {"n": 0}\n\n')
        comments = [c for c in chunks if c == b":\n\n"]
        self.assertGreaterEqual(len(comments), 3, chunks)
        self.assertEqual(chunks[-2], b'id: 1\ndata: {"n": 1}\n\n')
        self.assertEqual(b"".join(c for c in chunks if c != b":\n\n"),
                         b'id: 0\ndata: {"n": 0}\n\nid: 1\ndata: {"n": 1}\n\n')

    def test_body_ended_by_close_is_rechunked(self):
        with requests.Session() as s:
            r = s.get(self.gw.url + "/api/sse?n=3&close=1", timeout=10)
            self.assertEqual(r.headers.get("Transfer-Encoding"), "chunked")
            self.assertEqual(r.text.count("data:"), 3)
            # The client's connection stays usable.
            self.assertEqual(s.get(self.gw.url + "/api/json", timeout=10).status_code, 200)

    def test_mcp_messages_are_read_logged_and_counted(self):
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get-weather", "arguments": {}}}
        r = requests.post(self.gw.url + "/mcp/json", json=call, timeout=10)
        self.assertEqual(r.status_code, 200)
        rid = r.headers["X-Request-Id"]
        line = eventually(lambda: next((l for l in self.gw.access_log() if l["request_id"] == rid), None))
        self.assertEqual((line["mcp_method"], line["mcp_tool"]), ("tools/call", "get-weather"))
        # A chunked message reaches the server whole, with its length.
        body = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
        r = requests.post(self.gw.url + "/mcp/json", data=iter([body[:10], body[10:]]), timeout=10,
                          headers={"Content-Type": "application/json"})
        seen = r.json()
        self.assertEqual(seen["headers"].get("Content-Length"), str(len(body)))
        self.assertNotIn("Transfer-Encoding", seen["headers"])
        self.assertEqual(seen["body_len"], len(body))
        text = eventually(lambda: (lambda t: t if 'method="notifications/initialized"' in t else None)(
            requests.get(self.gw.admin + "/metrics", timeout=10).text))
        self.assertRegex(text, r'mcpgate_mcp_requests_total\{api="mcp",method="tools/call",tool="get-weather"\} [1-9]')
        # Methods the client makes up share one label.
        requests.post(self.gw.url + "/mcp/json", json={"jsonrpc": "2.0", "id": 2, "method": "x/\"y"}, timeout=10)
        eventually(lambda: 'method="(other)",tool=""' in requests.get(self.gw.admin + "/metrics", timeout=10).text)

    def test_garbage_from_the_client_is_400(self):
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
            s.sendall(b"BLAH\r\n\r\n")
            self.assertTrue(s.recv(1000).startswith(b"HTTP/1.1 400"))

    def test_heads_that_two_parsers_could_read_two_ways_are_400(self):
        for head in (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                     b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                     b"POST /api/echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                     b"GET /api/json HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
                     b"GET /api/json HTTP/1.1\r\nHost : x\r\n\r\n",
                     b"GET /api/json HTTP/1.1\nHost: x\n\n",
                     b"GET /api/json HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
                     b"GET /api/json HTTP/1.1\r\n\r\n",  # no Host (RFC 9112 §3.2)
                     b"GET /api/json HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
                s.sendall(head + b"5\r\nhello\r\n0\r\n\r\n")
                got, body = read_response(s)
                self.assertTrue(got.startswith("HTTP/1.1 400 "), (head, got))
                self.assertEqual(json.loads(body), {"statusCode": 400, "message": "Bad request"})
                self.assertIn("connection: close", got.lower())
                self.assertEqual(s.recv(100), b"")

    def test_other_http_versions_are_505(self):
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
            s.sendall(b"GET /api/json HTTP/2.0\r\nHost: x\r\n\r\n")
            got, body = read_response(s)
            self.assertTrue(got.startswith("HTTP/1.1 505 "), got)
            self.assertEqual(json.loads(body), {"statusCode": 505, "message": "HTTP version not supported"})

    def test_a_head_in_pieces_after_empty_lines_then_a_pipelined_one(self):
        # Empty lines before a request line are skipped (RFC 9112 §2.2); a head may arrive a few
        # bytes at a time; two requests in one write are two answers, in order.
        token = "Bearer " + "t" * 3000
        first = (f"\r\n\r\nGET /api/json?n=1 HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
                 "X-Spaced: \t inner  space \t\r\nX-Twice: a\r\nX-Twice: b\r\nX-Empty:\r\n\r\n").encode()
        second = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(first) - 40, 7):
                s.sendall(first[i:i + 7])
                if i < 100:
                    time.sleep(0.002)
            s.sendall(first[i + 7:] + second)
            head, body = read_response(s)
            self.assertTrue(head.startswith("HTTP/1.1 200 "), head)
            seen = json.loads(body)
            self.assertEqual(seen["path"], "/base/json?n=1")
            sent = [(n.lower(), v) for n, v in seen["header_list"]]
            self.assertIn(("authorization", token), sent)
            self.assertIn(("x-spaced", "inner  space"), sent)
            self.assertEqual([v for n, v in sent if n == "x-twice"], ["a", "b"])
            self.assertIn(("x-empty", ""), sent)
            head, body = read_response(s)
            self.assertTrue(head.startswith("HTTP/1.1 200 "), head)
            self.assertEqual(body, b"hello")

    def test_access_log(self):
        r = self.get("/api/json?secret=1", headers={"Authorization": "Bearer abc.def.ghi"})
        rid = r.headers["X-Request-Id"]
        # The line is written just after the response, so it may trail the client a little.
        line = eventually(lambda: next((l for l in self.gw.access_log() if l["request_id"] == rid), None))
        for key in ("time", "request_id", "client", "api", "method", "status", "bytes", "duration_ms", "upstream_ms"):
            self.assertIn(key, line)
        self.assertEqual((line["api"], line["method"], line["status"]), ("api", "GET", 200))
        with open(self.gw.log_path) as f:
            self.assertNotIn("abc.def.ghi", f.read())


    def test_admin_listener(self):
        self.assertEqual(requests.get(self.gw.admin + "/healthz", timeout=10).text, "ok\n")
        self.assertEqual(requests.get(self.gw.admin + "/readyz", timeout=10).status_code, 200)
        self.get("/api/json")
        self.get("/nothing")
        m = requests.get(self.gw.admin + "/metrics", timeout=10)
        self.assertTrue(m.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        # Counters are updated just after each response is written: wait for both to show.
        text = eventually(lambda: (lambda t: t if 'api="(none)",code="4xx"' in t and 'api="api",code="2xx"' in t else None)(
            requests.get(self.gw.admin + "/metrics", timeout=10).text))
        self.assertRegex(text, r'mcpgate_requests_total\{api="api",code="2xx"\} [1-9]')
        self.assertRegex(text, r'mcpgate_requests_total\{api="\(none\)",code="4xx"\} [1-9]')
        self.assertRegex(text, r'mcpgate_request_duration_seconds_bucket\{api="api",le="\+Inf"\} [1-9]')
        self.assertIn("mcpgate_active_connections ", text)
        self.assertIn("mcpgate_active_sse_streams 0", text)
        self.assertEqual(requests.get(self.gw.admin + "/other", timeout=10).status_code, 404)


class GatewayTls(unittest.TestCase):
    def test_tls_listener_with_a_certificate_the_test_makes(self):
        up = FakeUpstream()
        with tempfile.TemporaryDirectory() as d:
            cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-keyout", key, "-out", cert, "-subj", "/CN=localhost", "-days", "2",
                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
            gw = Gateway(f"""
listeners: [{{address: 127.0.0.1, port: 0, tls: {{cert: "{cert}", key: "{key}"}}}}]
backends: {{fake: {{url: "{up.url}"}}}}
apis: [{{path: /api, backend: fake, strip_prefix: true}}]
admin: {{address: 127.0.0.1, port: 0}}
""").start()
            try:
                self.assertTrue(gw.url.startswith("https://"))
                url = gw.url.replace("127.0.0.1", "localhost")
                with requests.Session() as s:
                    for _ in range(3):  # keep-alive over TLS
                        r = s.get(url + "/api/json", verify=cert, timeout=10,
                                  headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
                        self.assertEqual(r.status_code, 200)
                    # A TLS client's event stream is relayed by coroutines (streams park without
                    # them on plain connections only): events cut anywhere arrive whole, and the
                    # connection serves on after the stream.
                    events = s.get(url + "/api/sse?n=3&split=1", verify=cert, timeout=10)
                    self.assertEqual(events.content, b"".join(b'id: %d\ndata: {"n": %d}\n\n' % (i, i) for i in range(3)))
                    self.assertEqual(s.get(url + "/api/json", verify=cert, timeout=10).status_code, 200)
                seen = r.json()
                self.assertEqual(seen["headers"]["X-Forwarded-Proto"], "https")
                self.assertEqual(seen["headers"]["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
                with self.assertRaises(requests.exceptions.SSLError):
                    requests.get(url + "/api/json", timeout=10)  # not trusted by default
                # Plain HTTP at a TLS listener fails the handshake; the connection is not leaked.
                with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as raw:
                    raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    raw.recv(100)
                eventually(lambda: "mcpgate_active_connections 0\n" in requests.get(gw.admin + "/metrics", timeout=10).text)
            finally:
                gw.cleanup()
                up.stop()


def make_ca_and_server_cert(d, names):
    """A CA and a server certificate it signs for `names` (subjectAltName entries), via openssl."""
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-subj", "/CN=mcpgate test CA", "-days", "2",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key",
        "-out", "server.csr", "-subj", "/CN=upstream")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=" + ",".join(names) + "\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return [os.path.join(d, n) for n in ("ca.pem", "server.pem", "server.key")]


class GatewayPolicies(unittest.TestCase):
    """API Management policy documents on the request path (apim-policies.md §7 cases noted)."""

    @classmethod
    def setUpClass(cls):
        cls.up = FakeUpstream()
        cls.dir = tempfile.TemporaryDirectory()
        files = {
            "global.xml": """<policies>
  <inbound><set-header name="X-Order" exists-action="append"><value>g</value></set-header></inbound>
  <backend><forward-request/></backend>
</policies>""",
            "after.xml": """<policies><inbound>
  <set-header name="X-Order" exists-action="append"><value>a</value></set-header><base/>
</inbound></policies>""",
            "before.xml": """<policies><inbound>
  <base/><set-header name="X-Order" exists-action="append"><value>a</value></set-header>
</inbound></policies>""",
            "alone.xml": """<policies><inbound>
  <set-header name="X-Order" exists-action="append"><value>a</value></set-header>
</inbound></policies>""",
            "gate.xml": """<policies>
  <inbound>
    <base/>
    <check-header name="Authorization" failed-check-httpcode="401" failed-check-error-message="Not authorized" ignore-case="false"/>
    <check-header name="X-Tier" failed-check-httpcode="403" failed-check-error-message="Wrong tier" ignore-case="true">
      <value>gold</value>
    </check-header>
    <rewrite-uri template="/echo-path?v=2"/>
    <set-query-parameter name="tenant" exists-action="override"><value>{{tenant}}</value></set-query-parameter>
  </inbound>
  <outbound>
    <set-header name="X-Upstream" exists-action="delete"/>
    <set-header name="X-Checked" exists-action="override"><value>yes</value></set-header>
    <set-status code="203" reason="Checked"/>
  </outbound>
  <on-error>
    <set-header name="WWW-Authenticate" exists-action="override"><value>Bearer realm="mcp"</value></set-header>
  </on-error>
</policies>""",
            "deny.xml": """<policies>
  <inbound>
    <return-response>
      <set-status code="401" reason="Unauthorized"/>
      <set-header name="WWW-Authenticate"><value>Bearer error="invalid_token"</value></set-header>
    </return-response>
  </inbound>
  <outbound><set-header name="X-Outbound" exists-action="override"><value>ran</value></set-header></outbound>
</policies>""",
            "ipallow.xml": """<policies><inbound><ip-filter action="allow"><address>10.0.0.1</address></ip-filter></inbound></policies>""",
            "ipforbid.xml": """<policies><inbound><ip-filter action="forbid"><address>10.0.0.1</address></ip-filter></inbound></policies>""",
            "timeout.xml": """<policies>
  <backend><forward-request timeout="1"/></backend>
  <on-error>
    <set-header name="X-Error" exists-action="override"><value>backend</value></set-header>
  </on-error>
</policies>""",
            "replace.xml": """<policies><outbound><set-body>{"replaced": true}</set-body></outbound></policies>""",
            "local.xml": """<policies>
  <backend/>
  <outbound><set-header name="X-Local" exists-action="override"><value>1</value></set-header></outbound>
</policies>""",
            "onerror.xml": """<policies>
  <inbound>
    <check-header name="X-Key" failed-check-httpcode="401" failed-check-error-message="No key" ignore-case="false"/>
  </inbound>
  <on-error>
    <return-response>
      <set-status code="401"/>
      <set-header name="WWW-Authenticate"><value>Bearer resource_metadata="https://gw/.well-known/oauth-protected-resource"</value></set-header>
    </return-response>
  </on-error>
</policies>""",
            "mock.xml": """<policies><inbound><mock-response status-code="418" content-type="text/plain"/></inbound></policies>""",
            "status.xml": """<policies><outbound><set-status code="404"/></outbound></policies>""",
        }
        for name, text in files.items():
            with open(os.path.join(cls.dir.name, name), "w") as f:
                f.write(text)
        apis = "\n".join(
            f"  - {{name: {n}, path: /{n}, backend: fake, strip_prefix: true, policy: {os.path.join(cls.dir.name, n + '.xml')}}}"
            for n in ("after", "before", "alone", "gate", "deny", "ipallow", "ipforbid", "timeout", "replace",
                      "local", "onerror", "mock", "status"))
        cls.gw = Gateway(f"""
listeners: [{{port: 0}}]
named_values: {{tenant: contoso}}
backends: {{fake: {{url: "{cls.up.url}"}}}}
policy: {os.path.join(cls.dir.name, "global.xml")}
apis:
{apis}
  - {{name: plain, path: /plain, backend: fake, strip_prefix: true}}
""").start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        cls.up.stop()
        cls.dir.cleanup()

    def get(self, path, **kw):
        return requests.get(self.gw.url + path, timeout=30, **kw)

    def test_base_orders_the_scopes(self):  # case 38
        for api, order in (("after", "a,g"), ("before", "g,a"), ("alone", "a")):
            seen = self.get(f"/{api}/json").json()
            self.assertEqual(seen["headers"]["X-Order"], order, api)
        self.assertEqual(self.get("/plain/json").json()["headers"]["X-Order"], "g")  # global alone

    def test_check_header_rewrite_query_and_outbound(self):  # case 47 and more
        r = self.get("/gate/json")
        self.assertEqual(r.status_code, 401)
        self.assertEqual(r.text, '{ "statusCode": 401, "message": "Not authorized" }')
        self.assertEqual(r.headers["Content-Type"], "application/json; charset=utf-8")
        self.assertEqual(r.headers["WWW-Authenticate"], 'Bearer realm="mcp"')  # set in on-error
        r = self.get("/gate/json", headers={"Authorization": "anything", "X-Tier": "silver"})
        self.assertEqual((r.status_code, r.json()["message"]), (403, "Wrong tier"))
        r = self.get("/gate/json?keep=1", headers={"Authorization": "anything", "X-Tier": "GOLD"})
        self.assertEqual((r.status_code, r.reason), (203, "Checked"))
        self.assertEqual(r.headers["X-Checked"], "yes")
        self.assertNotIn("X-Upstream", r.headers)
        self.assertEqual(r.json()["path"], "/echo-path?v=2&keep=1&tenant=contoso")
        self.assertNotIn("WWW-Authenticate", r.headers)

    def test_a_status_set_without_a_reason_gets_its_own(self):
        r = self.get("/status/json")  # the upstream said 200 OK; outbound made it a 404
        self.assertEqual((r.status_code, r.reason), (404, "Not Found"))
        self.assertEqual(r.json()["path"], "/json")  # the upstream's body, relayed

    def test_return_response_stops_the_pipeline(self):  # case 43
        before = len(self.up.requests)
        r = self.get("/deny/json")
        self.assertEqual((r.status_code, r.reason, r.content), (401, "Unauthorized", b""))
        self.assertEqual(r.headers["WWW-Authenticate"], 'Bearer error="invalid_token"')
        self.assertNotIn("X-Outbound", r.headers)
        self.assertEqual(len(self.up.requests), before)  # the backend was not called

    def test_ip_filter(self):  # case 48: the caller is 127.0.0.1
        r = self.get("/ipallow/json")
        self.assertEqual((r.status_code, r.text), (403, '{ "statusCode": 403, "message": "Forbidden" }'))
        self.assertEqual(self.get("/ipforbid/json").status_code, 200)

    def test_backend_failures_reach_on_error(self):
        started = time.time()
        r = self.get("/timeout/slow?delay=3")
        self.assertEqual(r.status_code, 504)
        self.assertLess(time.time() - started, 2.5)  # forward-request timeout="1"
        self.assertEqual(r.headers["X-Error"], "backend")
        self.assertEqual(r.json()["statusCode"], 504)

    def test_outbound_set_body_replaces_the_body(self):
        r = self.get("/replace/json")
        self.assertEqual((r.status_code, r.json()), (200, {"replaced": True}))
        self.assertEqual(r.headers["Content-Length"], str(len(r.content)))

    def test_no_forward_request_answers_from_outbound(self):
        before = len(self.up.requests)
        r = self.get("/local/json")
        self.assertEqual((r.status_code, r.content, r.headers["X-Local"]), (200, b"", "1"))
        self.assertEqual(len(self.up.requests), before)

    def test_on_error_return_response_replaces_the_error(self):  # case 20's shape
        r = self.get("/onerror/json")
        self.assertEqual((r.status_code, r.content), (401, b""))
        self.assertIn("resource_metadata=", r.headers["WWW-Authenticate"])
        rid = r.headers["X-Request-Id"]
        line = eventually(lambda: next((l for l in self.gw.access_log() if l["request_id"] == rid), None))
        self.assertEqual(line["error"], "check-header: HeaderNotFound")
        self.assertEqual(self.get("/onerror/json", headers={"X-Key": "k"}).status_code, 200)

    def test_mock_response(self):
        r = self.get("/mock/json")
        self.assertEqual((r.status_code, r.headers["Content-Type"], r.content), (418, "text/plain", b""))

    def test_keep_alive_across_local_answers(self):
        with requests.Session() as s:
            for path in ("/deny/json", "/gate/json", "/plain/json", "/mock/json", "/replace/json"):
                self.assertIn(s.get(self.gw.url + path, timeout=10).status_code, (200, 401, 418), path)


class GatewayHttpsUpstream(unittest.TestCase):
    def test_https_upstreams_verify_the_certificate_and_send_sni(self):
        with tempfile.TemporaryDirectory() as d:
            ca, cert, key = make_ca_and_server_cert(d, ["DNS:upstream.test", "IP:127.0.0.1"])
            up = FakeUpstream(tls=(cert, key))
            gw = Gateway(f"""
listeners: [{{port: 0}}]
backends:
  by-ip: {{url: "https://127.0.0.1:{up.port}", ca_file: "{ca}"}}
  by-name: {{url: "https://127.0.0.1:{up.port}/base", ca_file: "{ca}", tls_server_name: upstream.test}}
  wrong-name: {{url: "https://127.0.0.1:{up.port}", ca_file: "{ca}", tls_server_name: other.test}}
  system-store: {{url: "https://127.0.0.1:{up.port}"}}
apis:
  - {{path: /ip, backend: by-ip, strip_prefix: true}}
  - {{path: /name, backend: by-name, strip_prefix: true}}
  - {{path: /wrong, backend: wrong-name, strip_prefix: true}}
  - {{path: /system, backend: system-store, strip_prefix: true}}
workers: 1
""").start()
            try:
                r = requests.get(gw.url + "/ip/json", timeout=10)
                self.assertEqual(r.status_code, 200)
                self.assertEqual(r.json()["path"], "/json")
                before = up.connections
                with requests.Session() as s:
                    for i in range(5):
                        r = s.post(gw.url + "/name/echo", data=b"x" * (i * 10000), timeout=10)
                        self.assertEqual((r.status_code, len(r.content)), (200, i * 10000))
                self.assertEqual(up.connections - before, 1)  # one TLS connection, kept alive
                self.assertIn("upstream.test", up.sni)
                for path in ("/wrong/json", "/system/json"):
                    r = requests.get(gw.url + path, timeout=10)
                    self.assertEqual(r.status_code, 502, path)
                    self.assertEqual(r.json()["statusCode"], 502)
                    rid = r.headers["X-Request-Id"]
                    line = eventually(lambda: next((l for l in gw.access_log() if l["request_id"] == rid), None))
                    self.assertIn("certificate verify failed", line["error"])
            finally:
                gw.cleanup()
                up.stop()


class GatewayLifecycle(unittest.TestCase):
    def test_check_reports_every_error(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write("listeners: [{address: 127.0.0.1, prot: 1}]\napis: [{path: /x, backend: nope}]\n")
            f.flush()
            r = subprocess.run([MCPGATE, "gateway", "--check", "-c", f.name], capture_output=True, text=True)
            self.assertEqual(r.returncode, 2)
            self.assertIn(f"{f.name}:1: unknown key \"prot\"", r.stderr)
            self.assertIn(f"{f.name}:2: apis[0]: no backend named \"nope\"", r.stderr)
            self.assertIn("error(s)", r.stderr)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write("listeners: [{port: 0}]\nbackends: {b: {url: 'http://127.0.0.1:1'}}\napis: [{path: /x, backend: b}]\n")
            f.flush()
            r = subprocess.run([MCPGATE, "gateway", "--check", "-c", f.name], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:  # files the runtime reads
            f.write("listeners: [{port: 0}]\nbackends: {b: {url: 'https://127.0.0.1:1', ca_file: /nonexistent.pem}}\n"
                    "apis: [{path: /x, backend: b}]\n")
            f.flush()
            r = subprocess.run([MCPGATE, "gateway", "--check", "-c", f.name], capture_output=True, text=True)
            self.assertEqual(r.returncode, 2)
            self.assertIn("/nonexistent.pem: no usable CA certificates", r.stderr)

    def test_policy_documents_are_checked_and_never_served_unenforced(self):
        with tempfile.TemporaryDirectory() as d:
            def write(name, text):
                with open(os.path.join(d, name), "w") as f:
                    f.write(text)
            write("bad.xml", "<policies>\n  <inbound>\n    <validate-azure-ad-token/>\n"
                             "    <set-header name=\"x\"><value>{{nope}}</value></set-header>\n  </inbound>\n</policies>\n")
            write("lab.xml", "<policies><inbound><base/><quota-by-key renewal-period=\"60\" "
                             "counter-key=\"{{tenant}}\"/></inbound></policies>")
            write("base.xml", "<policies><inbound><base/></inbound><backend><base/></backend>"
                              "<outbound><base/></outbound><on-error><base/></on-error></policies>")
            config = lambda policy: f"""
listeners: [{{port: 0}}]
named_values: {{tenant: contoso.onmicrosoft.com, client: 00000000-0000-0000-0000-0000000000c1}}
backends: {{b: {{url: "http://127.0.0.1:1"}}}}
apis: [{{path: /x, backend: b, policy: {policy}}}]
"""
            write("gw.yaml", config("bad.xml"))  # relative to the configuration's folder
            r = subprocess.run([MCPGATE, "gateway", "--check", "-c", os.path.join(d, "gw.yaml")],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 2)
            self.assertIn(f"{d}/bad.xml:3: <validate-azure-ad-token> needs the attribute tenant-id", r.stderr)
            self.assertIn(f"{d}/bad.xml:4: unknown named value {{{{nope}}}}", r.stderr)
            write("gw.yaml", config("lab.xml"))
            r = subprocess.run([MCPGATE, "gateway", "-c", os.path.join(d, "gw.yaml")],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 2)
            self.assertIn("lab.xml:1: <quota-by-key> needs calls, bandwidth or both", r.stderr)
            write("gw.yaml", config("base.xml"))
            r = subprocess.run([MCPGATE, "gateway", "--check", "-c", os.path.join(d, "gw.yaml")],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_slow_clients_are_dropped_after_the_header_timeout(self):
        up = FakeUpstream()
        gw = Gateway(f"""
listeners: [{{port: 0}}]
backends: {{fake: {{url: "{up.url}"}}}}
apis: [{{path: /, backend: fake}}]
limits: {{header_timeout_ms: 300}}
""").start()
        try:
            with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
                s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n")  # the head never ends
                started = time.time()
                self.assertEqual(s.recv(100), b"")  # closed by the gateway, no answer
                self.assertLess(time.time() - started, 5)
            self.assertEqual(requests.get(gw.url + "/json", timeout=10).status_code, 200)
        finally:
            gw.cleanup()
            up.stop()

    def test_a_message_body_that_stalls_is_logged_408_or_504_and_the_connection_closes(self):
        # An MCP message is read whole before it goes on. A client that stops halfway is cut off
        # at the idle timeout (408 in the log) or at the API's request deadline when that comes
        # first (504); the timeout closes the connection, so it gets no answer (as with nginx's
        # 408), and the upstream never sees the request.
        up = FakeUpstream()
        gw = Gateway(f"""
listeners: [{{port: 0}}]
backends: {{fake: {{url: "{up.url}"}}}}
apis:
  - {{name: a, path: /a, type: mcp, backend: fake}}
  - {{name: b, path: /b, type: mcp, backend: fake, request_timeout_ms: 150}}
limits: {{idle_timeout_ms: 600}}
""").start()
        try:
            for path, status in (("/a", 408), ("/b", 504)):
                with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
                    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              "Content-Length: 60\r\n\r\n{\"jsonrpc\": \"2.0\", ".encode())
                    started = time.time()
                    self.assertEqual(s.recv(4096), b"")
                    self.assertLess(time.time() - started, 5)
                line = eventually(lambda: next((l for l in gw.access_log() if l["path"] == path), None))
                self.assertEqual(line["status"], status)
                self.assertEqual(line["api"], path[1:])
            # One that leaves halfway is logged 499.
            with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
                s.sendall(b"POST /b/gone HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n{")
            line = eventually(lambda: next((l for l in gw.access_log() if l["path"] == "/b/gone"), None))
            self.assertEqual(line["status"], 499)
            self.assertEqual(up.requests, [])
            self.assertEqual(requests.post(gw.url + "/a", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                           timeout=10).status_code, 200)
        finally:
            gw.cleanup()
            up.stop()

    def test_reload_on_file_change_keeps_in_flight_requests_and_refuses_bad_configs(self):
        up = FakeUpstream()
        config = lambda apis, port=0: f"""
listeners: [{{port: {port}}}]
backends: {{fake: {{url: "{up.url}"}}}}
apis: {apis}
admin: {{address: 127.0.0.1, port: 0}}
"""
        gw = Gateway(config("[{path: /a, backend: fake, strip_prefix: true}]")).start()
        try:
            result = {}
            t = threading.Thread(target=lambda: result.setdefault("r", requests.get(gw.url + "/a/slow?delay=1.5", timeout=30)))
            t.start()
            time.sleep(0.3)
            gw.write_config(config("[{path: /b, backend: fake, strip_prefix: true}]"))
            eventually(lambda: requests.get(gw.url + "/b/json", timeout=10).status_code == 200)
            self.assertEqual(requests.get(gw.url + "/a/json", timeout=10).status_code, 404)
            t.join()
            self.assertEqual(result["r"].status_code, 200)  # began before the reload: kept its routes
            self.assertIn("reloaded", gw.stderr())
            # A broken file is refused with its line; the running configuration stays.
            gw.write_config(config("[{path: /c, backend: fake, colour: blue}]"))
            eventually(lambda: "unknown key \"colour\"" in gw.stderr())
            self.assertIn(f"{gw.config}:4:", gw.stderr())
            self.assertEqual(requests.get(gw.url + "/b/json", timeout=10).status_code, 200)
            # Listeners change only with a restart.
            gw.write_config(config("[{path: /c, backend: fake}]", port=closed_port()))
            eventually(lambda: "listeners changed" in gw.stderr())
            self.assertEqual(requests.get(gw.url + "/c/json", timeout=10).status_code, 404)
            metrics = requests.get(gw.admin + "/metrics", timeout=10).text
            self.assertIn('mcpgate_config_reloads_total{result="applied"} 1\n', metrics)
            self.assertIn('mcpgate_config_reloads_total{result="rejected"} 2\n', metrics)
        finally:
            gw.cleanup()
            up.stop()

    def test_sighup_reloads_and_reload_under_load_loses_no_request(self):
        ups = [FakeUpstream(), FakeUpstream()]
        config = lambda i: f"""
listeners: [{{port: 0}}]
backends: {{fake: {{url: "{ups[i % 2].url}", max_idle_connections: {4 + i % 3}}}}}
apis: [{{path: /api, backend: fake, strip_prefix: true}}, {{path: /gen{i}, backend: fake, strip_prefix: true}}]
workers: 2
"""
        gw = Gateway(config(0), args=["--no-watch"]).start()
        try:
            gw.write_config(config(1))
            time.sleep(1.5)  # no watching: the file alone changes nothing
            self.assertEqual(requests.get(gw.url + "/gen1/json", timeout=10).status_code, 404)
            gw.proc.send_signal(signal.SIGHUP)
            eventually(lambda: requests.get(gw.url + "/gen1/json", timeout=10).status_code == 200)

            stop = threading.Event()
            statuses, errors = [], []

            def load():
                with requests.Session() as s:
                    while not stop.is_set():
                        try:
                            r = s.post(gw.url + "/api/echo", data=b"payload", timeout=10)
                            statuses.append((r.status_code, r.content))
                        except requests.RequestException as e:
                            errors.append(repr(e))
            threads = [threading.Thread(target=load) for _ in range(6)]
            for t in threads:
                t.start()
            for i in range(2, 22):  # 20 reloads, the backend alternating between two upstreams
                gw.write_config(config(i))
                gw.proc.send_signal(signal.SIGHUP)
                time.sleep(0.1)
            stop.set()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            self.assertGreater(len(statuses), 100)
            self.assertEqual(set(statuses), {(200, b"payload")})
            self.assertEqual(gw.stderr().count("reloaded"), 21)
            self.assertTrue(all(u.requests for u in ups))  # both upstreams served
        finally:
            gw.cleanup()
            for u in ups:
                u.stop()

    def test_connections_beyond_the_limit_get_503(self):
        up = FakeUpstream()
        gw = Gateway(f"""
listeners: [{{port: 0}}]
backends: {{fake: {{url: "{up.url}"}}}}
apis: [{{path: /, backend: fake}}]
limits: {{max_connections_per_worker: 2}}
workers: 1
admin: {{address: 127.0.0.1, port: 0}}
""").start()
        try:
            held = [socket.create_connection(("127.0.0.1", gw.port), timeout=10) for _ in range(2)]
            eventually(lambda: "mcpgate_active_connections 2\n" in requests.get(gw.admin + "/metrics", timeout=10).text)
            r = requests.get(gw.url + "/json", timeout=10)
            self.assertEqual(r.status_code, 503)
            self.assertEqual(r.text, '{ "statusCode": 503, "message": "Service unavailable: too many connections, retry later" }')
            self.assertEqual(r.headers["Retry-After"], "1")
            for s in held:
                s.close()
            eventually(lambda: requests.get(gw.url + "/json", timeout=10).status_code == 200)
            eventually(lambda: "mcpgate_active_connections 0\n" in requests.get(gw.admin + "/metrics", timeout=10).text)
        finally:
            gw.cleanup()
            up.stop()

    def test_sigterm_lets_in_flight_requests_finish(self):
        up = FakeUpstream()
        gw = Gateway(f"""
listeners: [{{port: 0}}]
backends: {{fake: {{url: "{up.url}"}}}}
apis: [{{path: /, backend: fake}}]
""").start()
        try:
            result = {}

            def slow():
                result["r"] = requests.get(gw.url + "/slow?delay=1", timeout=30)
            t = threading.Thread(target=slow)
            t.start()
            time.sleep(0.3)
            gw.stop()
            t.join()
            self.assertEqual(result["r"].status_code, 200)
            self.assertEqual(gw.proc.returncode, 0)
            with self.assertRaises(requests.ConnectionError):
                requests.get(gw.url + "/json", timeout=5)
        finally:
            gw.cleanup()
            up.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
