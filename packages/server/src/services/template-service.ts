import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  BASE_TEMPLATE,
  CodedError,
  type MachineInfo,
  type SnapshotInfo,
  type TemplateBuildEvent,
  type TemplateBuildStarted,
  type TemplateInfo,
  type TemplateSpec,
  canonicalTemplateRef,
  invalidArgument,
  newId,
  parseTemplateRef,
} from '@nullspace/protocol';
import { type AgentClient, type MachineLink, host } from '@nullspace/runtime';
import type { Logger } from '../log.js';
import type { TemplateRecord, TemplateStore } from '../store/template-store.js';
import { runFollowed, startAndWaitReady, writeMachineFile } from '../templates/agent-ops.js';
import type { PackageCache } from '../templates/package-cache.js';
import type { ResolvedTemplate, TemplateCatalog } from './template-catalog.js';

/** What template builds ask of the machine service: build machines, and what is done with them. */
export interface BuildMachines {
  createForBuild(
    base: ResolvedTemplate,
    o: { vcpus: number; memory_mb: number; disk_mb: number; buildId: string; tenant: string | null },
  ): Promise<MachineInfo>;
  /** Live machines that build a template, with their build. */
  buildMachines(): { id: string; build: string }[];
  agentOf(id: string): AgentClient;
  linkOf(id: string): MachineLink;
  createSnapshot(id: string): Promise<SnapshotInfo>;
  deleteSnapshot(snapshotId: string, o: { forTemplate?: boolean }): Promise<SnapshotInfo>;
  exportChanges(id: string, target: string): Promise<void>;
  kill(id: string, reason?: string): Promise<MachineInfo>;
  /** Resolves once no killed machine of template build `templateId` is still being torn down. */
  untilTornDown(templateId: string): Promise<void>;
}

export interface TemplateServiceOptions {
  catalog: TemplateCatalog;
  machines: BuildMachines;
  packages: PackageCache;
  log: Logger;
}

interface BuildRun {
  events: TemplateBuildEvent[];
  listeners: Set<(e: TemplateBuildEvent) => void>;
}

const BUILD_STEP_TIMEOUT_MS = 30 * 60_000;
/**
 * Left out of a template layer: caches and per-machine state a template must not carry. Removing a
 * directory from the layer leaves the base's (empty) one in view.
 */
const LAYER_JUNK = [
  'tmp',
  'var/tmp',
  'var/cache/apt/archives',
  'var/lib/apt/lists',
  '.nullspace',
  'root/.bash_history',
  'etc/ssh/ssh_host_ed25519_key',
  'etc/ssh/ssh_host_ed25519_key.pub',
  'etc/ssh/ssh_host_ed25519_key-cert.pub',
  'etc/ssh/ssh_host_rsa_key',
  'etc/ssh/ssh_host_rsa_key.pub',
  'etc/ssh/ssh_host_ecdsa_key',
  'etc/ssh/ssh_host_ecdsa_key.pub',
];

/**
 * Template builds: from a spec, in a real machine (packages, files, run steps; then either the
 * machine's filesystem changes become a layer over its base, or, snapshot-backed, the machine with
 * its start command ready is snapshotted), cached by content, named by `name:tag`; their logs;
 * deleting a template. What templates there are and how they resolve is the catalog's.
 */
export class TemplateService {
  private readonly catalog: TemplateCatalog;
  private readonly store: TemplateStore;
  private readonly machines: BuildMachines;
  private readonly log: Logger;
  private readonly runs = new Map<string, BuildRun>();

  constructor(private readonly o: TemplateServiceOptions) {
    this.catalog = o.catalog;
    this.store = o.catalog.store;
    this.machines = o.machines;
    this.log = o.log.child({ component: 'templates' });
  }

  /** Templates; with `tenant`, those it may use: shipped ones, the operator's and its own. */
  list(tenant?: string): TemplateInfo[] {
    return this.catalog.list(tenant);
  }

  get(refOrId: string): TemplateInfo {
    return this.catalog.get(refOrId);
  }

