// Starts a real `mcpgate idp` on a free loopback port in a temporary directory (node tests),
// registers applications through the admin CLI, and stops it by its process id.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, existsSync, readFileSync, rmSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const MCPGATE = process.env.MCPGATE_BIN;
export const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';

export class Idp {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'mcpgate-idp-'));
    this.data = join(this.dir, 'data');
  }

  cli(...args) {
    const out = execFileSync(MCPGATE, ['idp', '--data', this.data, ...args], { encoding: 'utf8' });
    return out.trim() ? JSON.parse(out) : null;
  }

  async start() {
    const ready = join(this.dir, 'ready.json');
    const log = openSync(join(this.dir, 'idp.log'), 'w');
    this.proc = spawn(MCPGATE, ['idp', '--data', this.data, '--listen', '127.0.0.1:0', '--ready-file', ready],
      { stdio: ['ignore', log, log] });
    const deadline = Date.now() + 20000;
    while (!existsSync(ready)) {
      if (this.proc.exitCode !== null || Date.now() > deadline) {
        throw new Error('idp did not start: ' + readFileSync(join(this.dir, 'idp.log'), 'utf8'));
      }
      await sleep(20);
    }
    const info = JSON.parse(readFileSync(ready, 'utf8'));
    this.port = Number(info.https.split(':').pop());
    this.base = `https://localhost:${this.port}`;
    this.ca = info.ca;
    return this;
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null) {
      const exited = new Promise((resolve) => this.proc.once('exit', resolve));
      this.proc.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
