/**
 * Keeps the dependency direction one way (docs/ARCHITECTURE.md): it reads every import of our own
 * packages and fails on an edge that is not allowed, e.g. the SDK importing the server.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { ROOT } from './harness.js';

const ALLOWED: Record<string, string[]> = {
  protocol: [],
  runtime: ['protocol'],
  agent: ['protocol'],
  sdk: ['protocol'],
  server: ['protocol', 'runtime', 'agent'],
  // The CLI drives machines through the SDK only; from protocol it reads the contract's schemas
  // (its flags' help is derived from them).
  cli: ['sdk', 'server', 'protocol'],
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

it('packages import each other only in the allowed direction', () => {
  const bad: string[] = [];
  for (const [pkg, allowed] of Object.entries(ALLOWED)) {
    for (const file of sources(join(ROOT, 'packages', pkg, 'src'))) {
      const text = readFileSync(file, 'utf8');
      // Static imports/re-exports at the start of a line, and dynamic import(): not TSDoc examples.
      const pattern =
        /^\s*(?:import|export)\b[^;]*?from\s*'@nullspace\/([\w-]+)|\bimport\(\s*'@nullspace\/([\w-]+)/gm;
      for (const m of text.matchAll(pattern)) {
        const target = m[1] ?? m[2] ?? '';
        if (!allowed.includes(target))
          bad.push(`${file.slice(ROOT.length + 1)} imports @nullspace/${target}`);
      }
    }
  }
  assert.deepEqual(bad, []);
});

it('every package.json declares exactly the workspace packages it may import', () => {
  for (const [pkg, allowed] of Object.entries(ALLOWED)) {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'packages', pkg, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    const declared = Object.keys(manifest.dependencies ?? {})
      .filter((d) => d.startsWith('@nullspace/'))
      .map((d) => d.slice('@nullspace/'.length))
      .sort();
    assert.deepEqual(declared, [...allowed].sort(), `packages/${pkg}/package.json`);
  }
});