  /** A build's events so far, then live ones until it ends (`follow`); from its log once finished. */
  async *events(refOrId: string, follow: boolean): AsyncGenerator<TemplateBuildEvent> {
    const t = this.catalog.find(refOrId);
    const run = this.runs.get(t.id);
    if (!run) {
      const file = this.catalog.logFile(t.id);
      if (existsSync(file)) {
        for await (const line of createInterface({ input: createReadStream(file) })) {
          if (line.trim()) yield JSON.parse(line) as TemplateBuildEvent;
        }
      } else if (t.status === 'ready')
        yield { type: 'done', template: this.catalog.info(t), at: new Date().toISOString() };
      return;
    }
    const queue: TemplateBuildEvent[] = [...run.events];
    let wake: (() => void) | undefined;
    const listener = (e: TemplateBuildEvent) => {
      queue.push(e);
      wake?.();
    };
    if (follow) run.listeners.add(listener);
    try {
      for (;;) {
        const e = queue.shift();
        if (e) {
          yield e;
          if (e.type === 'done' || e.type === 'error') return;
          continue;
        }
        if (!follow) return;
        await new Promise<void>((r) => {
          wake = r;
        });
        wake = undefined;
      }
    } finally {
      run.listeners.delete(listener);
    }
  }

  // ---- build ------------------------------------------------------------------------------------

  /**
   * Starts building `spec` (or finds it built or building: the same content is never built twice)
   * and points its tags at the build once it is ready.
   */
  build(request: TemplateSpec, tenant: string | null): TemplateBuildStarted {
    // A shipped base is named by its plain name, like `base` (`code-interpreter`, not `…:latest`).
    const shippedName = this.catalog.shipped.find(request.base)?.name;
    const spec = shippedName === undefined ? request : { ...request, base: shippedName };
    if (tenant !== null) {
      // A tenant's templates are named under the tenant (`acme/app`), so no tenant can take or move
      // a name another uses, and no conflict tells one tenant another's names.
      if (!spec.name.startsWith(`${tenant}/`))
        throw invalidArgument('name', `must start with "${tenant}/" (the templates of tenant ${tenant})`);
      for (const tag of spec.tags) {
        const at = this.store.tagged(spec.name, tag);
        if (at !== undefined && this.store.get(at)?.tenant !== tenant)
          throw new CodedError(
            'conflict',
            `template ${spec.name}:${tag} is the operator's; build yours under another name`,
            { template: `${spec.name}:${tag}` },
          );
      }
    }
    if (this.catalog.shipped.has(spec.name))
      throw new CodedError(
        'invalid_argument',
        `name: "${spec.name}" is a template shipped with the server; build yours under another name (or on it: base "${spec.name}")`,
        { field: 'name' },
      );
    const base = this.catalog.resolve(spec.base);
    const baseRecipe = this.catalog.baseRecipe();
    const shippedBase = base.id ? undefined : this.catalog.shipped.find(spec.base);
    const baseKey = base.id
      ? (this.store.get(base.id) as TemplateRecord).key
      : spec.base === BASE_TEMPLATE
        ? `base:${baseRecipe}`
        : shippedBase
          ? `shipped:${shippedBase.recipe}`
          : `dir:${spec.base}`;
    const key = contentKey(spec, baseKey);
    const existing = this.store.byKey(key, tenant);
    if (existing) {
      if (existing.status === 'ready') this.tag(spec, existing.id);
      else this.pendingTags.set(existing.id, [...(this.pendingTags.get(existing.id) ?? []), spec]);
      return {
        build_id: existing.id,
        cached: existing.status === 'ready',
        template: this.catalog.info(existing),
      };
    }
    const record: TemplateRecord = {
      id: newId('template'),
      key,
      status: 'building',
      spec,
      base_id: base.id,
      base_recipe: baseRecipe,
      snapshot_id: null,
      size_bytes: 0,
      error: null,
      created_at: Date.now(),
      finished_at: null,
      tenant,
    };
    this.store.insert(record);
    this.pendingTags.set(record.id, [spec]);
    const run: BuildRun = { events: [], listeners: new Set() };
    this.runs.set(record.id, run);
    void this.runBuild(record, run).finally(() => {
      // Finished builds are read back from their log; keep the run a little for late followers.
      setTimeout(() => this.runs.delete(record.id), 60_000).unref();
    });
    return { build_id: record.id, cached: false, template: this.catalog.info(record) };
  }

