// Runs in its own process so NODE_EXTRA_CA_CERTS (read only at start) can name the emulator's CA.
// Input: a JSON scenario on argv[2]; output: one JSON line with what each library returned.
import * as msal from '@azure/msal-node';
import { ClientSecretCredential, ClientCertificateCredential } from '@azure/identity';
import * as jose from 'jose';

const s = JSON.parse(process.argv[2]);
const out = {};
const authority = `${s.base}/${s.tenant}`;
const known = [`localhost:${s.port}`];

async function attempt(name, fn) {
  try {
    out[name] = { ok: true, ...(await fn()) };
  } catch (e) {
    out[name] = { ok: false, error: String(e && (e.errorCode || e.name)), message: String(e && e.message).slice(0, 500) };
  }
}

await attempt('msal_secret', async () => {
  const app = new msal.ConfidentialClientApplication({
    auth: { clientId: s.client, authority, clientSecret: s.secret, knownAuthorities: known },
  });
  const first = await app.acquireTokenByClientCredential({ scopes: [s.scope] });
  const second = await app.acquireTokenByClientCredential({ scopes: [s.scope] });
  return { token: first.accessToken, fromCache: second.fromCache };
});

await attempt('msal_wrong_secret', async () => {
  const app = new msal.ConfidentialClientApplication({
    auth: { clientId: s.client, authority, clientSecret: 'wrong', knownAuthorities: known },
  });
  await app.acquireTokenByClientCredential({ scopes: [s.scope] });
  return {};
});

await attempt('msal_cert_sha256', async () => {
  const app = new msal.ConfidentialClientApplication({
    auth: {
      clientId: s.client, authority: `${s.base}/${s.domain}`, knownAuthorities: known,
      clientCertificate: { thumbprintSha256: s.sha256, privateKey: s.privateKey, x5c: s.certificate },
    },
  });
  const r = await app.acquireTokenByClientCredential({ scopes: [s.scope] });
  return { token: r.accessToken };
});

await attempt('msal_cert_sha1', async () => {
  const app = new msal.ConfidentialClientApplication({
    auth: { clientId: s.client, authority, knownAuthorities: known,
      clientCertificate: { thumbprint: s.sha1, privateKey: s.privateKey } },
  });
  const r = await app.acquireTokenByClientCredential({ scopes: [s.scope] });
  return { token: r.accessToken };
});

await attempt('identity_secret', async () => {
  const cred = new ClientSecretCredential(s.tenant, s.client, s.secret,
    { authorityHost: s.base, disableInstanceDiscovery: true });
  const t = await cred.getToken(s.scope);
  return { token: t.token, expiresOnTimestamp: t.expiresOnTimestamp };
});

await attempt('identity_certificate', async () => {
  const cred = new ClientCertificateCredential(s.tenant, s.client,
    { certificate: s.privateKey + s.certificate }, { authorityHost: s.base, disableInstanceDiscovery: true });
  const t = await cred.getToken(s.scope);
  return { token: t.token };
});

// Every token verifies in jose against the emulator's published keys.
const jwks = jose.createRemoteJWKSet(new URL(`${s.base}/${s.tenant}/discovery/v2.0/keys`));
for (const name of Object.keys(out)) {
  if (!out[name].ok || !out[name].token) continue;
  try {
    const { payload } = await jose.jwtVerify(out[name].token, jwks, {
      issuer: `${s.base}/${s.tenant}/v2.0`, audience: s.audience, algorithms: ['RS256'],
    });
    out[name].jose = { ok: true, azp: payload.azp, azpacr: payload.azpacr, roles: payload.roles };
  } catch (e) {
    out[name].jose = { ok: false, error: e.code };
  }
}
if (s.v1Token) {
  try {
    const { payload } = await jose.jwtVerify(s.v1Token, jose.createRemoteJWKSet(new URL(`${s.base}/common/discovery/keys`)), {
      issuer: `https://sts.windows.net/${s.tenant}/`, audience: 'api://mcp-api-v1', algorithms: ['RS256'],
    });
    out.v1_in_jose = { ok: true, appid: payload.appid, ver: payload.ver };
  } catch (e) {
    out.v1_in_jose = { ok: false, error: e.code };
  }
}
if (s.graphToken) {
  try {
    await jose.jwtVerify(s.graphToken, jwks, { algorithms: ['RS256'] });
    out.graph_in_jose = { ok: true };
  } catch (e) {
    out.graph_in_jose = { ok: false, error: e.code };
  }
}
process.stdout.write(JSON.stringify(out) + '\n');
