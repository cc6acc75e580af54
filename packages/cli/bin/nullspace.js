#!/usr/bin/env node
// The `nullspace` bin. It is checked in, rather than pointing at dist/main.js, because npm links
// a workspace bin only if its file exists at install time, which comes before the build.
import { existsSync } from 'node:fs';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('nullspace: the CLI is not built yet; run `npm run build` in the repository root\n');
  process.exit(1);
}
await import(main.href);
