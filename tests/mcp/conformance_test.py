#!/usr/bin/python3
"""The official MCP conformance suite (@modelcontextprotocol/conformance 0.1.16, every server
scenario: `--suite all`, the pending ones too) against `mcpgate sample-server`, and again through
`mcpgate gateway` in front of it. No check may fail. Everything on 127.0.0.1 (the suite wants a
localhost URL)."""
import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from gateway import Gateway  # noqa: E402
from sample_server import SampleServer  # noqa: E402

SUITE = os.path.join(ROOT, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
SHIM = os.path.join(ROOT, "tests", "support", "node20-glob.mjs")
EXPECTED = 32  # server scenarios in 0.1.16: 30 active, 2 pending


class Conformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.gw = None
        cls.server = SampleServer(threads=2).start()
        cls.url = cls.server.url
        origin = cls.server.origin
        cls.gw = Gateway(f"""
listeners: [{{port: 0}}]
backends: {{sample: {{url: "{origin}"}}}}
apis:
  - {{name: mcp, path: /mcp, type: mcp, backend: sample, allowed_hosts: [localhost, 127.0.0.1]}}
""").start()

    @classmethod
    def tearDownClass(cls):
        if cls.gw:
            cls.gw.cleanup()
        cls.server.stop()
        cls.dir.cleanup()

    def run_suite(self, url, name):
        out = os.path.join(self.dir.name, name)
        r = subprocess.run(["node", "--import", SHIM, SUITE, "server", "--url", url.replace("127.0.0.1", "localhost"),
                            "--suite", "all", "-o", out],
                           capture_output=True, text=True, timeout=600, cwd=self.dir.name)
        self.assertEqual(r.returncode, 0, r.stdout[-4000:] + r.stderr[-2000:])
        summary = r.stdout[r.stdout.rfind("=== SUMMARY ==="):]
        self.assertIn("Total:", summary)
        runs = glob.glob(os.path.join(out, "server-*", "checks.json"))
        self.assertEqual(len(runs), EXPECTED, summary)
        for path in runs:
            with open(path) as f:
                checks = json.load(f)
            failed = [c["id"] for c in checks if c["status"] == "FAILURE"]
            self.assertEqual(failed, [], path)
        self.assertRegex(summary, r"Total: \d+ passed, 0 failed")
        return summary

    def test_sample_server(self):
        self.run_suite(self.url, "direct")

    def test_through_the_gateway(self):
        self.run_suite(self.gw.url + "/mcp", "gateway")


if __name__ == "__main__":
    unittest.main()