  /** Tags asked for while a build of the same content was running (set when it is ready). */
  private readonly pendingTags = new Map<string, TemplateSpec[]>();

  /**
   * Deletes `name:tag`; the build goes too when no other tag names it. Refused while a machine
   * (alive or hibernated), a warm pool or another template uses the build.
   */
  async delete(ref: string, users: (id: string) => string[], tenant: string | null): Promise<TemplateInfo> {
    const canonical = canonicalTemplateRef(ref);
    if (canonical === BASE_TEMPLATE || this.catalog.shipped.has(ref))
      throw new CodedError(
        'invalid_argument',
        `template ${ref} is shipped with the server and cannot be deleted`,
        { template: ref },
      );
    const { name, tag } = parseTemplateRef(canonical);
    const id = this.store.tagged(name, tag);
    const t = id ? this.store.get(id) : undefined;
    // Named as the caller wrote it, like every other route's not-found (a tenant's check answers
    // another tenant's template with the same words as a missing one).
    if (!t) throw new CodedError('template_not_found', `template ${ref} not found`, { template: ref });
    // The routes' check has made sure the tenant may see it: the operator's (shared) it may only use.
    if (tenant !== null && t.tenant !== tenant)
      throw new CodedError(
        'permission_denied',
        `template ${canonical} is the operator's, shared with every tenant; only the operator can delete it`,
        { template: canonical },
      );
    if (t.status === 'building')
      throw new CodedError('invalid_state', `template ${canonical} is still building`, {
        template: canonical,
      });
    // Refused while anything uses the build, even when another tag would keep it: a tag is how
    // people and pools name it, and deleting one under them is a surprise either way.
    const using = [...users(t.id), ...this.store.children(t.id).map((c) => `template build ${c.id}`)];
    if (using.length > 0)
      throw new CodedError(
        'invalid_state',
        `template ${canonical} is in use by ${using.slice(0, 5).join(', ')}${using.length > 5 ? ` and ${using.length - 5} more` : ''}`,
        { template: canonical, used_by: using.slice(0, 20) },
      );
    // A killed machine's overlay still stacks on the build's layers until its teardown (after the
    // kill answered) unmounts it: the layers go once that is done.
    await this.machines.untilTornDown(t.id);
    const others = this.store.namesOf(t.id).filter((n) => n !== canonical);
    this.store.removeTag(name, tag);
    if (others.length > 0) return this.catalog.info(t);
    await rm(this.catalog.buildDir(t.id), { recursive: true, force: true });
    if (t.snapshot_id)
      await this.machines.deleteSnapshot(t.snapshot_id, { forTemplate: true }).catch(() => undefined);
    this.store.update(t.id, { status: 'deleted' });
    this.log.info('template deleted', { template: canonical, template_id: t.id });
    return this.catalog.info({ ...t, status: 'deleted' });
  }

  /**
   * After a restart: builds that were running when the server stopped failed with it; their files
   * and their build machines go.
   */
  async recover(): Promise<void> {
    const machines = this.machines;
    const stopped = new Set<string>();
    for (const t of this.store.list()) {
      if (t.status !== 'building') continue;
      stopped.add(t.id);
      this.store.update(t.id, {
        status: 'failed',
        error: 'the server stopped during the build',
        finished_at: Date.now(),
      });
      await rm(join(this.catalog.buildDir(t.id), 'layer'), { recursive: true, force: true });
    }
    for (const m of machines.buildMachines()) {
      if (!stopped.has(m.build)) continue;
      this.log.info('killing the machine of an interrupted template build', {
        machine_id: m.id,
        template_id: m.build,
      });
      await machines
        .kill(m.id, 'its template build was interrupted by a server restart')
        .catch(() => undefined);
    }
  }

