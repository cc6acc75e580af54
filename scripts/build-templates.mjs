#!/usr/bin/env node
// Builds the templates shipped with Nullspace (templates/<name>/template.json in this repository)
// into the templates directory, beside `base`: each one's layer and, snapshot-backed, its ready
// snapshot (packages/server/src/templates/shipped-build.ts). Idempotent: a template whose
// declaration, files and base are unchanged is not built again. Needs root, the base template and
// the build (scripts/setup.sh runs it last).
//   node scripts/build-templates.mjs [--templates-dir DIR] [--source DIR] [NAME...]
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildShippedTemplates } from '../packages/server/dist/templates/shipped-build.js';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'templates-dir': { type: 'string' }, source: { type: 'string' } },
});
const templatesDir =
  values['templates-dir'] ??
  process.env.NULLSPACE_TEMPLATES_DIR ??
  join(process.env.NULLSPACE_DATA_DIR || '/var/lib/nullspace', 'templates');
const { built } = await buildShippedTemplates({
  sourceDir: resolve(values.source ?? join(root, 'templates')),
  templatesDir,
  ...(positionals.length > 0 ? { names: positionals } : {}),
  packagesOffline: process.env.NULLSPACE_PACKAGES_OFFLINE === '1',
  say: (line) => console.log(line),
});
console.log(
  built.length === 0 ? 'shipped templates: nothing to build' : `shipped templates built: ${built.join(', ')}`,
);
