import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { agentBundleDir } from '@nullspace/agent';
import {
  AGENT_PATHS,
  type MachineInfo,
  type SnapshotInfo,
  type TemplateBuildEvent,
  type TemplateBuildStarted,
  type TemplateSpec,
  parseTemplateSpec,
} from '@nullspace/protocol';
import { host, mountsUnder } from '@nullspace/runtime';
import { type RunningServer, startServer } from '../server.js';
import {
  SHIPPED_FILE,
  SHIPPED_LAYER,
  SHIPPED_SNAPSHOT,
  type ShippedTemplateFile,
} from '../services/shipped-templates.js';

/** Bump when what a build makes of a declaration changes, so that shipped templates are rebuilt. */
const BUILDER_VERSION = 1;
/** Addresses of the build server's machines: a corner other servers on this host rarely reach. */
const BUILD_MACHINE_NETWORK = '10.213.240.0/20';
/** Fields of `templates/<name>/template.json` besides a template spec's. */
const DECLARATION_ONLY = ['purpose'];

export interface BuildShippedOptions {
  /** The declarations: `<dir>/<name>/template.json` (the repository's `templates/`). */
  sourceDir: string;
  /** Where they are built: beside `base`, `<dir>/<name>/`. */
  templatesDir: string;
  /** Only these (default: every declaration). */
  names?: string[];
  /** Template packages only from the package cache (NULLSPACE_PACKAGES_OFFLINE=1). */
  packagesOffline?: boolean;
  /** Progress, one line at a time. */
  say(line: string): void;
}

/** One declaration, read and checked. */
interface Declaration {
  name: string;
  purpose: string;
  spec: TemplateSpec;
  /** The body `POST /v1/templates` builds it from (under a build name). */
  body: Record<string, unknown>;
  recipe: string;
}

/**
 * Builds the templates shipped with Nullspace (see services/shipped-templates.ts): each declaration
 * in `sourceDir` whose recipe (its spec, its files, the `base` it goes over, this builder's
 * version) differs from what the templates directory holds is built by a temporary server with the
 * ordinary template build (packages fetched on the host, installed in a real build machine), its
 * layer copied beside `base`, and — snapshot-backed — a machine of it started, snapshotted with its
 * start command ready, and that snapshot kept as the template's ready snapshot. Idempotent.
 */
export async function buildShippedTemplates(o: BuildShippedOptions): Promise<{ built: string[] }> {
  const baseRecipe = readFileSync(join(o.templatesDir, 'base', 'recipe'), 'utf8').trim();
  const declarations = readDeclarations(o.sourceDir, baseRecipe).filter(
    (d) => o.names === undefined || o.names.includes(d.name),
  );
  const stale = declarations.filter((d) => {
    const fresh = isUpToDate(o.templatesDir, d);
    if (fresh) o.say(`template ${d.name} is up to date`);
    return !fresh;
  });
  if (stale.length === 0) return { built: [] };
  const builder = await BuildServer.start(o);
  try {
    for (const d of stale) await builder.build(d, baseRecipe);
  } finally {
    await builder.close();
  }
  return { built: stale.map((d) => d.name) };
}

/** Every `<sourceDir>/<name>/template.json`, read as a spec (files inlined) and checked. */
function readDeclarations(sourceDir: string, baseRecipe: string): Declaration[] {
  if (!existsSync(sourceDir)) return [];
  return readdirSync(sourceDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(sourceDir, e.name, SHIPPED_FILE)))
    .map((e) => readDeclaration(join(sourceDir, e.name), e.name, baseRecipe))
    .sort((a, b) => a.name.localeCompare(b.name));
}

