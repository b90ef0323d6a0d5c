// msal-node, @azure/identity and jose against a real `mcpgate idp`, trusting its CA through
// NODE_EXTRA_CA_CERTS as a user would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Idp, TENANT } from '../support/idp.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const idp = new Idp();
let results;

before(async () => {
  idp.cli('tenant', 'create', '--id', TENANT, '--domain', 'contoso.onmicrosoft.com');
  const api = idp.cli('app', 'create', '--name', 'mcp-api', '--identifier-uri', 'api://mcp-api', '--access-token-version', '2');
  const client = idp.cli('app', 'create', '--name', 'agent');
  idp.cli('app', 'create', '--name', 'mcp-api-v1', '--identifier-uri', 'api://mcp-api-v1');
  idp.cli('role', 'add', '--app', api.appId, '--value', 'Tools.Call');
  idp.cli('role', 'grant', '--client', client.appId, '--resource', api.appId, '--role', 'Tools.Call');
  const secret = idp.cli('secret', 'add', '--app', client.appId).secretText;
  const key = join(idp.dir, 'client.key');
  const cert = join(idp.dir, 'client.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-subj', '/CN=agent', '-days', '30'], { stdio: 'ignore' });
  idp.cli('certificate', 'add', '--app', client.appId, '--cert', cert);
  const der = execFileSync('openssl', ['x509', '-in', cert, '-outform', 'DER']);
  await idp.start();
  // A Graph token, taken with a plain POST, to check jose refuses it like Entra's.
  const graph = execFileSync('curl', ['-s', '--cacert', idp.ca, '-d', `client_id=${client.appId}`,
    '--data-urlencode', `client_secret=${secret}`, '-d', 'grant_type=client_credentials',
    '--data-urlencode', 'scope=https://graph.microsoft.com/.default',
    `${idp.base}/${TENANT}/oauth2/v2.0/token`], { encoding: 'utf8' });
  const v1 = execFileSync('curl', ['-s', '--cacert', idp.ca, '-d', `client_id=${client.appId}`,
    '--data-urlencode', `client_secret=${secret}`, '-d', 'grant_type=client_credentials',
    '--data-urlencode', 'scope=api://mcp-api-v1/.default', `${idp.base}/${TENANT}/oauth2/v2.0/token`], { encoding: 'utf8' });
  const scenario = {
    base: idp.base, port: idp.port, tenant: TENANT, domain: 'contoso.onmicrosoft.com', client: client.appId,
    secret, scope: 'api://mcp-api/.default', audience: api.appId,
    privateKey: readFileSync(key, 'utf8'), certificate: readFileSync(cert, 'utf8'),
    sha1: createHash('sha1').update(der).digest('hex'), sha256: createHash('sha256').update(der).digest('hex'),
    graphToken: JSON.parse(graph).access_token, v1Token: JSON.parse(v1).access_token,
  };
  const out = execFileSync(process.execPath, [join(here, 'node_clients.mjs'), JSON.stringify(scenario)], {
    encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: idp.ca }, timeout: 120000,
  });
  results = JSON.parse(out.trim().split('\n').pop());
});

after(async () => { await idp.stop(); });

test('msal-node with a secret, then from its cache', () => {
  const r = results.msal_secret;
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.fromCache, true);
  assert.equal(r.jose.ok, true, JSON.stringify(r.jose));
  assert.deepEqual(r.jose.roles, ['Tools.Call']);
  assert.equal(r.jose.azpacr, '1');
});

test('msal-node surfaces Entra errors', () => {
  const r = results.msal_wrong_secret;
  assert.equal(r.ok, false);
  assert.equal(r.error, 'invalid_client');
  assert.match(r.message, /AADSTS7000215/);
});

test('msal-node with a certificate (x5t#S256, PS256, domain authority) and with a SHA-1 thumbprint', () => {
  for (const name of ['msal_cert_sha256', 'msal_cert_sha1']) {
    const r = results[name];
    assert.equal(r.ok, true, `${name}: ${JSON.stringify(r)}`);
    assert.equal(r.jose.ok, true);
    assert.equal(r.jose.azpacr, '2');
  }
});

test('@azure/identity ClientSecretCredential and ClientCertificateCredential', () => {
  assert.equal(results.identity_secret.ok, true, JSON.stringify(results.identity_secret));
  assert.ok(results.identity_secret.expiresOnTimestamp > Date.now());
  assert.equal(results.identity_secret.jose.ok, true);
  assert.equal(results.identity_certificate.ok, true, JSON.stringify(results.identity_certificate));
  assert.equal(results.identity_certificate.jose.ok, true);
});

test('a v1 token verifies in jose with the v1 issuer and the v1 keys URL', () => {
  assert.equal(results.v1_in_jose.ok, true, JSON.stringify(results.v1_in_jose));
  assert.equal(results.v1_in_jose.ver, '1.0');
});

test('a Graph token fails plain verification in jose, as Entra Graph tokens do', () => {
  assert.equal(results.graph_in_jose.ok, false);
  assert.equal(results.graph_in_jose.error, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
});
