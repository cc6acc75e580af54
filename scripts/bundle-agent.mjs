import { cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// Bundles the in-machine agent into one file, so a machine starts it without resolving modules
// (faster start, and nothing from the host's node_modules is mounted into machines). CommonJS, not
// an ES module: Node 20 starts a CommonJS main script ~10 ms sooner (its ES module loader is not
// set up), and every create waits for the agent (bench/start.mjs measures it). Three packages are
// copied beside the bundle (bundle/node_modules/) instead: node-pty, a native module (its
// JavaScript and its compiled pty.node), loaded on the first terminal; ws and picomatch, loaded
// on the first WebSocket and the first glob.
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'packages/agent/bundle');
// A bundle of an earlier layout (an ES module) would be left beside the new one.
rmSync(join(out, 'agent.mjs'), { force: true });
const { metafile } = await build({
  entryPoints: [join(root, 'packages/agent/dist/main.js')],
  metafile: true,
  outfile: join(out, 'agent.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: false,
  sourcemap: false,
  logLevel: 'warning',
  // ws's optional native speed-ups are not installed. node-pty (native), ws and picomatch are
  // loaded from beside the bundle (node_modules/, below): ws and picomatch on first use only, so
  // the ~190 KB of their code is not compiled at each machine's start (~6 ms of it, bench/start.mjs).
  external: ['bufferutil', 'utf-8-validate', 'node-pty', 'ws', 'picomatch'],
  // The agent's ES modules locate files beside the bundle (noVNC, node-pty) by import.meta.url.
  define: { 'import.meta.url': '__nsBundleUrl' },
  banner: { js: "const __nsBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
});
// The agent imports @nullspace/protocol/core, never the index: the index evaluates every route's
// schema at load, ~25 ms of each machine's start. An import of the index would bring TypeBox in.
const schemas = Object.keys(metafile.inputs).filter((f) => f.includes('@sinclair/typebox'));
if (schemas.length > 0) {
  rmSync(join(out, 'agent.cjs'), { force: true });
  throw new Error(
    `the agent's bundle would include TypeBox (${schemas[0]} …): import '@nullspace/protocol/core' in packages/agent, not '@nullspace/protocol'`,
  );
}

// ws and picomatch have no dependencies of their own: their code and package.json (its `exports`
// say which file an import or a require loads), not their docs.
for (const name of ['ws', 'picomatch']) {
  const dst = join(out, 'node_modules', name);
  rmSync(dst, { recursive: true, force: true });
  cpSync(join(root, 'node_modules', name), dst, {
    recursive: true,
    filter: (src) => !src.endsWith('.md') && !src.endsWith('.d.ts'),
  });
}

const ptySrc = join(root, 'node_modules/node-pty');
const ptyDst = join(out, 'node_modules/node-pty');
rmSync(ptyDst, { recursive: true, force: true });
mkdirSync(join(ptyDst, 'lib/shared'), { recursive: true });
mkdirSync(join(ptyDst, 'build/Release'), { recursive: true });
cpSync(join(ptySrc, 'package.json'), join(ptyDst, 'package.json'));
cpSync(join(ptySrc, 'build/Release/pty.node'), join(ptyDst, 'build/Release/pty.node'));
for (const dir of ['lib', 'lib/shared'])
  for (const f of readdirSync(join(ptySrc, dir)))
    if (f.endsWith('.js') && !f.endsWith('.test.js')) cpSync(join(ptySrc, dir, f), join(ptyDst, dir, f));

// noVNC (the desktop viewer's client, ES modules loaded by the browser as they are): its core, the
// vendored inflate it imports, and its licence, served by the agent beside the viewer page.
const novncSrc = join(root, 'node_modules/@novnc/novnc');
const novncDst = join(out, 'novnc');
rmSync(novncDst, { recursive: true, force: true });
for (const part of ['core', 'vendor', 'LICENSE.txt', 'package.json'])
  cpSync(join(novncSrc, part), join(novncDst, part), { recursive: true });
