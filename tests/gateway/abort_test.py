#!/usr/bin/python3
"""10,000 requests through `mcpgate gateway`, many abandoned by their clients at random points
(mid-head, mid-body, waiting for the answer, mid-stream, with a reset). Afterwards the connection
and stream gauges are back to zero, the gateway still answers, and it exits cleanly. Run against
the asan build, the exit also proves LeakSanitizer found nothing.

Environment: MCPGATE_BIN; ABORT_TEST_REQUESTS (default 10000)."""
import asyncio
import os
import random
import re
import socket
import struct
import sys
import time
import unittest

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from fake_upstream import FakeUpstream  # noqa: E402
from gateway import Gateway, closed_port  # noqa: E402

TOTAL = int(os.environ.get("ABORT_TEST_REQUESTS", "10000"))
CONCURRENCY = 48


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1])


def reset(writer):
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def one(port, kind, i, tally):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if kind == "complete":
            writer.write(b"GET /api/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            tally[kind].append(await read_head(reader))
            await reader.read()
        elif kind == "mid-head":
            writer.write(b"GET /api/json HTTP/1.1\r\nHost: x\r\nX-Partial: ")
            await writer.drain()
        elif kind == "waiting":
            writer.write(b"GET /api/slow?delay=0.2 HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(random.random() * 0.1)
        elif kind == "mid-body":
            path = b"/mcp/json" if i % 2 else b"/api/echo"
            writer.write(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n" + b"{" * 100)
            await writer.drain()
        elif kind == "mid-stream":
            writer.write(f"GET /api/sse?hold=1&id=a{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            tally[kind].append(await read_head(reader))
            await reader.readuntil(b"\n\n")
        elif kind == "reset":
            writer.write(b"GET /api/chunked HTTP/1.1\r\nHost: x\r\n\r\n")
            tally[kind].append(await read_head(reader))
            reset(writer)
            return
        elif kind == "mcp":
            body = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"t%d"}}' % (i, i % 7)
            writer.write(b"POST /mcp/json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            tally[kind].append(await read_head(reader))
        elif kind == "dead":
            writer.write(b"GET /dead/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            tally[kind].append(await read_head(reader))
    finally:
        if not writer.transport.is_closing():
            writer.close()


async def run_all(port):
    kinds = ["complete", "mid-head", "waiting", "mid-body", "mid-stream", "reset", "mcp", "dead"]
    rng = random.Random(20261127)
    plan = [rng.choice(kinds) for _ in range(TOTAL)]
    tally = {k: [] for k in kinds}
    failures = []
    sem = asyncio.Semaphore(CONCURRENCY)

    async def guarded(i, kind):
        async with sem:
            try:
                await asyncio.wait_for(one(port, kind, i, tally), 30)
            except (ConnectionError, asyncio.IncompleteReadError) as e:
                if kind in ("complete", "mcp", "dead"):
                    failures.append((kind, repr(e)))
            except asyncio.TimeoutError:
                failures.append((kind, "timed out"))

    await asyncio.gather(*(guarded(i, k) for i, k in enumerate(plan)))
    return plan, tally, failures


class AbortedRequests(unittest.TestCase):
    def test_random_client_aborts_leave_nothing_behind(self):
        up = FakeUpstream()
        gw = Gateway(f"""
listeners: [{{port: 0}}]
backends:
  fake: {{url: "{up.url}"}}
  dead: {{url: "http://127.0.0.1:{closed_port()}"}}
apis:
  - {{path: /api, backend: fake, strip_prefix: true}}
  - {{path: /mcp, type: mcp, backend: fake, strip_prefix: true}}
  - {{path: /dead, backend: dead}}
limits: {{header_timeout_ms: 2000}}
admin: {{address: 127.0.0.1, port: 0}}
access_log: "off"
workers: 2
""")
        # LeakSanitizer reports at exit; keep its verdict in the exit status and the log.
        os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        gw.start()
        try:
            started = time.time()
            plan, tally, failures = asyncio.run(run_all(gw.port))
            print(f"{len(plan)} requests in {time.time() - started:.1f}s: " +
                  ", ".join(f"{k} {plan.count(k)}" for k in sorted(set(plan))), file=sys.stderr)
            self.assertEqual(failures, [])
            for kind in ("complete", "mcp", "mid-stream", "reset"):
                self.assertEqual(set(tally[kind]), {200}, kind)
            self.assertEqual(set(tally["dead"]), {502})

            def gauges():
                text = requests.get(gw.admin + "/metrics", timeout=10).text
                return {k: int(v) for k, v in re.findall(r"^(mcpgate_active_\w+) (\d+)$", text, re.M)}
            deadline = time.time() + 30
            while time.time() < deadline:
                g = gauges()
                if g == {"mcpgate_active_connections": 0, "mcpgate_active_sse_streams": 0}:
                    break
                time.sleep(0.2)
            self.assertEqual(g, {"mcpgate_active_connections": 0, "mcpgate_active_sse_streams": 0})
            self.assertEqual(requests.get(gw.url + "/api/json", timeout=10).status_code, 200)
        finally:
            self.stop_and_check(gw, up)

    def stop_and_check(self, gw, up):
        """Stops both; the gateway must have exited 0 with no sanitizer report."""
        gw.stop()
        err = gw.stderr() if gw.proc else ""
        code = gw.proc.returncode if gw.proc else None
        gw.cleanup()
        up.stop()
        for marker in ("LeakSanitizer", "AddressSanitizer", "runtime error:"):
            self.assertNotIn(marker, err)
        self.assertEqual(code, 0, err[-4000:])

    def test_stopping_with_a_body_mid_relay_exits_cleanly(self):
        # A request whose body is half sent holds a relay buffer when the drain's grace runs out:
        # destroying it must not touch the worker's already destroyed parts (asan: exit 0, no
        # report).
        up = FakeUpstream()
        gw = Gateway(f"""
listeners: [{{port: 0}}]
backends: {{fake: {{url: "{up.url}"}}}}
apis: [{{path: /api, backend: fake, strip_prefix: true}}]
access_log: "off"
workers: 1
""")
        os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        gw.start()
        try:
            with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as s:
                s.sendall(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
                time.sleep(0.5)  # the gateway now waits for the rest, buffer in hand
                gw.stop()
        finally:
            self.stop_and_check(gw, up)


if __name__ == "__main__":
    unittest.main(verbosity=2)
