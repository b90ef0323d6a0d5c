// `mcpgate sample-server` with the official MCP TypeScript SDK client: directly, and through
// `mcpgate gateway`. Tools (with progress and logging notifications on an event-stream answer),
// resources, prompts, ping, logging level, completion, and the session ended with DELETE. And
// MCP Inspector's CLI (@modelcontextprotocol/inspector-cli 1.0.3) on the same server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { Gateway, startSampleServer, stopProcess } from '../support/gateway.mjs';

let server, serverUrl, gateway;

before(async () => {
  ({ proc: server, url: serverUrl } = await startSampleServer());
  const origin = new URL(serverUrl).origin;
  gateway = await new Gateway(`
listeners: [{address: 127.0.0.1, port: 0}]
backends: {sample: {url: "${origin}"}}
apis: [{name: mcp, path: /mcp, type: mcp, backend: sample}]
`).start();
});

after(async () => {
  await gateway?.stop();
  await stopProcess(server);
});

async function connect(url) {
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: 'mcpgate-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

for (const [where, url] of [['directly', () => serverUrl], ['through the gateway', () => `${gateway.url}/mcp`]]) {
  test(`tools ${where}`, async () => {
    const { client, transport } = await connect(url());
    assert.ok(transport.sessionId);
    assert.equal(client.getServerVersion().name, 'mcpgate-sample-server');
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const n of ['echo', 'add', 'time', 'test_simple_text', 'test_image_content', 'test_audio_content',
      'test_embedded_resource', 'test_multiple_content_types', 'test_tool_with_logging',
      'test_tool_with_progress', 'test_error_handling']) assert.ok(names.includes(n), n);
    for (const t of tools) {
      assert.ok(t.description, `${t.name} has a description`);
      assert.equal(t.inputSchema.type, 'object');
    }
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'hello' } });
    assert.deepEqual(echo.content, [{ type: 'text', text: 'hello' }]);
    const sum = await client.callTool({ name: 'add', arguments: { a: 2, b: 40.5 } });
    assert.equal(sum.content[0].text, '42.5');
    const image = await client.callTool({ name: 'test_image_content', arguments: {} });
    assert.equal(image.content[0].mimeType, 'image/png');
    assert.ok(Buffer.from(image.content[0].data, 'base64').subarray(1, 4).equals(Buffer.from('PNG')));
    const audio = await client.callTool({ name: 'test_audio_content', arguments: {} });
    assert.equal(audio.content[0].mimeType, 'audio/wav');
    const failed = await client.callTool({ name: 'test_error_handling', arguments: {} });
    assert.equal(failed.isError, true);
    await assert.rejects(client.callTool({ name: 'no-such-tool', arguments: {} }), /Unknown tool/);

    // Notifications before the answer, on an event-stream answer.
    const progress = [];
    const done = await client.callTool({ name: 'test_tool_with_progress', arguments: {} }, undefined,
      { onprogress: (p) => progress.push(p.progress) });
    assert.equal(done.content[0].text, 'Progress test completed');
    assert.deepEqual(progress, [0, 50, 100]);
    const logs = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params.data));
    await client.setLoggingLevel('debug');
    await client.callTool({ name: 'test_tool_with_logging', arguments: {} });
    assert.equal(logs.length, 3);

    await transport.terminateSession();  // DELETE
    await assert.rejects(client.listTools());  // the session is gone: 404
    await client.close();
  });

  test(`resources, prompts and the rest ${where}`, async () => {
    const { client } = await connect(url());
    assert.deepEqual(await client.ping(), {});
    const { resources } = await client.listResources();
    assert.ok(resources.some((r) => r.uri === 'test://static-text'));
    const text = await client.readResource({ uri: 'test://static-text' });
    assert.equal(text.contents[0].mimeType, 'text/plain');
    const blob = await client.readResource({ uri: 'test://static-binary' });
    assert.ok(blob.contents[0].blob.length > 0);
    const templates = await client.listResourceTemplates();
    assert.equal(templates.resourceTemplates[0].uriTemplate, 'test://template/{id}/data');
    const templated = await client.readResource({ uri: 'test://template/123/data' });
    assert.match(templated.contents[0].text, /123/);
    await assert.rejects(client.readResource({ uri: 'test://nothing' }), /Resource not found/);
    assert.deepEqual(await client.subscribeResource({ uri: 'test://watched-resource' }), {});
    assert.deepEqual(await client.unsubscribeResource({ uri: 'test://watched-resource' }), {});
    const { prompts } = await client.listPrompts();
    assert.equal(prompts.length, 4);
    for (const p of prompts) assert.ok(p.description, p.name);
    const withArgs = await client.getPrompt({ name: 'test_prompt_with_arguments', arguments: { arg1: 'first', arg2: 'second' } });
    assert.match(withArgs.messages[0].content.text, /first.*second/);
    const withImage = await client.getPrompt({ name: 'test_prompt_with_image' });
    assert.equal(withImage.messages[0].content.type, 'image');
    const completion = await client.complete({ ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' },
      argument: { name: 'arg1', value: 'f' } });
    assert.deepEqual(completion.completion.values, []);
    await client.close();
  });
}

// The Inspector CLI finds its own package.json through `../package.json` relative to the working
// directory, so it runs from a folder one level under the repository (tests/).
const inspector = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', '@modelcontextprotocol',
  'inspector-cli', 'build', 'cli.js');
function inspect(url, ...args) {
  const out = execFileSync(process.execPath, [inspector, '--cli', url, '--transport', 'http', ...args], {
    cwd: join(dirname(fileURLToPath(import.meta.url)), '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60000,
  });
  return JSON.parse(out);
}

test('MCP Inspector CLI lists and calls tools, directly and through the gateway', () => {
  for (const url of [serverUrl, `${gateway.url}/mcp`]) {
    const listed = inspect(url, '--method', 'tools/list');
    assert.ok(listed.tools.some((t) => t.name === 'add'), url);
    const called = inspect(url, '--method', 'tools/call', '--tool-name', 'add', '--tool-arg', 'a=20', '--tool-arg', 'b=22');
    assert.equal(called.content[0].text, '42', url);
    const read = inspect(url, '--method', 'resources/read', '--uri', 'test://static-text');
    assert.equal(read.contents[0].uri, 'test://static-text', url);
  }
});
