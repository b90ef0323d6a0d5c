// Module resolution hook (see node20-glob.mjs): the conformance suite's `fs` becomes fs plus a
// small globSync for the "**/NAME" and "NAME" patterns it uses.
const shim = new URL('./node20-glob-fs.mjs', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if ((specifier === 'fs' || specifier === 'node:fs') && context.parentURL &&
      context.parentURL.includes('/@modelcontextprotocol/conformance/')) {
    return { url: shim, shortCircuit: true };
  }
  return next(specifier, context);
}