  private async runBuild(t: TemplateRecord, run: BuildRun): Promise<void> {
    const spec = t.spec;
    const started = Date.now();
    const steps = [
      ...(spec.packages.length ? ['fetch packages'] : []),
      'start a build machine',
      ...(spec.packages.length ? ['install packages'] : []),
      ...(spec.files.length ? ['copy files'] : []),
      ...spec.run.map((r) => `run: ${oneLine(r)}`),
      ...(spec.snapshot ? ['start command', 'snapshot'] : ['capture the filesystem']),
    ];
    let step = 0;
    const emit = (e: TemplateBuildEvent) => {
      run.events.push(e);
      for (const l of run.listeners) l(e);
      void appendFile(this.catalog.logFile(t.id), `${JSON.stringify(e)}\n`).catch(() => undefined);
    };
    const at = () => new Date().toISOString();
    const next = (name: string) => {
      step++;
      emit({ type: 'step', step, total: steps.length, name, at: at() });
    };
    const log = (line: string) => emit({ type: 'log', step, line, at: at() });
    const machines = this.machines;
    let machineId: string | undefined;
    try {
      // In the try: on a full disk even this fails, and the build must fail with `disk_full`.
      await mkdir(this.catalog.buildDir(t.id), { recursive: true });
      let debs: string[] = [];
      if (spec.packages.length) {
        next('fetch packages');
        // PackageCache.fetch already turns a package apt cannot find into invalid_argument.
        debs = await this.o.packages.fetch(spec.packages, this.catalog.dpkgStatus(t), log);
      }
      next('start a build machine');
      // The base build recorded at the request, even if its tag has moved since: the layer made
      // here goes over exactly that one.
      const base = t.base_id
        ? this.catalog.resolveBuild(this.catalog.usable(t.base_id, spec.base), spec.base)
        : this.catalog.resolveUnbuilt(spec.base);
      const m = await machines.createForBuild(base, {
        vcpus: spec.vcpus,
        memory_mb: spec.memory_mb,
        disk_mb: spec.disk_mb,
        buildId: t.id,
        // The build machine is the template's tenant's: it counts to that tenant's quota.
        tenant: t.tenant,
      });
      machineId = m.id;
      log(
        `machine ${m.id} (${spec.vcpus} vCPU, ${spec.memory_mb} MB, ${spec.disk_mb} MB disk) from ${spec.base}`,
      );
      const agent = machines.agentOf(m.id);
      const env = { ...base.env, ...spec.env };
      const cwd = spec.workdir ?? base.workdir ?? '/';
      const sh = async (script: string, what: string) => {
        const p = await runFollowed(agent, script, {
          cwd: '/',
          envs: { ...env, DEBIAN_FRONTEND: 'noninteractive' },
          timeoutMs: BUILD_STEP_TIMEOUT_MS,
          onLine: log,
        });
        if (p.exit_code !== 0)
          throw new CodedError(
            'invalid_argument',
            `${what} failed (${p.timed_out ? 'timed out' : (p.signal ?? `exit ${p.exit_code}`)})`,
          );
      };
      if (spec.packages.length) {
        next('install packages');
        if (debs.length === 0) log('every package is installed already');
        else {
          await sh('mkdir -p /tmp/nullspace-debs', 'preparing the package install');
          for (const f of debs)
            await writeMachineFile(agent, `/tmp/nullspace-debs/${basename(f)}`, readFileSync(f));
          await sh(
            'apt-get install -y -q --no-install-recommends /tmp/nullspace-debs/*.deb && rm -rf /tmp/nullspace-debs',
            'installing the packages',
          );
        }
      }
      if (spec.files.length) {
        next('copy files');
        for (const f of spec.files) {
          await sh(`mkdir -p ${shq(dirname(f.path))}`, `creating ${dirname(f.path)}`);
          await writeMachineFile(agent, f.path, Buffer.from(f.content_base64, 'base64'));
          await sh(`chmod ${f.mode.toString(8)} ${shq(f.path)}`, `chmod of ${f.path}`);
          log(
            `${f.path} (${Buffer.byteLength(f.content_base64, 'base64')} bytes, mode ${f.mode.toString(8)})`,
          );
        }
      }
      for (const [i, r] of spec.run.entries()) {
        next(`run: ${oneLine(r)}`);
        await sh(`mkdir -p ${shq(cwd)} && cd ${shq(cwd)} && ${r}`, `run step ${i + 1}`);
      }
      if (spec.workdir) await sh(`mkdir -p ${shq(spec.workdir)}`, `creating ${spec.workdir}`);
      if (spec.snapshot && spec.start_cmd) {
        next('start command');
        const ms = await startAndWaitReady(
          agent,
          machines.linkOf(m.id),
          { start_cmd: spec.start_cmd, ready_check: spec.ready_check },
          { cwd, envs: { ...env, NULLSPACE_MACHINE_ID: m.id } },
        );
        log(spec.ready_check ? `ready after ${ms} ms` : 'started (no ready check)');
        next('snapshot');
        const snap = await machines.createSnapshot(m.id);
        this.store.update(t.id, { snapshot_id: snap.id, size_bytes: snap.size_bytes });
        log(`snapshot ${snap.id} (${mib(snap.size_bytes)} MiB, machine frozen ${snap.paused_ms} ms)`);
      } else {
        next('capture the filesystem');
        const layer = this.catalog.layerDir(t.id);
        await rm(layer, { recursive: true, force: true });
        await mkdir(layer, { recursive: true });
        await machines.exportChanges(m.id, layer);
        for (const junk of LAYER_JUNK) await rm(join(layer, junk), { recursive: true, force: true });
        const size = await duBytes(layer);
        this.store.update(t.id, { size_bytes: size });
        log(`layer of ${mib(size)} MiB`);
      }
      await machines.kill(m.id, 'template build finished');
      machineId = undefined;
      this.store.update(t.id, { status: 'ready', finished_at: Date.now() });
      for (const s of this.pendingTags.get(t.id) ?? []) this.tag(s, t.id);
      this.pendingTags.delete(t.id);
      const done = this.store.get(t.id) as TemplateRecord;
      this.log.info('template built', {
        template_id: t.id,
        names: this.store.namesOf(t.id),
        ms: Date.now() - started,
      });
      emit({ type: 'done', template: this.catalog.info(done), at: at() });
    } catch (err) {
      const e =
        err instanceof CodedError && err.code !== 'internal'
          ? err
          : isDiskFull(err)
            ? new CodedError('disk_full', 'template build failed: the host is out of disk space')
            : new CodedError(
                'internal',
                `template build failed: ${err instanceof Error ? err.message : String(err)}`,
              );
      this.log.error('template build failed', { template_id: t.id, error: err });
      if (machineId) await machines.kill(machineId, 'template build failed').catch(() => undefined);
      const snapshotId = this.store.get(t.id)?.snapshot_id;
      if (snapshotId) await machines.deleteSnapshot(snapshotId, { forTemplate: true }).catch(() => undefined);
      await rm(this.catalog.layerDir(t.id), { recursive: true, force: true });
      this.store.update(t.id, {
        status: 'failed',
        error: e.message,
        finished_at: Date.now(),
        snapshot_id: null,
      });
      this.pendingTags.delete(t.id);
      emit({ type: 'error', error: { code: e.code, message: e.message }, at: at() });
    }
  }

  // ---- helpers ----------------------------------------------------------------------------------

  private tag(spec: TemplateSpec, id: string): void {
    for (const tag of spec.tags) this.store.setTag(spec.name, tag, id);
  }
}

/** The content key of a build: everything that shapes the result, and what it is built on. */
function contentKey(spec: TemplateSpec, baseKey: string): string {
  const { name: _name, tags: _tags, ...shape } = spec;
  return createHash('sha256')
    .update(JSON.stringify({ v: 1, ...shape, base: baseKey }))
    .digest('hex');
}

/**
 * The data directory filled up under the build: a file the server writes (ENOSPC) or a host tool
 * that says so in its own words (the runtime already turns its layer copy into `disk_full`).
 */
function isDiskFull(err: unknown): boolean {
  if ((err as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC') return true;
  return err instanceof CodedError && /No space left on device/.test(err.message);
}

function oneLine(s: string): string {
  const line = s.replace(/\s+/g, ' ').trim();
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

async function duBytes(dir: string): Promise<number> {
  const { stdout } = await host('du', ['-sb', dir], { timeoutMs: 120_000 });
  return Number.parseInt(stdout, 10) || 0;
}
