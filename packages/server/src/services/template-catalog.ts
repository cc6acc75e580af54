import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BASE_TEMPLATE,
  CodedError,
  type ReadyCheck,
  type TemplateInfo,
  canonicalTemplateRef,
  parseTemplateRef,
} from '@nullspace/protocol';
import type { TemplateRecord, TemplateStore } from '../store/template-store.js';

/** What a machine made from a template needs to know about it (see {@link TemplateCatalog.resolve}). */
export interface ResolvedTemplate {
  /** Canonical reference: `base`, or `name:tag`. */
  ref: string;
  /** The build (null: the built-in `base` or a template directory made by hand). */
  id: string | null;
  /** The overlay's lower directories, top first, `:`-separated. */
  lowerdir: string;
  env: Record<string, string>;
  workdir: string | null;
  start: { start_cmd: string; ready_check: ReadyCheck | null } | null;
  /** Built-in disk size (null: the server's default). */
  disk_mb: number | null;
  /** Snapshot-backed: machines start from this snapshot (its disk size is fixed). */
  snapshot_id: string | null;
}

/** Where a machine's template comes from, for the machine service. */
export interface TemplateResolver {
  resolve(ref: string): ResolvedTemplate;
  /** The lower directories of a machine already made from build `id` (null: by `ref`'s directory). */
  lowerdirOf(id: string | null, ref: string): string;
  /** Why the snapshot cannot be deleted (a template starts machines from it), if so. */
  snapshotUser(snapshotId: string): string | undefined;
}

export interface TemplateCatalogOptions {
  store: TemplateStore;
  /** The built-in `base` (and hand-made templates): `<dir>/<name>/rootfs`. */
  templatesDir: string;
  /** Built templates: `<dir>/<id>/layer`, `<dir>/<id>/build.log`. */
  buildsDir: string;
}

/**
 * What templates there are and what a machine of one is made of: a reference resolved to its
 * build, the chain of layers under it (the overlay's `lowerdir`), its env, workdir, disk size,
 * start command and, snapshot-backed, its snapshot. Reads only; builds are the template service's.
 */
export class TemplateCatalog implements TemplateResolver {
  readonly store: TemplateStore;

  constructor(private readonly o: TemplateCatalogOptions) {
    this.store = o.store;
  }

  resolve(ref: string): ResolvedTemplate {
    const canonical = canonicalTemplateRef(ref);
    const { name, tag } = parseTemplateRef(canonical);
    const id = ref === BASE_TEMPLATE ? undefined : this.store.tagged(name, tag);
    if (id === undefined) return this.resolveDir(ref === BASE_TEMPLATE ? ref : canonical, ref);
    return this.resolveBuild(this.usable(id, canonical), canonical);
  }

  /** The built-in base, or a directory someone put in the templates directory by hand. */
  resolveDir(ref: string, dirName: string): ResolvedTemplate {
    return {
      ref,
      id: null,
      lowerdir: this.baseDir(dirName),
      env: {},
      workdir: null,
      start: null,
      disk_mb: null,
      snapshot_id: null,
    };
  }

  resolveBuild(t: TemplateRecord, ref: string): ResolvedTemplate {
    const chain = this.chain(t, ref);
    return {
      ref,
      id: t.id,
      lowerdir: this.layers(chain),
      // The base's env under the template's; the nearest workdir.
      env: Object.assign({}, ...[...chain].reverse().map((c) => c.spec.env)) as Record<string, string>,
      workdir: chain.find((c) => c.spec.workdir !== null)?.spec.workdir ?? null,
      start: t.spec.start_cmd ? { start_cmd: t.spec.start_cmd, ready_check: t.spec.ready_check } : null,
      disk_mb: t.spec.disk_mb,
      snapshot_id: t.snapshot_id,
    };
  }

  lowerdirOf(id: string | null, ref: string): string {
    if (id === null) return this.baseDir(ref);
    const t = this.store.get(id);
    if (!t || t.status === 'deleted')
      throw new CodedError('template_not_found', `template ${ref} (build ${id}) not found`, {
        template: ref,
      });
    return this.layers(this.chain(t, ref));
  }

