import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  BASE_TEMPLATE,
  CodedError,
  MACHINE_LIMITS,
  type ReadyCheck,
  type TemplateInfo,
  canonicalTemplateRef,
  parseTemplateRef,
} from '@nullspace/protocol';
import type { TemplateRecord, TemplateStore } from '../store/template-store.js';
import { type ShippedSnapshotFile, type ShippedTemplate, ShippedTemplates } from './shipped-templates.js';

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
  /**
   * A shipped template's ready snapshot (in the templates directory, shared by every server):
   * machines are restored from it, and start cold when the restore fails.
   */
  ready_snapshot: { dir: string; machine: ShippedSnapshotFile } | null;
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
  /**
   * The built-in `base` (`<dir>/base/rootfs`), the templates shipped with the server
   * (`<dir>/<name>/template.json`, see shipped-templates.ts) and hand-made ones (`<dir>/<name>/rootfs`).
   */
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
  /** The templates shipped with the server (built by the set-up into the templates directory). */
  readonly shipped: ShippedTemplates;

  constructor(private readonly o: TemplateCatalogOptions) {
    this.store = o.store;
    this.shipped = new ShippedTemplates(o.templatesDir);
  }

  resolve(ref: string): ResolvedTemplate {
    const canonical = canonicalTemplateRef(ref);
    const { name, tag } = parseTemplateRef(canonical);
    const id = ref === BASE_TEMPLATE ? undefined : this.store.tagged(name, tag);
    if (id === undefined) return this.resolveUnbuilt(ref);
    return this.resolveBuild(this.usable(id, canonical), canonical);
  }

  /** A template that is not a build of this server: `base`, a shipped one, or a hand-made directory. */
  resolveUnbuilt(ref: string): ResolvedTemplate {
    if (ref === BASE_TEMPLATE) return this.resolveDir(ref, ref);
    const shipped = this.shipped.find(ref);
    if (shipped) return this.resolveShipped(shipped);
    return this.resolveDir(canonicalTemplateRef(ref), ref);
  }

  /** The built-in base, or a directory someone put in the templates directory by hand. */
  private resolveDir(ref: string, dirName: string): ResolvedTemplate {
    return {
      ref,
      id: null,
      lowerdir: this.baseDir(dirName),
      env: {},
      workdir: null,
      start: null,
      disk_mb: null,
      snapshot_id: null,
      ready_snapshot: null,
    };
  }

  private resolveShipped(t: ShippedTemplate): ResolvedTemplate {
    if (t.base_recipe !== this.baseRecipe())
      throw new CodedError(
        'invalid_state',
        `template ${t.name} was built on an older base template; run scripts/setup.sh to build it again`,
        { template: t.name },
      );
    return {
      ref: t.name,
      id: null,
      lowerdir: t.lowerdir,
      env: t.env,
      workdir: t.workdir,
      start: t.start_cmd ? { start_cmd: t.start_cmd, ready_check: t.ready_check } : null,
      disk_mb: t.disk_mb,
      snapshot_id: null,
      ready_snapshot: t.snapshotDir && t.snapshot ? { dir: t.snapshotDir, machine: t.snapshot } : null,
    };
  }

  resolveBuild(t: TemplateRecord, ref: string): ResolvedTemplate {
    const chain = this.chain(t, ref);
    return {
      ref,
      id: t.id,
      lowerdir: this.layers(chain),
      // The base's env under the template's (a shipped template at the bottom too); the nearest workdir.
      env: Object.assign(
        {},
        this.shipped.find((chain[chain.length - 1] as TemplateRecord).spec.base)?.env,
        ...[...chain].reverse().map((c) => c.spec.env),
      ) as Record<string, string>,
      workdir: chain.find((c) => c.spec.workdir !== null)?.spec.workdir ?? null,
      start: t.spec.start_cmd ? { start_cmd: t.spec.start_cmd, ready_check: t.spec.ready_check } : null,
      disk_mb: t.spec.disk_mb,
      snapshot_id: t.snapshot_id,
      ready_snapshot: null,
    };
  }

  lowerdirOf(id: string | null, ref: string): string {
    if (id === null) return this.shipped.find(ref)?.lowerdir ?? this.baseDir(ref);
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
      this.lowerdirOf(null, bottom.spec.base),
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

  /**
   * The templates shipped with the server (`base` first), then this server's builds; with
   * `tenant`, only the builds it may use: the operator's (shared) and its own.
   */
  list(tenant?: string): TemplateInfo[] {
    const shipped = this.shipped.names().map((n) => this.shippedInfo(this.shipped.get(n)));
    const base = existsSync(join(this.o.templatesDir, BASE_TEMPLATE, 'rootfs')) ? [this.baseInfo()] : [];
    const builds = this.store
      .list()
      .filter((t) => tenant === undefined || t.tenant === null || t.tenant === tenant);
    return [...base, ...shipped, ...builds.map((t) => this.info(t))];
  }

  /**
   * Whose template `refOrId` is: a build's tenant (null: the operator's, shared), null for `base`
   * and shipped ones; undefined when it names nothing (the caller's own lookup then says so).
   */
  ownerOf(refOrId: string): { tenant: string | null } | undefined {
    let id: string | undefined;
    if (refOrId.startsWith('tpl_')) id = refOrId;
    else {
      try {
        id = refOrId === BASE_TEMPLATE ? undefined : this.store.tagged(...refParts(refOrId));
      } catch {
        return undefined; // not a template reference: the route's own parsing answers
      }
      if (id === undefined) return { tenant: null };
    }
    const t = this.store.get(id);
    return t && t.status !== 'deleted' ? { tenant: t.tenant } : undefined;
  }

  get(refOrId: string): TemplateInfo {
    if (refOrId === BASE_TEMPLATE) {
      this.baseDir(BASE_TEMPLATE);
      return this.baseInfo();
    }
    if (!refOrId.startsWith('tpl_') && this.store.tagged(...refParts(refOrId)) === undefined) {
      const shipped = this.shipped.find(refOrId);
      if (shipped) return this.shippedInfo(shipped);
    }
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
      shipped: false,
      purpose: null,
    };
  }

  private shippedInfo(t: ShippedTemplate): TemplateInfo {
    return {
      id: t.name,
      names: [t.name],
      status: t.recipe === null ? 'building' : 'ready',
      key: t.recipe ?? '',
      base: BASE_TEMPLATE,
      packages: t.packages,
      env: Object.keys(t.env),
      workdir: t.workdir,
      start_cmd: t.start_cmd,
      ready_check: t.ready_check,
      disk_mb: t.disk_mb,
      vcpus: t.vcpus,
      memory_mb: t.memory_mb,
      snapshot_backed: t.snapshotDir !== null,
      snapshot_id: null,
      size_bytes: t.size_bytes,
      error: null,
      created_at: t.built_at,
      finished_at: t.built_at,
      build_ms: null,
      shipped: true,
      purpose: t.purpose,
    };
  }

  private baseInfo(): TemplateInfo {
    const recipe = join(this.o.templatesDir, BASE_TEMPLATE, 'recipe');
    const built = existsSync(recipe) ? statSync(recipe).mtime.toISOString() : new Date(0).toISOString();
    return {
      id: BASE_TEMPLATE,
      names: [BASE_TEMPLATE],
      status: 'ready',
      key: this.baseRecipe(),
      base: null,
      packages: [],
      env: [],
      workdir: null,
      start_cmd: null,
      ready_check: null,
      disk_mb: MACHINE_LIMITS.disk_mb.default,
      vcpus: MACHINE_LIMITS.vcpus.default,
      memory_mb: MACHINE_LIMITS.memory_mb.default,
      snapshot_backed: false,
      snapshot_id: null,
      size_bytes: 0,
      error: null,
      created_at: built,
      finished_at: built,
      build_ms: null,
      shipped: true,
      purpose:
        'Debian bookworm with bash, coreutils, python3, git, curl, procps and openssh-server: every template starts from it',
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

/** `name` and `tag` of a reference, as the store's `tagged` takes them. */
function refParts(ref: string): [string, string] {
  const { name, tag } = parseTemplateRef(canonicalTemplateRef(ref));
  return [name, tag];
}
