import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// Bundles the in-machine agent into one file, so a machine starts it without resolving modules
// (faster start, and nothing from the host's node_modules is mounted into machines).
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await build({
  entryPoints: [join(root, 'packages/agent/dist/main.js')],
  outfile: join(root, 'packages/agent/bundle/agent.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: false,
  sourcemap: false,
  logLevel: 'warning',
});
