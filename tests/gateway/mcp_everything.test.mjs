// The official MCP TypeScript SDK client through `mcpgate gateway` to the official
// server-everything: Streamable HTTP (JSON and SSE answers, progress notifications, the GET
// stream, DELETE) and the legacy HTTP+SSE transport.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { Gateway, freePort, waitForPort, stopProcess } from '../support/gateway.mjs';

const require = createRequire(import.meta.url);
const everything = require.resolve('@modelcontextprotocol/server-everything/dist/index.js');
let streamable, legacy, gateway;

async function startEverything(mode) {
  const port = await freePort();
  // server-everything listens on all interfaces; we only ever talk to it on 127.0.0.1.
  const proc = spawn(process.execPath, [everything, mode], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
  await waitForPort(port, proc);
  return { proc, port };
}

before(async () => {
  streamable = await startEverything('streamableHttp');
  legacy = await startEverything('sse');
  gateway = await new Gateway(`
listeners: [{address: 127.0.0.1, port: 0}]
backends:
  everything: {url: "http://127.0.0.1:${streamable.port}"}
  legacy: {url: "http://127.0.0.1:${legacy.port}"}
apis:
  - {name: mcp, path: /mcp, type: mcp, backend: everything}
  - {name: legacy-sse, path: /sse, type: mcp, backend: legacy}
  - {name: legacy-message, path: /message, type: mcp, backend: legacy}
  - {name: legacy-mapped, path: /legacy, type: mcp, backend: legacy, strip_prefix: true}
workers: 2
`).start();
});

after(async () => {
  await gateway?.stop();
  await stopProcess(streamable?.proc);
  await stopProcess(legacy?.proc);
});

test('Streamable HTTP through the gateway: initialize, tools, progress over SSE, DELETE', async () => {
  const transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), {
    requestInit: { headers: { Authorization: 'Bearer not-checked-yet' } },
  });
  const client = new Client({ name: 'mcpgate-test', version: '1.0.0' });
  await client.connect(transport);
  assert.ok(transport.sessionId, 'the server assigned a session through the gateway');

  const tools = await client.listTools();
  const names = tools.tools.map((t) => t.name);
  for (const name of ['echo', 'get-sum', 'trigger-long-running-operation']) assert.ok(names.includes(name), name);

  const echo = await client.callTool({ name: 'echo', arguments: { message: 'through the gateway' } });
  assert.match(echo.content[0].text, /through the gateway/);
  const sum = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
  assert.match(sum.content[0].text, /42/);

  // Progress notifications arrive as SSE events on the POST response, one by one.
  const progress = [];
  const long = await client.callTool(
    { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 } },
    undefined,
    { onprogress: (p) => progress.push(p.progress) },
  );
  assert.ok(long.content.length > 0);
  assert.deepEqual(progress, [1, 2, 3, 4]);

  await transport.terminateSession();  // DELETE with Mcp-Session-Id
  assert.equal(transport.sessionId, undefined);
  await client.close();
});

test('the GET stream opens through the gateway', async () => {
  const init = await fetch(`${gateway.url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
      protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
  });
  assert.equal(init.status, 200);
  const session = init.headers.get('mcp-session-id');
  assert.ok(session);
  await init.text();
  const controller = new AbortController();
  const stream = await fetch(`${gateway.url}/mcp`, {
    headers: { accept: 'text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' },
    signal: controller.signal,
  });
  assert.equal(stream.status, 200);
  assert.equal(stream.headers.get('content-type'), 'text/event-stream');
  assert.equal(stream.headers.get('x-accel-buffering'), 'no');
  controller.abort();
  const del = await fetch(`${gateway.url}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': session } });
  assert.equal(del.status, 200);
});

test('a notification gets 202 through the gateway', async () => {
  const transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`));
  const client = new Client({ name: 'mcpgate-test', version: '1.0.0' });
  await client.connect(transport);
  const r = await fetch(`${gateway.url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream',
      'mcp-session-id': transport.sessionId, 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' }),
  });
  assert.equal(r.status, 202);
  await client.close();
});

test('legacy HTTP+SSE transport through the gateway', async () => {
  const transport = new SSEClientTransport(new URL(`${gateway.url}/sse`));
  const client = new Client({ name: 'mcpgate-legacy', version: '1.0.0' });
  await client.connect(transport);
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'legacy' } });
  assert.match(echo.content[0].text, /legacy/);
  await client.close();
});

test('legacy HTTP+SSE under a mapped prefix: the endpoint event gets the prefix', async () => {
  const controller = new AbortController();
  const res = await fetch(`${gateway.url}/legacy/sse`, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
  const reader = res.body.getReader();
  let text = '';
  while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value);
  controller.abort();
  assert.match(text, /event: endpoint\r?\ndata: \/legacy\/message\?sessionId=/);

  const transport = new SSEClientTransport(new URL(`${gateway.url}/legacy/sse`));
  const client = new Client({ name: 'mcpgate-legacy-mapped', version: '1.0.0' });
  await client.connect(transport);
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'mapped' } });
  assert.match(echo.content[0].text, /mapped/);
  await client.close();
});
