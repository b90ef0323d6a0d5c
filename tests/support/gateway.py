"""Starts a real `mcpgate gateway` with a generated configuration and stops it by its pid."""
import json
import sys
import os
import signal
import socket
import subprocess
import tempfile
import time

MCPGATE = os.environ["MCPGATE_BIN"]


def closed_port():
    """A loopback port nothing listens on (bound, read and released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


CHECK_CONFIG = ("listeners: [{port: 0}]\nentra: {authority: 'https://127.0.0.1:1'}\n"
                "backends: {b: {url: 'http://127.0.0.1:1'}}\n")


def check_config(apis="apis: [{path: /x, backend: b, policy: p.xml}]\n", policy=None):
    """`mcpgate gateway --check` on a configuration with one dead backend `b` (and `apis`), and the
    policy document p.xml beside it; the CompletedProcess."""
    with tempfile.TemporaryDirectory() as d:
        if policy is not None:
            with open(os.path.join(d, "p.xml"), "w") as f:
                f.write(policy)
        with open(os.path.join(d, "gw.yaml"), "w") as f:
            f.write(CHECK_CONFIG + apis)
        return subprocess.run([MCPGATE, "gateway", "--check", "-c", os.path.join(d, "gw.yaml")],
                              capture_output=True, text=True, timeout=30)


def eventually(probe, timeout=5.0):
    """The first truthy value of probe() within timeout seconds (for effects that trail a response)."""
    deadline = time.time() + timeout
    while True:
        value = probe()
        if value or time.time() > deadline:
            if not value:
                raise AssertionError("condition not met within %.1fs" % timeout)
            return value
        time.sleep(0.02)


class Gateway:
    def __init__(self, config_text, args=()):
        self.args = list(args)
        self.dir = tempfile.TemporaryDirectory(prefix="mcpgate-gw-")
        self.config = os.path.join(self.dir.name, "mcpgate.yaml")
        with open(self.config, "w") as f:
            f.write(config_text)
        self.log_path = os.path.join(self.dir.name, "gateway.log")
        self.err_path = os.path.join(self.dir.name, "gateway.err")
        self.proc = None

    def start(self):
        ready = os.path.join(self.dir.name, "ready.json")
        self.out = open(self.log_path, "w")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen([MCPGATE, "gateway", "-c", self.config, "--ready-file", ready, *self.args],
                                     stdout=self.out, stderr=self.err)
        deadline = time.time() + 20
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()  # ours to end, by its pid
                with open(self.err_path) as f:
                    raise AssertionError("gateway did not start: " + f.read())
            time.sleep(0.02)
        with open(ready) as f:
            info = json.load(f)
        self.urls = info["listeners"]
        self.admin = info.get("admin")
        self.url = self.urls[0]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def write_config(self, text):
        """Replaces the configuration file the way editors do: a new file renamed over it."""
        tmp = self.config + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config)

    def stderr(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.err_path) as f:
            return f.read()

    def access_log(self):
        self.out.flush()
        with open(self.log_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.out.close()
            self.err.close()

    def cleanup(self):
        died = self.proc is not None and self.proc.poll() is not None and self.proc.returncode != 0
        self.stop()
        if died:
            with open(self.err_path) as f:
                print(f"gateway exited with {self.proc.returncode}:\n{f.read()}", file=sys.stderr)
        self.dir.cleanup()
