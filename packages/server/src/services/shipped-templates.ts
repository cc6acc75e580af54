import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BASE_TEMPLATE, CodedError, type ReadyCheck, canonicalTemplateRef } from '@nullspace/protocol';

/**
 * Templates shipped with Nullspace (`code-interpreter`, `desktop`, `agent` …): declared in the
 * repository (`templates/<name>/template.json`), built by the set-up (`scripts/build-templates.mjs`)
 * into the templates directory, and read here by every server that uses that directory:
 *
 *   <templates dir>/<name>/template.json   what the build made ({@link ShippedTemplateFile})
 *   <templates dir>/<name>/layer/          the build machine's changes over `base` (overlay upper)
 *   <templates dir>/<name>/snapshot/       the ready snapshot (a machine with its start command
 *                                          ready: CRIU images and its disk), when it has one
 *
 * `base` itself is `<templates dir>/base/rootfs` (scripts/build-base-template.sh).
 */
export const SHIPPED_FILE = 'template.json';
export const SHIPPED_LAYER = 'layer';
export const SHIPPED_SNAPSHOT = 'snapshot';

/** What `template.json` in the templates directory holds. */
export interface ShippedTemplateFile {
  name: string;
  /** One line: what the template is for (listed by `GET /v1/templates`). */
  purpose: string;
  packages: string[];
  env: Record<string, string>;
  workdir: string | null;
  start_cmd: string | null;
  ready_check: ReadyCheck | null;
  disk_mb: number;
  vcpus: number;
  memory_mb: number;
  /** The recipe of the `base` it was built on: a rebuilt base makes it unusable until rebuilt. */
  base_recipe: string;
  /** Content key of its declaration and files and its base; null while a build is not finished. */
  recipe: string | null;
  built_at: string;
  /** Bytes of its layer. */
  size_bytes: number;
  /** Its ready snapshot, when it is snapshot-backed and the snapshot is made. */
  snapshot: ShippedSnapshotFile | null;
}

/** The machine the ready snapshot was taken of. */
export interface ShippedSnapshotFile {
  vcpus: number;
  memory_mb: number;
  disk_mb: number;
  cwd: string;
  /** Its envs (the template's, names and values). */
  envs: Record<string, string>;
  size_bytes: number;
  paused_ms: number | null;
}

/** A shipped template as the catalog uses it. */
export interface ShippedTemplate extends ShippedTemplateFile {
  dir: string;
  /** The overlay's lower directories of its machines (its layer over `base`). */
  lowerdir: string;
  /** Where its ready snapshot is (null: none; machines start cold). */
  snapshotDir: string | null;
}

/** Reads the shipped templates of one templates directory (re-read when a file changes). */
export class ShippedTemplates {
  private readonly cache = new Map<string, { mtimeMs: number; t: ShippedTemplate }>();

  constructor(private readonly templatesDir: string) {}

  /** The names of the templates shipped here, `base` not included. */
  names(): string[] {
    let entries: string[];
    try {
      entries = readdirSync(this.templatesDir);
    } catch {
      return [];
    }
    return entries
      .filter((n) => !n.startsWith('.') && n !== BASE_TEMPLATE)
      .filter((n) => existsSync(join(this.templatesDir, n, SHIPPED_FILE)))
      .sort();
  }

  /** Whether `ref` names a shipped template (`name` or `name:latest`). */
  has(ref: string): boolean {
    return this.nameOf(ref) !== undefined;
  }

  /** The shipped template `ref` names, if any. */
  find(ref: string): ShippedTemplate | undefined {
    const name = this.nameOf(ref);
    return name === undefined ? undefined : this.read(name);
  }

  /** `ref`'s template, or `template_not_found`. */
  get(ref: string): ShippedTemplate {
    const t = this.find(ref);
    if (!t) throw new CodedError('template_not_found', `template ${ref} not found`, { template: ref });
    return t;
  }

  private nameOf(ref: string): string | undefined {
    if (ref === BASE_TEMPLATE) return undefined;
    const canonical = canonicalTemplateRef(ref);
    if (!canonical.endsWith(':latest')) return undefined;
    const name = canonical.slice(0, -':latest'.length);
    if (name.includes('/') || name.startsWith('.')) return undefined;
    return existsSync(join(this.templatesDir, name, SHIPPED_FILE)) ? name : undefined;
  }

  private read(name: string): ShippedTemplate {
    const dir = join(this.templatesDir, name);
    const file = join(dir, SHIPPED_FILE);
    const mtimeMs = statSync(file).mtimeMs;
    const cached = this.cache.get(name);
    if (cached && cached.mtimeMs === mtimeMs) return cached.t;
    let parsed: ShippedTemplateFile;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8')) as ShippedTemplateFile;
    } catch (err) {
      throw new CodedError(
        'internal',
        `shipped template ${name}: ${file} is not valid JSON; run scripts/setup.sh`,
        undefined,
        { cause: err },
      );
    }
    const snapshotDir = join(dir, SHIPPED_SNAPSHOT);
    const snapshotReady =
      parsed.snapshot !== null && existsSync(join(snapshotDir, 'memory', 'inventory.img'));
    const t: ShippedTemplate = {
      ...parsed,
      name,
      dir,
      lowerdir: `${join(dir, SHIPPED_LAYER)}:${join(this.templatesDir, BASE_TEMPLATE, 'rootfs')}`,
      snapshotDir: snapshotReady ? snapshotDir : null,
    };
    this.cache.set(name, { mtimeMs, t });
    return t;
  }
}
