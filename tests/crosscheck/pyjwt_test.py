#!/usr/bin/python3
"""Cross-check with PyJWT (Debian python3-jwt): tokens PyJWT signs verify in `mcpgate jwt verify`,
tampered ones do not, and tokens mcpgate signs verify in PyJWT."""
import json
import os
import subprocess
import tempfile
import time
import unittest

import jwt  # PyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

MCPGATE = os.environ["MCPGATE_BIN"]


def mcpgate(*args, stdin=None):
    return subprocess.run([MCPGATE, *args], input=stdin, capture_output=True, text=True, timeout=30)


class PyJwtCrossCheck(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cls.ec = {256: ec.generate_private_key(ec.SECP256R1()), 384: ec.generate_private_key(ec.SECP384R1()),
                  521: ec.generate_private_key(ec.SECP521R1())}
        cls.secret = os.urandom(64)
        keys = []
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(cls.rsa.public_key()))
        jwk["kid"] = "rsa"
        keys.append(jwk)
        for bits, key in cls.ec.items():
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            jwk["kid"] = f"ec{bits}"
            keys.append(jwk)
        jwk = json.loads(jwt.algorithms.HMACAlgorithm.to_jwk(cls.secret))
        jwk["kid"] = "hs"
        keys.append(jwk)
        cls.jwks = os.path.join(cls.dir.name, "jwks.json")
        with open(cls.jwks, "w") as f:
            json.dump({"keys": keys}, f)
        cls.rsa_pem = os.path.join(cls.dir.name, "rsa.pem")
        with open(cls.rsa_pem, "wb") as f:
            f.write(cls.rsa.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def claims(self, **extra):
        now = int(time.time())
        c = {"iss": "https://issuer.test", "aud": "api://test", "sub": "alice", "iat": now, "nbf": now, "exp": now + 600}
        c.update(extra)
        return c

    def verify(self, token, *extra):
        return mcpgate("jwt", "verify", token, "--jwks", self.jwks, "--issuer", "https://issuer.test",
                       "--audience", "api://test", "--json", *extra)

    def test_pyjwt_tokens_verify(self):
        cases = [("RS256", self.rsa, "rsa"), ("RS384", self.rsa, "rsa"), ("RS512", self.rsa, "rsa"),
                 ("PS256", self.rsa, "rsa"), ("PS384", self.rsa, "rsa"), ("PS512", self.rsa, "rsa"),
                 ("ES256", self.ec[256], "ec256"), ("ES384", self.ec[384], "ec384"), ("ES512", self.ec[521], "ec521"),
                 ("HS256", self.secret, "hs"), ("HS384", self.secret, "hs"), ("HS512", self.secret, "hs")]
        for alg, key, kid in cases:
            with self.subTest(alg=alg):
                token = jwt.encode(self.claims(), key, algorithm=alg, headers={"kid": kid})
                r = self.verify(token)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                out = json.loads(r.stdout)
                self.assertTrue(out["valid"])
                self.assertEqual(out["alg"], alg)
                self.assertEqual(out["claims"]["sub"], "alice")

    def test_tampered_and_foreign_tokens_fail(self):
        token = jwt.encode(self.claims(), self.rsa, algorithm="RS256", headers={"kid": "rsa"})
        head, payload, sig = token.split(".")
        forged_payload = jwt.utils.base64url_encode(json.dumps(self.claims(sub="mallory")).encode()).decode()
        r = self.verify(f"{head}.{forged_payload}.{sig}")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(json.loads(r.stdout)["reason"], "TokenSignatureInvalid")
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        r = self.verify(jwt.encode(self.claims(), other, algorithm="RS256", headers={"kid": "rsa"}))
        self.assertEqual(json.loads(r.stdout)["reason"], "TokenSignatureInvalid")
        r = self.verify(jwt.encode(self.claims(exp=int(time.time()) - 10), self.rsa, algorithm="RS256",
                                   headers={"kid": "rsa"}))
        self.assertEqual(json.loads(r.stdout)["reason"], "TokenExpired")
        r = self.verify(jwt.encode(self.claims(aud="api://other"), self.rsa, algorithm="RS256", headers={"kid": "rsa"}))
        self.assertEqual(json.loads(r.stdout)["reason"], "TokenAudienceNotAllowed")
        # PyJWT will happily make an unsigned token; we refuse it.
        r = self.verify(jwt.encode(self.claims(), None, algorithm="none"))
        self.assertEqual(json.loads(r.stdout)["reason"], "TokenSignatureInvalid")

    def test_mcpgate_tokens_verify_in_pyjwt(self):
        for alg in ("RS256", "PS256"):
            with self.subTest(alg=alg):
                r = mcpgate("jwt", "sign", "--key", self.rsa_pem, "--alg", alg, "--kid", "rsa",
                            "--claims", json.dumps(self.claims()))
                self.assertEqual(r.returncode, 0, r.stderr)
                token = r.stdout.strip()
                claims = jwt.decode(token, self.rsa.public_key(), algorithms=[alg], audience="api://test",
                                    issuer="https://issuer.test")
                self.assertEqual(claims["sub"], "alice")
                self.assertEqual(jwt.get_unverified_header(token)["kid"], "rsa")


if __name__ == "__main__":
    unittest.main(verbosity=2)
