// Runs the unit tests: the `*.test.ts` files beside the logic in packages/*/src, compiled by
// `tsc -b` to packages/*/dist. They need no root, no machines and no network beyond 127.0.0.1,
// so `npm run test:unit` answers in seconds on any laptop. The privileged suite (test/dist) is
// not among them: it runs with `npm test`.
//
// Only compiled tests whose source is still there run: tsc -b never deletes the output of a
// removed or renamed test, and a stale copy must neither fail nor pass the run.
// Arguments are passed on to `node --test` (e.g. --test-reporter=spec).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const files = [];
for (const pkg of readdirSync(join(root, 'packages'))) {
  const dist = join(root, 'packages', pkg, 'dist');
  if (!existsSync(dist)) continue;
  for (const entry of readdirSync(dist, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.test.js')) continue;
    const compiled = join(entry.parentPath, entry.name);
    const source = join(root, 'packages', pkg, 'src', relative(dist, compiled)).replace(/\.js$/, '.ts');
    if (existsSync(source)) files.push(compiled);
  }
}
if (files.length === 0) {
  console.error('test-unit: no compiled unit tests under packages/*/dist: run `npx tsc -b` first');
  process.exit(1);
}
files.sort();
const run = spawnSync(process.execPath, ['--test', ...process.argv.slice(2), ...files], { stdio: 'inherit' });
process.exit(run.status ?? 1);
