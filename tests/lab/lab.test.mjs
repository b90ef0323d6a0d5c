// The lab with real clients we did not write: the lab's own Python snippet (python3-requests),
// unchanged but for the token URL's host, gets the token; the official MCP TypeScript SDK client
// lists and calls tools with it through `mcpgate gateway` running the lab's policy, in front of
// `mcpgate sample-server` and of the official server-everything. MSAL Python and msal-node get
// tokens the gateway accepts too. Everything on 127.0.0.1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Gateway, freePort, startSampleServer, waitForPort, stopProcess } from '../support/gateway.mjs';
import { Idp, TENANT } from '../support/idp.mjs';

const require = createRequire(import.meta.url);
const everythingJs = require.resolve('@modelcontextprotocol/server-everything/dist/index.js');
const idp = new Idp();
let dir, sample, everything, gateway, client, secret;

// The lab's Step 3 code and Step 2 policy, as the lab prints them (testdata/lab/).
const labData = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'testdata', 'lab');
const LAB_SNIPPET = readFileSync(join(labData, 'get_token.py'), 'utf8');
const LAB_POLICY = readFileSync(join(labData, 'policy.xml'), 'utf8');

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mcpgate-lab-'));
  idp.cli('tenant', 'create', '--id', TENANT, '--domain', 'contoso.onmicrosoft.com');
  idp.cli('app', 'create', '--name', 'mcp-api', '--identifier-uri', 'api://mcp-api', '--access-token-version', '2');
  client = idp.cli('app', 'create', '--name', 'agent').appId;
  secret = idp.cli('secret', 'add', '--app', client).secretText;
  await idp.start();

  const started = await startSampleServer();
  sample = started.proc;
  const sampleOrigin = new URL(started.url).origin;
  const port = await freePort();
  // server-everything listens on all interfaces; we only ever talk to it on 127.0.0.1.
  everything = spawn(process.execPath, [everythingJs, 'streamableHttp'], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
  await waitForPort(port, everything);

  writeFileSync(join(dir, 'lab.xml'), LAB_POLICY);
  gateway = await new Gateway(`
listeners: [{address: 127.0.0.1, port: 0}]
entra: {authority: "https://localhost:${idp.port}", ca_file: "${idp.ca}"}  # the host clients use: v2 issuers name it
named_values:
  aad-tenant-id: ${TENANT}
  aad-client-application-id: ${client}
backends:
  sample: {url: "${sampleOrigin}"}
  everything: {url: "http://127.0.0.1:${port}"}
apis:
  - {name: sample, path: /mcp, type: mcp, backend: sample, policy: ${join(dir, 'lab.xml')}}
  - {name: everything, path: /everything, type: mcp, backend: everything, strip_prefix: true, policy: ${join(dir, 'lab.xml')}}
`).start();
});

after(async () => {
  await gateway?.stop();
  await stopProcess(sample);
  await stopProcess(everything);
  await idp.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function callThroughGateway(path, token, tool, args) {
  const transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}${path}`), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  const mcp = new Client({ name: 'lab-test', version: '1.0.0' });
  await mcp.connect(transport);
  const { tools } = await mcp.listTools();
  const result = await mcp.callTool({ name: tool, arguments: args });
  await mcp.close();
  return { names: tools.map((t) => t.name), result };
}

function labToken() {
  const snippet = LAB_SNIPPET
    .replace('YOUR_TENANT_ID', TENANT).replace('YOUR_CLIENT_ID', client).replace('YOUR_CLIENT_SECRET', secret)
    .replace('https://login.microsoftonline.com/', `https://localhost:${idp.port}/`);
  writeFileSync(join(dir, 'get_token.py'), snippet);
  const out = execFileSync('/usr/bin/python3', ['get_token.py'], {
    cwd: dir, encoding: 'utf8', env: { ...process.env, REQUESTS_CA_BUNDLE: idp.ca },
  });
  assert.equal(out, '', 'the snippet printed no failure');
  return readFileSync(join(dir, 'token.jwt'), 'utf8');
}

test("the lab's Python gets the token; the SDK client calls both servers with it", async () => {
  const token = labToken();
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
  assert.equal(claims.aud, 'https://graph.microsoft.com');  // the lab's scope, as written
  const viaSample = await callThroughGateway('/mcp', token, 'echo', { message: 'lab' });
  assert.ok(viaSample.names.includes('test_simple_text'));
  assert.deepEqual(viaSample.result.content, [{ type: 'text', text: 'lab' }]);
  const viaEverything = await callThroughGateway('/everything/mcp', token, 'echo', { message: 'lab' });
  assert.ok(viaEverything.names.includes('get-sum'));
  assert.match(viaEverything.result.content[0].text, /lab/);
});

test('without the token the SDK client is refused', async () => {
  const transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`));
  const mcp = new Client({ name: 'lab-test', version: '1.0.0' });
  await assert.rejects(mcp.connect(transport), /401/);
});

test('MSAL Python and msal-node get tokens the gateway accepts', async () => {
  const msalPy = `
import msal, sys
app = msal.ConfidentialClientApplication(sys.argv[1], client_credential=sys.argv[2],
    authority=f"https://localhost:{sys.argv[3]}/${TENANT}", instance_discovery=False)
r = app.acquire_token_for_client(scopes=["api://mcp-api/.default"])
print(r["access_token"])
`;
  writeFileSync(join(dir, 'msal_token.py'), msalPy);
  const pyToken = execFileSync('/usr/bin/python3', [join(dir, 'msal_token.py'), client, secret, String(idp.port)], {
    encoding: 'utf8', env: { ...process.env, REQUESTS_CA_BUNDLE: idp.ca },
  }).trim();
  const msalNode = `
import { ConfidentialClientApplication } from '@azure/msal-node';
const [clientId, clientSecret, port] = process.argv.slice(1);
const app = new ConfidentialClientApplication({ auth: { clientId, clientSecret,
  authority: 'https://localhost:' + port + '/${TENANT}', knownAuthorities: ['localhost:' + port] } });
const r = await app.acquireTokenByClientCredential({ scopes: ['api://mcp-api/.default'] });
console.log(r.accessToken);
`;
  const nodeToken = execFileSync(process.execPath, ['--input-type=module', '-e', msalNode, client, secret, String(idp.port)], {
    encoding: 'utf8', cwd: process.cwd(), env: { ...process.env, NODE_EXTRA_CA_CERTS: idp.ca },
  }).trim();
  for (const token of [pyToken, nodeToken]) {
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
    assert.equal(claims.azp, client);
    const { result } = await callThroughGateway('/mcp', token, 'add', { a: 1, b: 2 });
    assert.equal(result.content[0].text, '3');
  }
});
