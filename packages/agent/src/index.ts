import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Host directory holding the bundled agent (`agent.cjs`), which the runtime bind-mounts read-only
 * into every machine. Built by `npm run build` (scripts/bundle-agent.mjs).
 */
export function agentBundleDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', 'bundle');
}
