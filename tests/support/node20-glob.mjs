// Lets @modelcontextprotocol/conformance (written for Node.js 22) run on Node.js 20: its only
// Node-22 need is `globSync` from `fs`, which it calls with "**/checks.json" patterns. Loaded
// with `node --import ./tests/support/node20-glob.mjs`; a no-op on Node.js 22 and later.
import { register } from 'node:module';
import fs from 'node:fs';

if (typeof fs.globSync !== 'function') {
  register('./node20-glob-hooks.mjs', import.meta.url);
}
