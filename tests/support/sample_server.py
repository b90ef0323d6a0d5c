"""Starts a real `mcpgate sample-server` on a free loopback port and stops it by its process id."""
import json
import os
import signal
import subprocess
import tempfile
import time

MCPGATE = os.environ["MCPGATE_BIN"]


class SampleServer:
    def __init__(self, threads=1):
        self.dir = tempfile.TemporaryDirectory(prefix="mcpgate-sample-")
        self.threads = threads
        self.proc = None

    def start(self):
        ready = os.path.join(self.dir.name, "ready.json")
        self.proc = subprocess.Popen([MCPGATE, "sample-server", "--listen", "127.0.0.1:0", "--ready-file", ready,
                                      "--threads", str(self.threads)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise AssertionError("sample-server did not start")
            time.sleep(0.02)
        with open(ready) as f:
            self.url = json.load(f)["mcp"][0]  # http://127.0.0.1:PORT/mcp
        self.origin = self.url.rsplit("/", 1)[0]
        self.port = int(self.origin.rsplit(":", 1)[1])
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.dir.cleanup()
