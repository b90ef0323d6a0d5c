"""A scriptable HTTP/1.1 upstream for gateway tests: JSON echo, chunked bodies, SSE with
acknowledgements, slow answers, resets and garbage. Binds 127.0.0.1 on a free port."""
import json
import select
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


RAW_ANSWERS = {
    # One value repeated in a list (RFC 9110 §8.6 lets it be read as one), then lists that differ.
    "length-list": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5, 5\r\n\r\nhello",
    "length-clash": b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
    "two-framings": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n0\r\n\r\n",
    "big-head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 9000 + b"\r\nContent-Length: 2\r\n\r\nok",
    "no-reason": b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",
    # Bytes past the answer's length: the connection is not used again (they would be read as
    # the next answer's).
    "overlong": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
    "stray": b"HTTP/1.1 204 No Content\r\n\r\nJUNK",  # a 204 has no body: these are stray
    # A coding the gateway does not apply, the body ending at close: relayed re-chunked, labelled.
    "gzip-close": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nXYZ",
}
# Whether an answer lets its connection be used again (RFC 9112 §9.3); this side keeps each open.
RAW_ANSWERS.update({
    "http10": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "http10-keep": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    "says-close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
})
KEEP_OPEN = ("overlong", "stray", "http10", "http10-keep", "says-close")


class FakeUpstream:
    def __init__(self, tls=None):
        """tls: (cert_file, key_file) to serve HTTPS; the SNI names clients sent go to self.sni."""
        self.sni = []
        self.connections = 0
        self.requests = []
        self.acks = {}
        self.disconnects = {}
        self.lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with upstream.lock:
                    upstream.connections += 1

            def body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length", 0))
                return self.rfile.read(n) if n else b""

            def send_json(self, status, obj, extra=None):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def handle_any(self):
                url = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                body = self.body()
                record = {"method": self.command, "path": self.path, "peer": self.client_address[1],
                          "headers": dict(self.headers.items()),
                          "header_list": list(self.headers.items()), "body_len": len(body)}
                with upstream.lock:
                    upstream.requests.append(record)
                name = url.path.rstrip("/").split("/")[-1]
                if name == "echo":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif name == "early":
                    # An interim answer (103 Early Hints) before the final one.
                    self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
                    self.wfile.flush()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "5")
                    self.end_headers()
                    self.wfile.write(b"final")
                elif name == "endless-early":
                    # Interim answers without end (the gateway gives up after a bound).
                    try:
                        for _ in range(1000):
                            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\n\r\n")
                        self.wfile.flush()
                    except OSError:
                        pass
                    self.close_connection = True
                elif name == "cut":
                    # A head, the start of a chunk size, then the connection ends.
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n1")
                    self.wfile.flush()
                    self.close_connection = True
                elif name == "hop":
                    # Fields that describe this connection only, and one the gateway sets itself.
                    data = json.dumps(record).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Connection", "keep-alive, X-Hop-Out")
                    self.send_header("X-Hop-Out", "1")
                    self.send_header("Keep-Alive", "timeout=5")
                    self.send_header("X-Request-Id", "from-the-upstream")
                    self.end_headers()
                    self.wfile.write(data)
                elif name == "big":
                    # More than Beast's default body limit (8 MiB), chunked, in 64 KiB pieces.
                    total = int(q.get("mib", 9)) << 20
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    piece = bytes(range(256)) * 256  # byte i of the body is i % 256
                    for _ in range(total // len(piece)):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                elif name == "chunked":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for part in (b"one,", b"two,", b"three"):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                        self.wfile.flush()
                        time.sleep(0.05)
                    self.wfile.write(b"0\r\n\r\n")
                elif name == "sse":
                    n = int(q.get("n", 3))
                    stream = q.get("id", "s")
                    if q.get("close"):
                        # No length and no chunks: the body ends when the connection does.
                        self.send_response(200)
                        self.send_header("Content-Type", "text/event-stream")
                        self.send_header("Connection", "close")
                        self.end_headers()
                        for i in range(n):
                            self.wfile.write(f"id: {i}\ndata: {{\"n\": {i}}}\n\n".encode())
                            self.wfile.flush()
                        self.close_connection = True
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    if q.get("hold"):
                        # One event, then silence until the peer (the gateway) hangs up.
                        event = b"id: 0\ndata: {\"n\": 0}\n\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                        self.wfile.flush()
                        deadline = time.time() + 30
                        while time.time() < deadline:
                            r, _, _ = select.select([self.connection], [], [], 0.05)
                            if r and self.connection.recv(1, socket.MSG_PEEK) == b"":
                                with upstream.lock:
                                    upstream.disconnects[stream] = time.time()
                                break
                        self.close_connection = True
                        return
                    for i in range(n):
                        event = f"id: {i}\ndata: {{\"n\": {i}}}\n\n".encode()
                        chunk = b"%x\r\n%s\r\n" % (len(event), event)
                        if q.get("split"):
                            # In pieces, each its own send after a pause: a size line, the data
                            # and the CRLFs arrive cut where a parser must wait for more.
                            for piece in (chunk[:1], chunk[1:3], chunk[3:9], chunk[9:-1], chunk[-1:]):
                                self.wfile.write(piece)
                                self.wfile.flush()
                                time.sleep(0.02)
                            continue
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        if q.get("gap") and i + 1 < n:
                            time.sleep(float(q["gap"]))
                        if q.get("ack") and i + 1 < n:
                            # The next event goes only after the client said it got this one:
                            # a buffering proxy deadlocks here and the test times out.
                            ev = upstream.ack_event(stream, i)
                            if not ev.wait(10):
                                return
                    self.wfile.write(b"0\r\n\r\n")
                elif name == "slow":
                    time.sleep(float(q.get("delay", 2)))
                    self.send_json(200, {"slow": True})
                elif name == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    self.close_connection = True
                elif name == "garbage":
                    self.wfile.write(b"this is not HTTP\r\n\r\n")
                    self.wfile.flush()
                    self.close_connection = True
                elif name in RAW_ANSWERS:
                    # An answer written as it stands (framing the gateway must read, or refuse).
                    self.wfile.write(RAW_ANSWERS[name])
                    self.wfile.flush()
                    self.close_connection = name not in KEEP_OPEN
                elif name.isdigit():
                    self.send_json(int(name), {"status": int(name)})
                else:
                    self.send_json(200, record, {"X-Upstream": "fake"})

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = handle_any

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError)):
                    super().handle_error(request, client_address)  # TLS refusals are expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            ctx.sni_callback = lambda sock, name, _ctx: self.sni.append(name)
            # The handshake runs in the handler's thread (on first read), not in accept().
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
            self.url = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ack_event(self, stream, i):
        with self.lock:
            return self.acks.setdefault((stream, i), threading.Event())

    def ack(self, stream, i):
        self.ack_event(stream, i).set()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
