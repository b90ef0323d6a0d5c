#!/usr/bin/python3
"""`mcpgate jwt decode|verify` as a person or a script uses them: token sources, exit codes, output."""
import json
import os
import subprocess
import tempfile
import unittest

MCPGATE = os.environ["MCPGATE_BIN"]
TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata", "jwt")


def mcpgate(*args, stdin=None):
    return subprocess.run([MCPGATE, *args], input=stdin, capture_output=True, text=True, timeout=30)


def vector(name, file="vectors.json"):
    with open(os.path.join(TESTDATA, file)) as f:
        doc = json.load(f)
    return doc["now"], next(c for c in doc["cases"] if c["name"] == name)


class JwtCli(unittest.TestCase):
    def setUp(self):
        self.now, self.v2 = vector("entra-v2-rs256")
        self.jwks = os.path.join(TESTDATA, "jwks.json")
        self.tid = self.v2["requirements"]["entra"]["tenant"]
        self.client = self.v2["requirements"]["client_ids"][0]
        self.api = self.v2["requirements"]["audiences"][0]

    def entra_verify(self, *args, stdin=None):
        return mcpgate("jwt", "verify", *args, "--jwks", self.jwks, "--tenant", self.tid, "--client-id", self.client,
                       "--audience", self.api, "--now", str(self.now), stdin=stdin)

    def test_decode_shows_header_claims_and_readable_times(self):
        r = mcpgate("jwt", "decode", self.v2["token"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"azp": "%s"' % self.client, r.stdout)
        self.assertIn("exp  2027-01-15 08:55:00 UTC", r.stdout)
        self.assertIn("NOT verified", r.stdout)
        r = mcpgate("jwt", "decode", "--json", "-", stdin=self.v2["token"] + "\n")
        out = json.loads(r.stdout)
        self.assertEqual(out["header"]["alg"], "RS256")
        self.assertFalse(out["verified"])

    def test_decode_rejects_garbage_without_echoing_it(self):
        r = mcpgate("jwt", "decode", "not-a-token-SECRETVALUE")
        self.assertEqual(r.returncode, 1)
        self.assertIn("three base64url parts", r.stderr)
        self.assertNotIn("SECRETVALUE", r.stderr)

    def test_verify_from_argument_file_and_stdin(self):
        self.assertEqual(self.entra_verify(self.v2["token"]).returncode, 0)
        with tempfile.NamedTemporaryFile("w", suffix=".jwt") as f:
            f.write(self.v2["token"] + "\n")
            f.flush()
            r = self.entra_verify("--token-file", f.name)
            self.assertEqual(r.returncode, 0, r.stderr)
        r = self.entra_verify("-", stdin="Bearer " + self.v2["token"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("valid: RS256 token", r.stdout)

    def test_verify_reports_reason_and_exit_code(self):
        r = self.entra_verify(self.v2["token"], "--clock-skew", "0")
        self.assertEqual(r.returncode, 0)
        r = mcpgate("jwt", "verify", self.v2["token"], "--jwks", self.jwks, "--tenant", self.tid, "--now", "1900000000")
        self.assertEqual(r.returncode, 1)
        self.assertIn("invalid: TokenExpired: token expired at 2027-01-15T08:55:00Z", r.stderr)
        r = mcpgate("jwt", "verify", self.v2["token"], "--jwks", self.jwks, "--tenant",
                    "aaaaaaaa-1111-4222-8333-444444444444", "--now", str(self.now), "--json")
        self.assertEqual(r.returncode, 1)
        out = json.loads(r.stdout)
        self.assertEqual(out["reason"], "TokenIssuerNotAllowed")
        r = mcpgate("jwt", "verify", self.v2["token"], "--jwks", self.jwks, "--now", str(self.now),
                    "--require-claim", "roles=Tools.Call,Admin", "--json")
        self.assertEqual(json.loads(r.stdout)["reason"], "TokenClaimValueNotAllowed")
        r = mcpgate("jwt", "verify", self.v2["token"], "--jwks", self.jwks, "--now", str(self.now),
                    "--require-any-claim", "roles=Tools.Call,Admin", "--json")
        self.assertTrue(json.loads(r.stdout)["valid"])

    def test_graph_token_needs_the_graph_rule(self):
        now, graph = vector("entra-graph-nonce")
        base = ["jwt", "verify", graph["token"], "--jwks", self.jwks, "--tenant", self.tid, "--now", str(now), "--json"]
        r = mcpgate(*base)
        self.assertEqual(json.loads(r.stdout)["reason"], "TokenSignatureInvalid")
        r = mcpgate(*base, "--graph-nonce")
        out = json.loads(r.stdout)
        self.assertTrue(out["valid"], r.stdout)
        self.assertTrue(out["graph_nonce_rule"])

    def test_usage_errors_exit_2(self):
        self.assertEqual(mcpgate("jwt", "verify", self.v2["token"]).returncode, 2)  # no keys
        self.assertEqual(mcpgate("jwt", "verify", "--jwks", self.jwks).returncode, 2)  # no token
        self.assertEqual(mcpgate("jwt", "verify", self.v2["token"], "--jwks", "/nonexistent").returncode, 2)
        # A domain tenant is resolved through discovery; here nothing listens (loopback only).
        r = mcpgate("jwt", "verify", self.v2["token"], "--jwks", self.jwks, "--tenant", "contoso.onmicrosoft.com",
                    "--authority", "https://127.0.0.1:1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("tenant discovery: connecting to 127.0.0.1:1", r.stderr)
        r = mcpgate("jwt", "verify", self.v2["token"], "--jwks-url", "ftp://127.0.0.1/keys")
        self.assertEqual(r.returncode, 2)
        self.assertIn("only http and https", r.stderr)
        self.assertEqual(mcpgate("jwt", "frobnicate").returncode, 2)
        self.assertEqual(mcpgate("jwt", "verify", self.v2["token"], "--jwks", self.jwks, "--alg", "XX256").returncode, 2)

    def test_jwks_warnings_do_not_stop_verification(self):
        r = self.entra_verify(self.v2["token"])
        self.assertIn("unknown kty \"OKP\"", r.stderr)
        self.assertEqual(r.returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
