import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CodedError } from '@nullspace/protocol';
import { hasBaseTemplate } from '../config.js';
import type { Logger } from '../log.js';

/**
 * Makes sure `templatesDir` holds `base`, the template every other one starts from: a server
 * started on a new templates directory (a new data directory, no set-up templates on the host)
 * builds it on its first start with the set-up's own script (debootstrap from the host's Debian
 * mirror, about 3 minutes), its progress in the log, before it listens. Does nothing when `base`
 * is there. A failed build stops the start with the script's last lines.
 */
export async function ensureBaseTemplate(templatesDir: string, log: Logger): Promise<void> {
  if (hasBaseTemplate(templatesDir)) return;
  const script = fileURLToPath(new URL('../../../../scripts/build-base-template.sh', import.meta.url));
  log.info('template base is missing: building it (debootstrap, about 3 minutes)', {
    templates_dir: templatesDir,
  });
  const tail: string[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('bash', [script], {
      env: { ...process.env, NULLSPACE_TEMPLATES_DIR: templatesDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const onLine = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 30) tail.shift();
        log.info('template base build', { line });
      }
    };
    child.stdout.on('data', onLine);
    child.stderr.on('data', onLine);
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0 || !hasBaseTemplate(templatesDir))
    throw new CodedError(
      'internal',
      `template base could not be built in ${templatesDir} (exit ${code}): ${tail.join('\n')}`,
    );
  log.info('template base built', { templates_dir: templatesDir });
}