  /**
   * The overlay's lower directories of a chain of builds (top first): each build's layer, then the
   * directory at the bottom. A snapshot-backed build has no layer: its changes are on its
   * snapshot's disk.
   */
  private layers(chain: TemplateRecord[]): string {
    const bottom = chain[chain.length - 1] as TemplateRecord;
    return [
      ...chain.filter((c) => c.snapshot_id === null).map((c) => this.layerDir(c.id)),
      this.baseDir(bottom.spec.base),
    ].join(':');
  }

  baseDir(name: string): string {
    const dir = join(this.o.templatesDir, encodeURIComponent(name), 'rootfs');
    if (!existsSync(dir))
      throw new CodedError('template_not_found', `template ${name} not found`, { template: name });
    return dir;
  }

  snapshotUser(snapshotId: string): string | undefined {
    const t = this.store.list().find((x) => x.snapshot_id === snapshotId);
    return t ? `template ${this.store.namesOf(t.id)[0] ?? t.id} starts machines from it` : undefined;
  }

  // ---- queries ----------------------------------------------------------------------------------

  list(): TemplateInfo[] {
    return this.store.list().map((t) => this.info(t));
  }

  get(refOrId: string): TemplateInfo {
    return this.info(this.find(refOrId));
  }

  usable(id: string, ref: string): TemplateRecord {
    const t = this.store.get(id);
    if (!t || t.status !== 'ready')
      throw new CodedError('template_not_found', `template ${ref} not found`, { template: ref });
    if (t.base_recipe !== this.baseRecipe())
      throw new CodedError(
        'invalid_state',
        `template ${ref} was built on an older base template; build it again`,
        { template: ref },
      );
    return t;
  }

  /** `t` and the builds under it, top first (a template's base cannot be deleted under it). */
  chain(t: TemplateRecord, ref: string): TemplateRecord[] {
    const out = [t];
    for (let base = t.base_id; base !== null; ) {
      const b = this.store.get(base);
      if (!b || b.status === 'deleted')
        throw new CodedError('template_not_found', `template ${ref}: its base build ${base} is gone`, {
          template: ref,
        });
      out.push(b);
      base = b.base_id;
    }
    return out;
  }

  /** The dpkg status file of what `t` is built on (the top-most layer that has one). */
  dpkgStatus(t: TemplateRecord): string {
    const lower = this.lowerdirOf(t.base_id, t.spec.base);
    for (const dir of lower.split(':')) {
      const f = join(dir, 'var/lib/dpkg/status');
      if (existsSync(f)) return f;
    }
    throw new CodedError('internal', `no dpkg status file under ${lower}`);
  }

  find(refOrId: string): TemplateRecord {
    if (refOrId.startsWith('tpl_')) {
      const t = this.store.get(refOrId);
      if (t && t.status !== 'deleted') return t;
    } else {
      const { name, tag } = parseTemplateRef(canonicalTemplateRef(refOrId));
      const id = this.store.tagged(name, tag);
      const t = id ? this.store.get(id) : undefined;
      if (t) return t;
    }
    throw new CodedError('template_not_found', `template ${refOrId} not found`, { template: refOrId });
  }

  info(t: TemplateRecord): TemplateInfo {
    return {
      id: t.id,
      names: this.store.namesOf(t.id),
      status: t.status,
      key: t.key,
      base: t.spec.base,
      packages: t.spec.packages,
      env: Object.keys(t.spec.env),
      workdir: t.spec.workdir,
      start_cmd: t.spec.start_cmd,
      ready_check: t.spec.ready_check,
      disk_mb: t.spec.disk_mb,
      vcpus: t.spec.vcpus,
      memory_mb: t.spec.memory_mb,
      snapshot_backed: t.spec.snapshot,
      snapshot_id: t.snapshot_id,
      size_bytes: t.size_bytes,
      error: t.error,
      created_at: new Date(t.created_at).toISOString(),
      finished_at: t.finished_at ? new Date(t.finished_at).toISOString() : null,
      build_ms: t.finished_at ? t.finished_at - t.created_at : null,
    };
  }

  baseRecipe(): string {
    try {
      return readFileSync(join(this.o.templatesDir, BASE_TEMPLATE, 'recipe'), 'utf8').trim();
    } catch {
      return 'unknown';
    }
  }

  // ---- where builds live ------------------------------------------------------------------------

  buildDir(id: string): string {
    return join(this.o.buildsDir, id);
  }

  layerDir(id: string): string {
    return join(this.buildDir(id), 'layer');
  }

  logFile(id: string): string {
    return join(this.buildDir(id), 'build.log');
  }
}
