#!/usr/bin/python3
"""`mcpgate demo`: the lab in one command, checked step by step from its output; everything it
starts stops with it, also when it is interrupted under --keep. Everything on 127.0.0.1."""
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

MCPGATE = os.environ["MCPGATE_BIN"]


def processes_mentioning(text):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


class Demo(unittest.TestCase):
    def test_the_lab_step_by_step(self):
        with tempfile.TemporaryDirectory() as d:
            work = os.path.join(d, "work")
            r = subprocess.run([MCPGATE, "demo", "--dir", work], capture_output=True, text=True, timeout=120)
            out = r.stdout
            self.assertEqual(r.returncode, 0, out + r.stderr)
            # The lab's steps, in order.
            headings = re.findall(r"^== (.*) ==$", out, re.M)
            self.assertEqual([h.split(":")[0] for h in headings],
                             ["Step 1", "Step 2", "Step 3", "Step 4", "The same call refused", "Hardened", "Done"])
            # Step 1: the app registration as commands; Step 2: the lab's policy, unchanged.
            self.assertRegex(out, r"\$ mcpgate idp --data \S+ app create --name mcp-lab-agent")
            client_id = re.search(r"Application \(client\) ID:\s+(\S+)", out).group(1)
            with open(os.path.join(work, "lab-policy.xml")) as f:
                policy = f.read()
            self.assertIn('<validate-azure-ad-token tenant-id="{{aad-tenant-id}}">', policy)
            self.assertIn("<application-id>{{aad-client-application-id}}</application-id>", policy)
            # Step 3: the lab's Graph-scoped token; Step 4: tools/list and tools/call pass.
            self.assertIn("a v1.0 token for https://graph.microsoft.com", out)
            self.assertRegex(out, r"tools: echo, add, time, ")
            self.assertIn('"text": "Hello from the lab"', out)
            # Refused: no token, another application, an expired token, each for its reason.
            refused = out.split("== The same call refused ==")[1].split("== Hardened")[0]
            self.assertEqual(refused.count("-> exit 1"), 3)
            self.assertIn('401 { "statusCode": 401, "message": "JWT not present." }', refused)
            self.assertEqual(refused.count('401 { "statusCode": 401, "message": "Invalid JWT." }'), 2)
            self.assertIn("TokenClaimValueNotAllowed", refused)
            self.assertIn("TokenExpired", refused)
            # Hardened: the metadata document, a v2 token for the API passes, the Graph token does
            # not, with the MCP challenge.
            hardened = out.split("== Hardened")[1]
            prm = json.loads(re.search(r"^\s+(\{\"resource\".*)$", hardened, re.M).group(1))
            self.assertEqual(prm["scopes_supported"], ["api://mcp-lab-api/.default"])
            self.assertTrue(prm["authorization_servers"][0].endswith("/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"))
            self.assertIn("a v2.0 token for", hardened)
            self.assertIn('"text": "42"', hardened)
            self.assertIn('WWW-Authenticate: Bearer error="invalid_token", resource_metadata=', hardened)
            self.assertNotIn(client_id + "\n", r.stderr)
            # Nothing it started is left.
            self.assertEqual(processes_mentioning(work), [])
            # A kept directory is not reused: its emulator already has the lab's tenant.
            again = subprocess.run([MCPGATE, "demo", "--dir", work], capture_output=True, text=True, timeout=60)
            self.assertEqual(again.returncode, 1)
            self.assertIn("is not empty", again.stderr)

    def test_keep_then_ctrl_c(self):
        with tempfile.TemporaryDirectory() as d:
            work = os.path.join(d, "work")
            p = subprocess.Popen([MCPGATE, "demo", "--keep", "--dir", work], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
            try:
                lines = []
                deadline = time.time() + 120
                for line in p.stdout:
                    lines.append(line)
                    if "Ctrl-C ends it" in line or time.time() > deadline:
                        break
                self.assertIn("Ctrl-C ends it", "".join(lines))
                self.assertGreaterEqual(len(processes_mentioning(work)), 4)  # idp x2, sample-server, gateway
                p.send_signal(signal.SIGINT)
                self.assertEqual(p.wait(30), 0)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                p.stdout.close()
            self.assertEqual(processes_mentioning(work), [])
            self.assertTrue(os.path.exists(os.path.join(work, "gateway.yaml")))  # --dir is kept


if __name__ == "__main__":
    unittest.main()
