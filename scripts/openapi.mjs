#!/usr/bin/env node
// Writes docs/openapi.json: the OpenAPI 3.1 document the route table and the schemas generate
// (the same one the server serves at GET /v1/openapi.json). Run after `tsc -b`; `npm run openapi`.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openApiDocument } from '../packages/protocol/dist/index.js';

const target = fileURLToPath(new URL('../docs/openapi.json', import.meta.url));
writeFileSync(target, `${JSON.stringify(openApiDocument(), null, 2)}\n`);
console.log(`wrote ${target}`);
