#!/usr/bin/env node
// Fills the package cache template builds use (NULLSPACE_PACKAGE_CACHE, default
// <templates dir>/.packages) with Debian packages and what they need on top of the `base` template,
// so that builds naming them work offline (NULLSPACE_PACKAGES_OFFLINE=1, as the test suite runs).
// Idempotent: cached packages are not downloaded again.
//   node scripts/fetch-packages.mjs jq [more packages...]
import { join } from 'node:path';
import { Logger } from '../packages/server/dist/log.js';
import { PackageCache, debianMirror } from '../packages/server/dist/templates/package-cache.js';

const packages = process.argv.slice(2);
if (packages.length === 0) {
  console.error('usage: node scripts/fetch-packages.mjs PACKAGE...');
  process.exit(2);
}
const templatesDir =
  process.env.NULLSPACE_TEMPLATES_DIR ||
  join(process.env.NULLSPACE_DATA_DIR || '/var/lib/nullspace', 'templates');
const cacheDir = process.env.NULLSPACE_PACKAGE_CACHE || join(templatesDir, '.packages');
const cache = new PackageCache(cacheDir, () => debianMirror(new Logger('warn')));
const files = await cache.fetch(packages, join(templatesDir, 'base/rootfs/var/lib/dpkg/status'), (line) =>
  console.log(line),
);
console.log(`${packages.join(' ')}: ${files.length} package file(s) in ${cacheDir}`);
