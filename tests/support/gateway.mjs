// Starts a real `mcpgate gateway` (node tests) and third-party servers on free loopback ports.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync, readFileSync, rmSync, openSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const MCPGATE = process.env.MCPGATE_BIN;

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port, proc, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`process exited with ${proc.exitCode}`);
    const ok = await new Promise((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${port}`);
}

export async function stopProcess(proc) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  await exited;
}

// A real `mcpgate sample-server` on a free loopback port: { proc, url } (url ends in /mcp).
export async function startSampleServer() {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgate-sample-'));
  const ready = join(dir, 'ready.json');
  const proc = spawn(MCPGATE, ['sample-server', '--listen', '127.0.0.1:0', '--ready-file', ready], { stdio: 'ignore' });
  const deadline = Date.now() + 20000;
  while (!existsSync(ready)) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error('sample-server did not start');
    await sleep(20);
  }
  const url = JSON.parse(readFileSync(ready, 'utf8')).mcp[0];
  rmSync(dir, { recursive: true, force: true });
  return { proc, url };
}

export class Gateway {
  constructor(configText) {
    this.dir = mkdtempSync(join(tmpdir(), 'mcpgate-gw-'));
    this.config = join(this.dir, 'mcpgate.yaml');
    writeFileSync(this.config, configText);
  }

  async start() {
    const ready = join(this.dir, 'ready.json');
    const log = openSync(join(this.dir, 'gateway.log'), 'w');
    this.proc = spawn(MCPGATE, ['gateway', '-c', this.config, '--ready-file', ready], { stdio: ['ignore', log, log] });
    const deadline = Date.now() + 20000;
    while (!existsSync(ready)) {
      if (this.proc.exitCode !== null || Date.now() > deadline) {
        throw new Error('gateway did not start: ' + readFileSync(join(this.dir, 'gateway.log'), 'utf8'));
      }
      await sleep(20);
    }
    this.url = JSON.parse(readFileSync(ready, 'utf8')).listeners[0];
    return this;
  }

  log() { return readFileSync(join(this.dir, 'gateway.log'), 'utf8'); }

  async stop() {
    await stopProcess(this.proc);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