function readDeclaration(dir: string, name: string, baseRecipe: string): Declaration {
  const file = join(dir, SHIPPED_FILE);
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const purpose = raw.purpose;
  if (typeof purpose !== 'string' || purpose.trim() === '')
    throw new Error(`${file}: "purpose" must say in one line what the template is for`);
  const fields = Object.fromEntries(Object.entries(raw).filter(([k]) => !DECLARATION_ONLY.includes(k)));
  const files = Array.isArray(fields.files) ? (fields.files as Record<string, unknown>[]) : [];
  const body: Record<string, unknown> = {
    ...fields,
    name: `shipped-build/${name}`,
    files: files.map((f, i) => {
      if (typeof f.source !== 'string') throw new Error(`${file}: files[${i}].source must name a file`);
      const source = resolve(dir, f.source);
      if (!source.startsWith(`${resolve(dir)}/`))
        throw new Error(`${file}: files[${i}].source must stay inside ${dir}`);
      const { source: _source, ...rest } = f;
      return { ...rest, content_base64: readFileSync(source).toString('base64') };
    }),
  };
  let spec: TemplateSpec;
  try {
    spec = parseTemplateSpec(body);
  } catch (err) {
    throw new Error(`${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (spec.base !== 'base') throw new Error(`${file}: a shipped template is built on base`);
  // A ready snapshot holds the agent as it was in memory when it was taken: a changed agent makes
  // the template out of date (machines restored from it would run the old agent).
  const agent = spec.snapshot
    ? createHash('sha256')
        .update(readFileSync(join(agentBundleDir(), AGENT_PATHS.scriptName)))
        .digest('hex')
    : null;
  const recipe = createHash('sha256')
    .update(JSON.stringify({ v: BUILDER_VERSION, body, purpose, base: baseRecipe, agent }))
    .digest('hex');
  return { name, purpose, spec, body, recipe };
}

function isUpToDate(templatesDir: string, d: Declaration): boolean {
  const dir = join(templatesDir, d.name);
  try {
    const built = JSON.parse(readFileSync(join(dir, SHIPPED_FILE), 'utf8')) as ShippedTemplateFile;
    if (built.recipe !== d.recipe || !existsSync(join(dir, SHIPPED_LAYER))) return false;
    return !d.spec.snapshot || existsSync(join(dir, SHIPPED_SNAPSHOT, 'memory', 'inventory.img'));
  } catch {
    return false;
  }
}

/** A temporary server of its own (data directory, key, address corner) that builds templates. */
class BuildServer {
  private constructor(
    private readonly server: RunningServer,
    private readonly dataDir: string,
    private readonly o: BuildShippedOptions,
  ) {}

  static async start(o: BuildShippedOptions): Promise<BuildServer> {
    // Short: machines' agent sockets live below it (a Unix socket path holds 107 bytes).
    const dataDir = mkdtempSync('/tmp/nsb-');
    const server = await startServer({
      dataDir,
      templatesDir: o.templatesDir,
      host: '127.0.0.1',
      port: 0,
      apiKey: randomBytes(16).toString('hex'),
      uplinks: [],
      dnsServers: [],
      machineNetwork: BUILD_MACHINE_NETWORK,
      packagesOffline: o.packagesOffline ?? false,
      logLevel: 'warn',
    });
    return new BuildServer(server, dataDir, o);
  }

  async build(d: Declaration, baseRecipe: string): Promise<void> {
    const target = join(this.o.templatesDir, d.name);
    await refuseWhileInUse(target, d.name);
    this.o.say(`building template ${d.name}`);
    const started = Date.now();
    // 1. The layer: the ordinary template build, without its snapshot.
    const built = await this.buildLayer({ ...d.body, snapshot: false });
    const staging = join(this.o.templatesDir, `.${d.name}.build.${process.pid}`);
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true });
    // cp -a keeps owners, modes, whiteouts (0/0 character devices) and opaque-dir xattrs.
    await host(
      'cp',
      ['-a', join(this.dataDir, 'template-builds', built.id, 'layer'), join(staging, SHIPPED_LAYER)],
      {
        timeoutMs: 600_000,
      },
    );
    const file: ShippedTemplateFile = {
      name: d.name,
      purpose: d.purpose,
      packages: d.spec.packages,
      env: d.spec.env,
      workdir: d.spec.workdir,
      start_cmd: d.spec.start_cmd,
      ready_check: d.spec.ready_check,
      disk_mb: d.spec.disk_mb,
      vcpus: d.spec.vcpus,
      memory_mb: d.spec.memory_mb,
      base_recipe: baseRecipe,
      // Written once everything is in place: an interrupted build is built again.
      recipe: null,
      built_at: new Date().toISOString(),
      size_bytes: built.size,
      snapshot: null,
    };
    await writeJson(join(staging, SHIPPED_FILE), file);
    await replaceDir(staging, target);
    await this.api('DELETE', `/v1/templates/${encodeURIComponent(`${d.body.name as string}:latest`)}`);
    // 2. Snapshot-backed: a machine of it with its start command ready, kept as its ready snapshot.
    if (d.spec.snapshot) file.snapshot = await this.readySnapshot(d, target);
    await writeJson(join(target, SHIPPED_FILE), { ...file, recipe: d.recipe });
    this.o.say(`template ${d.name} built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }

  /** Builds `body` and follows it to its end; its build id and layer size. */
  private async buildLayer(body: Record<string, unknown>): Promise<{ id: string; size: number }> {
    const started = (await this.api('POST', '/v1/templates', body)) as TemplateBuildStarted;
    const tail: string[] = [];
    const res = await this.request('GET', `/v1/templates/${started.build_id}/logs?follow=true`);
    let buffer = '';
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      buffer += Buffer.from(chunk).toString('utf8');
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (!line.trim()) continue;
        const e = JSON.parse(line) as TemplateBuildEvent;
        if (e.type === 'step') this.o.say(`  [${e.step}/${e.total}] ${e.name}`);
        else if (e.type === 'log') {
          // What the build printed is shown only when it fails: its last lines.
          tail.push(e.line);
          if (tail.length > 30) tail.shift();
        } else if (e.type === 'error')
          throw new Error(`${e.error.code}: ${e.error.message}\n  ${tail.join('\n  ')}`);
        else return { id: e.template.id, size: e.template.size_bytes };
      }
    }
    if (started.cached) return { id: started.template.id, size: started.template.size_bytes };
    throw new Error(`the build of ${String(body.name)} ended without a result`);
  }

  /** Starts a machine of the freshly installed template, snapshots it, keeps the snapshot. */
  private async readySnapshot(d: Declaration, target: string): Promise<ShippedTemplateFile['snapshot']> {
    this.o.say('  starting a machine of it for its ready snapshot');
    const m = (await this.api('POST', '/v1/machines', { template: d.name, timeout: 3600 })) as MachineInfo;
    try {
      const snap = (await this.api('POST', `/v1/machines/${m.id}/snapshots`)) as SnapshotInfo;
      const partial = join(target, `${SHIPPED_SNAPSHOT}.partial`);
      await rm(partial, { recursive: true, force: true });
      await host('cp', ['-a', join(this.dataDir, 'snapshots', snap.id), partial], { timeoutMs: 600_000 });
      await rename(partial, join(target, SHIPPED_SNAPSHOT));
      await this.api('DELETE', `/v1/snapshots/${snap.id}`);
      this.o.say(
        `  ready snapshot of ${(snap.size_bytes / 1024 / 1024).toFixed(0)} MiB (frozen ${snap.paused_ms} ms)`,
      );
      return {
        vcpus: m.vcpus,
        memory_mb: m.memory_mb,
        disk_mb: m.disk_mb,
        cwd: m.cwd,
        envs: d.spec.env,
        size_bytes: snap.size_bytes,
        paused_ms: snap.paused_ms,
      };
    } finally {
      await this.api('DELETE', `/v1/machines/${m.id}`);
    }
  }

  /** Stops the server and removes its data directory once nothing of its machines is left. */
  async close(): Promise<void> {
    const page = (await this.api('GET', '/v1/machines?limit=1000')) as { items: MachineInfo[] };
    for (const m of page.items) await this.api('DELETE', `/v1/machines/${m.id}`).catch(() => undefined);
    await this.server.close();
    const mounts = await mountsUnder(this.dataDir);
    if (mounts.length > 0)
      throw new Error(`the build server left mounts under ${this.dataDir}: ${mounts.join(', ')}`);
    await rm(this.dataDir, { recursive: true, force: true });
  }

  private async request(method: string, path: string, body?: unknown): Promise<Response> {
    const res = await fetch(this.server.url + path, {
      method,
      headers: {
        authorization: `Bearer ${this.server.apiKey}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!res.ok) {
      const text = await res.text();
      throw new Error(`${method} ${path}: ${res.status} ${text}`);
    }
    return res;
  }

  private async api(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await this.request(method, path, body);
    const text = await res.text();
    return text ? (JSON.parse(text) as unknown) : undefined;
  }
}

/**
 * A running machine has the template's layer as a lower layer of its overlay: replacing it would
 * pull its files from under it. Refused instead (hibernated machines and snapshots are not mounted).
 */
async function refuseWhileInUse(target: string, name: string): Promise<void> {
  const layer = join(target, SHIPPED_LAYER);
  if (!existsSync(layer)) return;
  const mounts = await readFile('/proc/mounts', 'utf8');
  const users = mounts.split('\n').filter((l) => l.includes(`lowerdir=${layer}`)).length;
  if (users > 0)
    throw new Error(
      `template ${name} needs a rebuild, but ${users} running machine(s) use it; stop them and run this again`,
    );
}

/** Puts `staging` in `target`'s place (the old one is removed). */
async function replaceDir(staging: string, target: string): Promise<void> {
  const old = `${target}.old.${process.pid}`;
  if (existsSync(target)) await rename(target, old);
  await rename(staging, target);
  await rm(old, { recursive: true, force: true });
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(`${file}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
  await rename(`${file}.tmp`, file);
}
