// node:fs with globSync for "**/NAME" (NAME at any depth under cwd) and "NAME" (at cwd only),
// returning paths relative to cwd as Node 22's globSync does.
import fs from 'node:fs';
import path from 'node:path';

export * from 'node:fs';
export default fs;

export function globSync(pattern, options = {}) {
  const cwd = options.cwd ?? process.cwd();
  const deep = pattern.startsWith('**/');
  const name = deep ? pattern.slice(3) : pattern;
  if (name.includes('/') || name.includes('*')) throw new Error(`globSync shim: unsupported pattern ${pattern}`);
  const found = [];
  const walk = (dir, rel) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const relPath = rel ? path.join(rel, entry.name) : entry.name;
      if (entry.isDirectory()) {
        if (deep) walk(path.join(dir, entry.name), relPath);
      } else if (entry.name === name) {
        found.push(relPath);
      }
    }
  };
  walk(cwd, '');
  return found;
}
