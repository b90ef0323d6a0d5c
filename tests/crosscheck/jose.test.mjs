// Cross-check with jose (npm): tokens jose signs verify in `mcpgate jwt verify`, and tokens
// mcpgate signs verify in jose.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as jose from 'jose';

const MCPGATE = process.env.MCPGATE_BIN;
const dir = mkdtempSync(join(tmpdir(), 'mcpgate-jose-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const now = Math.floor(Date.now() / 1000);
const claims = { sub: 'alice', iss: 'https://issuer.test', aud: 'api://test', iat: now, exp: now + 600 };

function verify(token, ...extra) {
  const r = spawnSync(MCPGATE, ['jwt', 'verify', token, '--jwks', join(dir, 'jwks.json'),
    '--issuer', 'https://issuer.test', '--audience', 'api://test', '--json', ...extra], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout ? JSON.parse(r.stdout) : null, err: r.stderr };
}

const algs = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'];
const keys = {};

test('setup: jose key pairs published as a JWKS', async () => {
  const published = [];
  for (const alg of algs) {
    const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
    keys[alg] = { publicKey, privateKey };
    published.push({ ...(await jose.exportJWK(publicKey)), kid: alg, alg, use: 'sig' });
  }
  const secret = crypto.getRandomValues(new Uint8Array(64));
  keys.HS256 = { secret };
  published.push({ kty: 'oct', k: jose.base64url.encode(secret), kid: 'HS256' });
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: published }));
});

test('tokens signed by jose verify in mcpgate', async () => {
  for (const alg of [...algs, 'HS256']) {
    const key = alg === 'HS256' ? keys.HS256.secret : keys[alg].privateKey;
    const token = await new jose.SignJWT(claims).setProtectedHeader({ alg, kid: alg, typ: 'JWT' }).sign(key);
    const r = verify(token);
    assert.equal(r.code, 0, `${alg}: ${r.err} ${JSON.stringify(r.out)}`);
    assert.equal(r.out.valid, true);
    assert.equal(r.out.alg, alg);
  }
});

test('a JWK alg pins the key: an RS256 key cannot verify PS256 even with the same modulus', async () => {
  const token = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'PS256', kid: 'RS256' })
    .sign(keys.RS256.privateKey);
  const r = verify(token);
  assert.equal(r.code, 1);
  assert.equal(r.out.valid, false);
});

test('tokens signed by mcpgate verify in jose', async () => {
  for (const alg of ['RS256', 'PS256', 'ES256', 'ES384', 'ES512']) {
    const pem = await jose.exportPKCS8(keys[alg].privateKey);
    writeFileSync(join(dir, `${alg}.pem`), pem);
    const token = execFileSync(MCPGATE, ['jwt', 'sign', '--key', join(dir, `${alg}.pem`), '--alg', alg,
      '--kid', alg, '--claims', JSON.stringify(claims)], { encoding: 'utf8' }).trim();
    const { payload, protectedHeader } = await jose.jwtVerify(token, keys[alg].publicKey, {
      issuer: 'https://issuer.test', audience: 'api://test', algorithms: [alg],
    });
    assert.equal(payload.sub, 'alice');
    assert.equal(protectedHeader.kid, alg);
  }
});
