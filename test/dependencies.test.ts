/**
 * Keeps the dependency direction one way (docs/ARCHITECTURE.md): it reads every import of our own
 * packages and fails on an edge that is not allowed, e.g. the SDK importing the server, and on any
 * circle of imports between the source files of a package.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
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

/** Relative imports of a source file, as absolute paths of the .ts files they name. */
function relativeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  // Static imports and re-exports (`import type` too: a type-only circle is still a circle of
  // meaning), and dynamic import(); specifiers are written with .js and name a .ts file.
  const pattern = /^\s*(?:import|export)\b[^;]*?from\s*'(\.[^']+)'|\bimport\(\s*'(\.[^']+)'/gm;
  const out: string[] = [];
  for (const m of text.matchAll(pattern)) {
    const spec = m[1] ?? m[2] ?? '';
    const target = join(dirname(file), spec.replace(/\.js$/, '.ts'));
    out.push(existsSync(target) ? target : join(dirname(file), spec, 'index.ts'));
  }
  return out;
}

/** The strongly connected components of more than one file (or a file importing itself). */
function circles(graph: Map<string, string[]>): string[][] {
  // Tarjan's algorithm, iterative enough for a source tree of this size.
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    indexOf.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!indexOf.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, indexOf.get(w) ?? 0));
    }
    if (low.get(v) === indexOf.get(v)) {
      const component: string[] = [];
      for (;;) {
        const w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
        if (w === v) break;
      }
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indexOf.has(v)) visit(v);
  return found;
}

it('no source files of a package import each other in a circle', () => {
  const graph = new Map<string, string[]>();
  for (const pkg of readdirSync(join(ROOT, 'packages'))) {
    const src = join(ROOT, 'packages', pkg, 'src');
    if (!existsSync(src)) continue;
    for (const file of sources(src)) graph.set(file, relativeImports(file));
  }
  assert.ok(graph.size > 100, `read ${graph.size} source files`);
  const found = circles(graph).map((c) => c.map((f) => f.slice(ROOT.length + 1)).join(' → '));
  assert.deepEqual(found, [], `import circles:\n  ${found.join('\n  ')}`);
});

it('the circle check finds a circle when there is one', () => {
  // The check above passes on an empty answer; this keeps it from passing because it is blind.
  const graph = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
    ['d.ts', ['a.ts']],
  ]);
  assert.deepEqual(circles(graph), [['a.ts', 'b.ts', 'c.ts']]);
});
