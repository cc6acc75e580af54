import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CodedError } from '@nullspace/protocol';
import { host } from '@nullspace/runtime';
import type { Logger } from '../log.js';

/**
 * Debian packages for template builds, fetched on the host by the host's own apt into a cache shared
 * by every build (and every server using the same templates directory): a build machine needs no
 * internet for its packages, a second build with the same packages downloads nothing, and set-up can
 * fill the cache ahead of time (scripts/fetch-packages.mjs) for hosts that build offline.
 *
 * apt runs with its own state and cache directories and a sources list of the bookworm `main` suite
 * of the host's Debian mirror, resolving against the dpkg status of the template being built on, so
 * exactly the packages that template lacks (dependencies included) are fetched. The package lists are
 * updated only when missing or when a package cannot be found in them.
 */
export class PackageCache {
  constructor(
    readonly dir: string,
    private readonly mirror: () => Promise<string>,
    /** Never download: only what is cached (filled ahead by scripts/fetch-packages.mjs). */
    private readonly offline = false,
  ) {}

  /**
   * The `.deb` files that install `packages` (and what they need) onto a root filesystem whose dpkg
   * status file is `statusFile`, fetched if not cached. `log` gets apt's progress lines.
   */
  async fetch(packages: string[], statusFile: string, log: (line: string) => void): Promise<string[]> {
    if (packages.length === 0) return [];
    await this.prepare();
    if (!(await this.hasLists())) {
      if (this.offline) throw this.notCached('the package lists are not cached');
      await this.update(log);
    }
    let plan: Planned[];
    try {
      plan = await this.plan(packages, statusFile);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      if (this.offline) throw packageNotFound(err) ?? err;
      log('a package is not in the cached package lists: updating them');
      await this.update(log);
      plan = await this.plan(packages, statusFile).catch((e: unknown) => {
        throw packageNotFound(e) ?? e;
      });
    }
    if (plan.length === 0) return [];
    const files = plan.map((p) => join(this.archives, debFileName(p)));
    const missing = files.filter((f) => !existsSync(f));
    if (missing.length > 0) {
      if (this.offline)
        throw this.notCached(`${missing.map((f) => f.split('/').pop()).join(', ')} not cached`);
      log(`downloading ${missing.length} of ${plan.length} package(s)`);
      const download = () =>
        this.apt(
          ['--download-only', '-y', '--no-install-recommends', 'install', ...packages],
          statusFile,
          600_000,
        );
      try {
        await download();
      } catch {
        // Lists older than the mirror name versions it no longer has (a point release replaced them).
        log('the download failed: updating the package lists and trying again');
        await this.update(log);
        plan = await this.plan(packages, statusFile);
        files.splice(0, files.length, ...plan.map((p) => join(this.archives, debFileName(p))));
        await download().catch((err: unknown) => {
          throw packageError('downloading the packages failed', err);
        });
      }
    } else log(`all ${plan.length} package(s) are cached`);
    const lost = files.filter((f) => !existsSync(f));
    if (lost.length > 0)
      throw new CodedError('internal', `apt did not leave ${lost.join(', ')} in the package cache`);
    for (const p of plan) log(`  ${p.name} ${p.version} (${p.arch})`);
    return files;
  }

  private notCached(what: string): CodedError {
    return new CodedError(
      'invalid_argument',
      `packages: ${what}, and this server builds offline (NULLSPACE_PACKAGES_OFFLINE); fetch them first with scripts/fetch-packages.mjs`,
      { field: 'packages' },
    );
  }

  private get archives(): string {
    return join(this.dir, 'cache', 'archives');
  }

  private async prepare(): Promise<void> {
    await mkdir(join(this.dir, 'state', 'lists', 'partial'), { recursive: true });
    await mkdir(join(this.archives, 'partial'), { recursive: true });
    const list = join(this.dir, 'sources.list');
    if (!existsSync(list)) {
      const mirror = await this.mirror();
      await writeFile(
        list,
        `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror} bookworm main\n`,
      );
    }
  }

  private async hasLists(): Promise<boolean> {
    const names = await readdir(join(this.dir, 'state', 'lists')).catch(() => [] as string[]);
    return names.some((n) => n.endsWith('_Packages') || n.endsWith('_Packages.lz4'));
  }

  private async update(log: (line: string) => void): Promise<void> {
    log('updating the package lists (bookworm main)');
    await this.apt(['update'], '/dev/null', 300_000).catch((err: unknown) => {
      throw packageError('updating the package lists failed', err);
    });
  }

  /** What apt would install, from a simulation (no download). */
  private async plan(packages: string[], statusFile: string): Promise<Planned[]> {
    const { stdout } = await this.apt(
      ['-s', '--no-install-recommends', 'install', ...packages],
      statusFile,
      120_000,
    );
    const planned: Planned[] = [];
    for (const line of stdout.split('\n')) {
      const m = /^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) .*\[([^\]]+)\]\)/.exec(line);
      if (m?.[1] && m[2] && m[3]) planned.push({ name: m[1], version: m[2], arch: m[3] });
    }
    return planned;
  }

  private apt(args: string[], statusFile: string, timeoutMs: number) {
    return host(
      'apt-get',
      [
        '-q',
        '-o',
        `Dir::State=${join(this.dir, 'state')}`,
        '-o',
        `Dir::State::status=${statusFile}`,
        '-o',
        `Dir::Cache=${join(this.dir, 'cache')}`,
        '-o',
        `Dir::Etc::SourceList=${join(this.dir, 'sources.list')}`,
        '-o',
        'Dir::Etc::SourceParts=/dev/null',
        '-o',
        'Dir::Etc::Preferences=/dev/null',
        '-o',
        'Dir::Etc::PreferencesParts=/dev/null',
        '-o',
        'APT::Get::List-Cleanup=0',
        '-o',
        'Debug::NoLocking=1',
        ...args,
      ],
      { timeoutMs, killGroup: true },
    );
  }
}

interface Planned {
  name: string;
  version: string;
  arch: string;
}

/** The file name apt gives a downloaded package (an epoch's `:` is `%3a`). */
function debFileName(p: Planned): string {
  return `${p.name}_${p.version.replace(/:/g, '%3a')}_${p.arch}.deb`;
}

function isNotFound(err: unknown): boolean {
  const text = err instanceof Error ? err.message : String(err);
  return /Unable to locate package|has no installation candidate|Couldn't find any package/.test(text);
}

function packageError(what: string, err: unknown): CodedError {
  const text = err instanceof CodedError ? String(err.details?.stderr ?? err.message) : String(err);
  const lines = text
    .split('\n')
    .filter((l) => /^E:|^Err:/.test(l))
    .slice(0, 5);
  return new CodedError('invalid_argument', `packages: ${what}: ${lines.join(' ') || text.slice(0, 500)}`, {
    field: 'packages',
  });
}

function packageNotFound(err: unknown): CodedError | undefined {
  if (!isNotFound(err)) return undefined;
  return packageError('a package was not found', err);
}

/**
 * The Debian mirror the host's apt uses for bookworm `main` (NULLSPACE_DEBIAN_MIRROR overrides),
 * read by the same script set-up uses for debootstrap.
 */
export async function debianMirror(log: Logger): Promise<string> {
  if (process.env.NULLSPACE_DEBIAN_MIRROR) return process.env.NULLSPACE_DEBIAN_MIRROR;
  const script = fileURLToPath(new URL('../../../../scripts/debian-mirror.sh', import.meta.url));
  const { stdout } = await host('bash', [script]);
  const mirror = stdout.trim();
  log.info("template packages come from the host's Debian mirror", { mirror });
  return mirror;
}
