#!/usr/bin/python3
"""Regenerates testdata/jwt/: keys, a JWKS, valid token vectors and the attack corpus.

Every signature is made by the `openssl` command-line tool, not by mcpgate, so the vectors are an
independent check of our verifier. Run from anywhere: `/usr/bin/python3 scripts/make_jwt_vectors.py`.
Keys are new on every run; the tests read whatever is committed.
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "testdata", "jwt")
KEYS = os.path.join(OUT, "keys")
NOW = 1800000000  # every vector is judged at this instant (2027-01-15T08:00:00Z)
TID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TID = "aaaaaaaa-1111-4222-8333-444444444444"
MSA_TID = "9188040d-6c67-4c5b-b112-36a304b66dad"
API = "6e3bb1f2-1f57-4b57-9c6e-2f2b8a9c0d11"      # the API's app (client) id
CLIENT = "0d2c9f4a-7a43-4a4c-8f4e-3e0b0f6a5b21"   # the calling client's app id
SP = "5f0c3a1e-2b7d-4c1e-9a8f-6d5e4c3b2a10"       # the client's service principal


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def run(args, data=None):
    return subprocess.run(args, input=data, check=True, capture_output=True).stdout


def key_path(name):
    return os.path.join(KEYS, name)


def make_keys():
    os.makedirs(KEYS, exist_ok=True)
    for name in ("rsa-a", "rsa-b", "attacker"):
        run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key_path(name + ".pem")])
    for name, curve in (("ec-256", "P-256"), ("ec-384", "P-384"), ("ec-521", "P-521")):
        run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:" + curve, "-out", key_path(name + ".pem")])
    # rsa-a is published the way Entra ID publishes keys: a self-signed certificate, kid = x5t.
    run(["openssl", "req", "-x509", "-new", "-key", key_path("rsa-a.pem"), "-subj", "/CN=accounts.accesscontrol.windows.net",
         "-days", "3650", "-out", key_path("rsa-a.crt")])
    run(["openssl", "req", "-x509", "-new", "-key", key_path("attacker.pem"), "-subj", "/CN=attacker",
         "-days", "3650", "-out", key_path("attacker.crt")])
    with open(key_path("hs.secret"), "wb") as f:
        f.write(os.urandom(64))


def cert_der(name):
    return run(["openssl", "x509", "-in", key_path(name + ".crt"), "-outform", "DER"])


def rsa_numbers(name):
    text = run(["openssl", "pkey", "-in", key_path(name + ".pem"), "-noout", "-text"]).decode()
    lines = text.splitlines()
    hexdigits = ""
    take = False
    for line in lines:
        if line.startswith("modulus:"):
            take = True
            continue
        if take:
            if line.startswith(" "):
                hexdigits += line.strip().replace(":", "")
            else:
                break
    n = bytes.fromhex(hexdigits).lstrip(b"\0")
    return n, b"\x01\x00\x01"


def ec_point(name, size):
    der = run(["openssl", "pkey", "-in", key_path(name + ".pem"), "-pubout", "-outform", "DER"])
    point = der[-(2 * size + 1):]
    assert point[0] == 4
    return point[1:1 + size], point[1 + size:]


def kid_of(name):
    return b64u(hashlib.sha1(cert_der(name)).digest())


def make_jwks():
    keys = []
    n, e = rsa_numbers("rsa-a")
    der = cert_der("rsa-a")
    keys.append({"kty": "RSA", "use": "sig", "kid": kid_of("rsa-a"), "x5t": kid_of("rsa-a"), "n": b64u(n), "e": b64u(e),
                 "x5c": [base64.b64encode(der).decode()], "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0"})
    n, e = rsa_numbers("rsa-b")
    keys.append({"kty": "RSA", "use": "sig", "kid": "rsa-b", "n": b64u(n), "e": b64u(e)})
    for name, crv, size in (("ec-256", "P-256", 32), ("ec-384", "P-384", 48), ("ec-521", "P-521", 66)):
        x, y = ec_point(name, size)
        keys.append({"kty": "EC", "use": "sig", "kid": name, "crv": crv, "x": b64u(x), "y": b64u(y)})
    with open(key_path("hs.secret"), "rb") as f:
        keys.append({"kty": "oct", "kid": "hs", "k": b64u(f.read())})
    keys.append({"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})
    return {"keys": keys}


def der_to_raw(der, size):
    # SEQUENCE { INTEGER r, INTEGER s }
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        length = der[i + 1]
        value = der[i + 2:i + 2 + length].lstrip(b"\0")
        out += value.rjust(size, b"\0")
        i += 2 + length
    return out


def openssl_sign(alg, key, data: bytes) -> bytes:
    digest = "-sha" + alg[2:]
    if alg.startswith("HS"):
        with open(key_path(key), "rb") as f:
            secret = f.read()
        return run(["openssl", "dgst", digest, "-binary", "-mac", "HMAC", "-macopt", "hexkey:" + secret.hex()], data)
    args = ["openssl", "dgst", digest, "-binary", "-sign", key_path(key)]
    if alg.startswith("PS"):
        args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
    sig = run(args, data)
    if alg.startswith("ES"):
        sig = der_to_raw(sig, {"256": 32, "384": 48, "512": 66}[alg[2:]])
    return sig


def compact(header, claims):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    c = claims if isinstance(claims, bytes) else json.dumps(claims, separators=(",", ":")).encode()
    return b64u(h) + "." + b64u(c)


def jws(alg, key, header, claims, signed_header=None):
    header = dict(header)
    header.setdefault("alg", alg)
    body = compact(header, claims)
    signing_input = compact(signed_header, claims) if signed_header else body
    return body + "." + b64u(openssl_sign(alg, key, signing_input.encode()))


def entra_claims(version, **overrides):
    iat = NOW - 600
    c = {"aud": API if version == 2 else "api://" + API,
         "iss": f"https://login.microsoftonline.com/{TID}/v2.0" if version == 2 else f"https://sts.windows.net/{TID}/",
         "iat": iat, "nbf": iat, "exp": iat + 3900, "aio": "E2RgYDhW/cGvNHBfg0ufB7QVdQmAAA==",
         "oid": SP, "rh": "1.AREAv4j5cvGGr0GRqy180BHbR_KbO26JH1dLnG4vK4qcDRFAAAA.", "roles": ["Tools.Call", "Tools.Read"],
         "sub": SP, "tid": TID, "uti": "u1TnRc8ca062Otegxw1eAA", "ver": "2.0" if version == 2 else "1.0"}
    if version == 2:
        c.update({"azp": CLIENT, "azpacr": "1"})
    else:
        c.update({"appid": CLIENT, "appidacr": "1", "idp": f"https://sts.windows.net/{TID}/"})
    c.update(overrides)
    return c


ENTRA_REQ = {"entra": {"tenant": TID}, "audiences": [API, "api://" + API], "client_ids": [CLIENT]}
GENERIC = {"iss": "https://issuer.example", "aud": "api://generic", "exp": NOW + 300, "sub": "alice"}
GENERIC_REQ = {"issuers": ["https://issuer.example"], "audiences": ["api://generic"]}


def valid_vectors():
    kid = kid_of("rsa-a")
    v = []
    v.append({"name": "entra-v2-rs256", "token": jws("RS256", "rsa-a.pem", {"typ": "JWT", "kid": kid}, entra_claims(2)),
              "requirements": ENTRA_REQ, "expect": "valid"})
    v.append({"name": "entra-v1-rs256", "token": jws("RS256", "rsa-a.pem", {"typ": "JWT", "x5t": kid, "kid": kid}, entra_claims(1)),
              "requirements": ENTRA_REQ, "expect": "valid"})
    v.append({"name": "entra-v2-roles", "token": jws("RS256", "rsa-a.pem", {"typ": "JWT", "kid": kid}, entra_claims(2)),
              "requirements": dict(ENTRA_REQ, claims=[{"name": "roles", "match": "all", "values": ["Tools.Call"]}]),
              "expect": "valid"})
    nonce = "xY2zgYcVd1hOqG8mJ7h-Q4_xF3kPZ0tNwRcAeVbLd9o"
    graph_header = {"typ": "JWT", "nonce": nonce, "alg": "RS256", "x5t": kid, "kid": kid}
    signed_header = dict(graph_header, nonce=b64u(hashlib.sha256(nonce.encode()).digest()))
    graph_claims = entra_claims(1, aud="https://graph.microsoft.com", idtyp="app", roles=["User.Read.All"])
    v.append({"name": "entra-graph-nonce", "token": jws("RS256", "rsa-a.pem", graph_header, graph_claims, signed_header),
              "requirements": {"entra": {"tenant": TID}, "client_ids": [CLIENT], "graph": True}, "expect": "valid"})
    for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        v.append({"name": alg.lower(), "token": jws(alg, "rsa-b.pem", {"kid": "rsa-b"}, GENERIC),
                  "requirements": GENERIC_REQ, "expect": "valid"})
    for alg, key in (("ES256", "ec-256"), ("ES384", "ec-384"), ("ES512", "ec-521")):
        v.append({"name": alg.lower(), "token": jws(alg, key + ".pem", {"kid": key}, GENERIC),
                  "requirements": GENERIC_REQ, "expect": "valid"})
    for alg in ("HS256", "HS384", "HS512"):
        v.append({"name": alg.lower(), "token": jws(alg, "hs.secret", {"kid": "hs"}, GENERIC),
                  "requirements": GENERIC_REQ, "expect": "valid"})
    v.append({"name": "fractional-exp-no-kid", "token": jws("RS256", "rsa-b.pem", {}, dict(GENERIC, exp=NOW + 0.5)),
              "requirements": GENERIC_REQ, "expect": "valid"})
    return v


def attack_vectors():
    kid = kid_of("rsa-a")
    a = []

    def add(name, token, expect, requirements=None, contains=None):
        entry = {"name": name, "token": token, "requirements": requirements or ENTRA_REQ, "expect": expect}
        if contains:
            entry["message_contains"] = contains
        a.append(entry)

    good = jws("RS256", "rsa-a.pem", {"typ": "JWT", "kid": kid}, entra_claims(2))
    body = good.rsplit(".", 1)[0]
    sig = good.rsplit(".", 1)[1]
    claims = entra_claims(2)
    add("alg-none", compact({"alg": "none", "typ": "JWT"}, claims) + ".", "TokenSignatureInvalid", contains="not signed")
    for casing in ("None", "NONE", "nOnE"):
        add("alg-" + casing, compact({"alg": casing, "typ": "JWT"}, claims) + ".", "JwtInvalid", contains="unsupported algorithm")
    add("alg-none-with-signature", compact({"alg": "none"}, claims) + "." + sig, "JwtInvalid")
    add("alg-empty", compact({"alg": ""}, claims) + "." + sig, "JwtInvalid")
    # HS256 signed with the RSA public key (PEM bytes) as the secret, naming the RSA key.
    pem = run(["openssl", "pkey", "-in", key_path("rsa-a.pem"), "-pubout"])
    hs_body = compact({"alg": "HS256", "typ": "JWT", "kid": kid}, claims)
    hs_sig = run(["openssl", "dgst", "-sha256", "-binary", "-mac", "HMAC", "-macopt", "hexkey:" + pem.hex()], hs_body.encode())
    add("hs256-with-rsa-public-key", hs_body + "." + b64u(hs_sig), "TokenSignatureInvalid", contains="cannot verify HS256")
    hs_body2 = compact({"alg": "HS256", "typ": "JWT"}, claims)
    hs_sig2 = run(["openssl", "dgst", "-sha256", "-binary", "-mac", "HMAC", "-macopt", "hexkey:" + pem.hex()], hs_body2.encode())
    add("hs256-with-rsa-public-key-no-kid", hs_body2 + "." + b64u(hs_sig2), "TokenSignatureInvalid",
        requirements=dict(ENTRA_REQ, algorithms=["RS256", "HS256"]))
    add("hs256-not-in-entra-allow-list", hs_body2 + "." + b64u(hs_sig2), "TokenSignatureInvalid",
        requirements=dict(ENTRA_REQ, algorithms=["RS256"]), contains="not allowed")
    add("kid-points-at-other-key", jws("RS256", "rsa-b.pem", {"kid": kid}, claims), "TokenSignatureInvalid")
    for n, bad_kid in enumerate(("../../../../etc/passwd", "' OR '1'='1' --", "rsa-b\u0000", "%2e%2e%2f", kid.lower())):
        add(f"kid-injection-{n}", jws("RS256", "attacker.pem", {"kid": bad_kid}, claims), "TokenSignatureKeyNotFound")
    add("no-kid-many-keys", jws("RS256", "attacker.pem", {}, claims), "TokenSignatureInvalid", contains="candidate keys")
    add("expired", jws("RS256", "rsa-a.pem", {"kid": kid}, entra_claims(2, exp=NOW - 1)), "TokenExpired")
    add("not-yet-valid", jws("RS256", "rsa-a.pem", {"kid": kid}, entra_claims(2, nbf=NOW + 600)), "JwtInvalid",
        contains="not valid before")
    add("exp-string", jws("RS256", "rsa-a.pem", {"kid": kid}, entra_claims(2, exp=str(NOW + 600))), "JwtInvalid",
        contains="NumericDate")
    add("exp-negative", jws("RS256", "rsa-a.pem", {"kid": kid}, entra_claims(2, exp=-5)), "JwtInvalid")
    body_huge = json.dumps(entra_claims(2), separators=(",", ":")).replace(str(NOW - 600 + 3900), "1e400").encode()
    add("exp-out-of-range", jws("RS256", "rsa-a.pem", {"kid": kid}, body_huge), "JwtInvalid", contains="out of range")
    add("exp-year-10000", jws("RS256", "rsa-a.pem", {"kid": kid}, entra_claims(2, exp=253402300800)), "JwtInvalid")
    add("no-exp", jws("RS256", "rsa-a.pem", {"kid": kid}, {k: v for k, v in claims.items() if k != "exp"}), "JwtInvalid",
        contains="no expiration")
    add("wrong-issuer", jws("RS256", "rsa-b.pem", {"kid": "rsa-b"}, dict(GENERIC, iss="https://evil.example")),
        "TokenIssuerNotAllowed", requirements=GENERIC_REQ)
    add("v1-issuer-with-ver-2", jws("RS256", "rsa-a.pem", {"kid": kid}, entra_claims(2, iss=f"https://sts.windows.net/{TID}/")),
        "TokenIssuerNotAllowed")
    add("v2-issuer-with-ver-1", jws("RS256", "rsa-a.pem", {"kid": kid},
                                     entra_claims(1, iss=f"https://login.microsoftonline.com/{TID}/v2.0")), "TokenIssuerNotAllowed")
    add("wrong-tenant", jws("RS256", "rsa-a.pem", {"kid": kid},
                             entra_claims(2, tid=OTHER_TID, iss=f"https://login.microsoftonline.com/{OTHER_TID}/v2.0")),
        "TokenIssuerNotAllowed", contains=OTHER_TID)
    add("tid-and-iss-disagree", jws("RS256", "rsa-a.pem", {"kid": kid},
                                     entra_claims(2, iss=f"https://login.microsoftonline.com/{OTHER_TID}/v2.0")),
        "TokenIssuerNotAllowed")
    add("organizations-with-personal-account-tenant",
        jws("RS256", "rsa-a.pem", {"kid": kid}, entra_claims(2, tid=MSA_TID, iss=f"https://login.microsoftonline.com/{MSA_TID}/v2.0")),
        "TokenIssuerNotAllowed", requirements=dict(ENTRA_REQ, entra={"tenant": "organizations"}), contains="personal")
    add("other-cloud-issuer", jws("RS256", "rsa-a.pem", {"kid": kid}, entra_claims(2, iss=f"https://login.microsoftonline.us/{TID}/v2.0")),
        "TokenIssuerNotAllowed")
    add("wrong-audience", jws("RS256", "rsa-a.pem", {"kid": kid}, entra_claims(2, aud="00000003-0000-0000-c000-000000000000")),
        "TokenAudienceNotAllowed")
    add("api-uri-vs-guid-audience", jws("RS256", "rsa-a.pem", {"kid": kid}, entra_claims(2, aud="api://" + API)),
        "TokenAudienceNotAllowed", requirements=dict(ENTRA_REQ, audiences=[API]))
    add("guid-vs-api-uri-audience", jws("RS256", "rsa-a.pem", {"kid": kid}, entra_claims(2, aud=API)),
        "TokenAudienceNotAllowed", requirements=dict(ENTRA_REQ, audiences=["api://" + API]))
    add("wrong-client-id", jws("RS256", "rsa-a.pem", {"kid": kid}, entra_claims(2, azp=OTHER_TID)), "TokenClaimValueNotAllowed")
    add("appid-vs-azp-confusion", jws("RS256", "rsa-a.pem", {"kid": kid}, entra_claims(2, azp=OTHER_TID, appid=CLIENT)),
        "TokenClaimValueNotAllowed")
    add("azp-in-v1-token", jws("RS256", "rsa-a.pem", {"kid": kid},
                                {k: v for k, v in entra_claims(1, azp=CLIENT).items() if k != "appid"}), "TokenClaimNotFound")
    add("missing-required-role", good, "TokenClaimValueNotAllowed",
        requirements=dict(ENTRA_REQ, claims=[{"name": "roles", "match": "all", "values": ["Admin"]}]))
    dup = json.dumps(claims, separators=(",", ":"))[:-1] + ',"aud":"' + API + '"}'
    add("duplicate-claims", jws("RS256", "rsa-a.pem", {"kid": kid}, dup.encode()), "JwtInvalid", contains="duplicate")
    add("duplicate-header-alg", jws("RS256", "rsa-a.pem", {}, claims, None).replace(
        compact({"alg": "RS256"}, claims).split(".")[0], b64u(b'{"alg":"RS256","alg":"none"}'), 1), "JwtInvalid")
    add("trailing-garbage", good + "~", "JwtInvalid")
    add("trailing-dot-part", good + ".", "JwtInvalid")
    add("trailing-whitespace", good + " ", "JwtInvalid")
    add("inner-whitespace", body.replace(".", ". ", 1) + "." + sig, "JwtInvalid")
    add("padded-segment", body + "." + sig + "==", "JwtInvalid")
    add("huge-token-1mb", body + ".", "JwtInvalid", contains="limit")
    a[-1]["append_repeated"] = {"text": "A", "count": 1024 * 1024}  # built at test time: keeps the file small
    deep = b'{"exp":' + str(NOW + 600).encode() + b',"x":' + b"[" * 100 + b"]" * 100 + b"}"
    add("deeply-nested-json", jws("RS256", "rsa-a.pem", {"kid": kid}, deep), "JwtInvalid", contains="nesting")
    bad_utf8 = json.dumps(claims, separators=(",", ":")).encode().replace(b'"sub":"', b'"sub":"\xc3\x28', 1)
    add("invalid-utf8", jws("RS256", "rsa-a.pem", {"kid": kid}, bad_utf8), "JwtInvalid", contains="UTF-8")
    add("jwe-five-parts", b64u(b'{"alg":"RSA-OAEP","enc":"A256GCM"}') + ".a.b.c.d", "JwtInvalid", contains="encrypted tokens")
    add("crit-header", jws("RS256", "rsa-a.pem", {"kid": kid, "crit": ["exp"], "exp": 1}, claims), "JwtInvalid", contains="critical")
    n, e = rsa_numbers("attacker")
    add("embedded-jwk", jws("RS256", "attacker.pem", {"jwk": {"kty": "RSA", "n": b64u(n), "e": b64u(e)}}, claims),
        "TokenSignatureInvalid")
    add("jku-header", jws("RS256", "attacker.pem", {"jku": "https://evil.example/keys", "kid": "evil"}, claims),
        "TokenSignatureKeyNotFound")
    add("x5u-header-with-our-kid", jws("RS256", "attacker.pem", {"x5u": "https://evil.example/cert", "kid": kid}, claims),
        "TokenSignatureInvalid")
    add("x5c-header", jws("RS256", "attacker.pem", {"x5c": [base64.b64encode(cert_der("attacker")).decode()]}, claims),
        "TokenSignatureInvalid")
    nonce = "nonce-value-1"
    gh = {"typ": "JWT", "nonce": nonce, "alg": "RS256", "kid": kid}
    graph = jws("RS256", "rsa-a.pem", gh, entra_claims(1), dict(gh, nonce=b64u(hashlib.sha256(nonce.encode()).digest())))
    add("graph-token-without-graph-rule", graph, "TokenSignatureInvalid", contains="Microsoft Graph")
    add("graph-nonce-swapped", graph.replace(b64u(json.dumps(gh, separators=(",", ":")).encode()),
                                             b64u(json.dumps(dict(gh, nonce="other"), separators=(",", ":")).encode())),
        "TokenSignatureInvalid", requirements=dict(ENTRA_REQ, graph=True))
    es_der = compact({"alg": "ES256", "kid": "ec-256"}, GENERIC)
    der_sig = run(["openssl", "dgst", "-sha256", "-binary", "-sign", key_path("ec-256.pem")], es_der.encode())
    add("es256-der-signature", es_der + "." + b64u(der_sig), "TokenSignatureInvalid", requirements=GENERIC_REQ)
    ps_as_rs = jws("PS256", "rsa-b.pem", {"kid": "rsa-b"}, GENERIC)
    add("ps256-signature-labelled-rs256", compact({"kid": "rsa-b", "alg": "RS256"}, GENERIC) + "." + ps_as_rs.rsplit(".", 1)[1],
        "TokenSignatureInvalid", requirements=GENERIC_REQ)
    last = sig[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # A 256-byte signature is 342 symbols and leaves 4 unused bits; setting one is non-canonical.
    noncanonical = sig[:-1] + alphabet[alphabet.index(last) | 1] if alphabet.index(last) % 2 == 0 else None
    if noncanonical:
        add("non-canonical-base64url", body + "." + noncanonical, "JwtInvalid", contains="canonical")
    add("empty", "", "JwtInvalid")
    return a


def main():
    make_keys()
    jwks = make_jwks()
    with open(os.path.join(OUT, "jwks.json"), "w") as f:
        json.dump(jwks, f, indent=1)
    with open(os.path.join(OUT, "vectors.json"), "w") as f:
        json.dump({"now": NOW, "cases": valid_vectors()}, f, indent=1)
    with open(os.path.join(OUT, "attacks.json"), "w") as f:
        json.dump({"now": NOW, "cases": attack_vectors()}, f, indent=1)
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    sys.exit(main())
