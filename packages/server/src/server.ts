import { chmodSync, mkdirSync } from 'node:fs';
import type http from 'node:http';
import { join } from 'node:path';
import { agentBundleDir } from '@nullspace/agent';
import { KEPT_STATES, ROUTES, type RouteId } from '@nullspace/protocol';
import {
  type MachineDriver,
  RuncDriver,
  enableUplinkForwarding,
  guardMachineNetwork,
  parsePool,
} from '@nullspace/runtime';
import { loadOrCreateApiKey } from './api-key.js';
import { type ServerConfig, configFromEnv } from './config.js';
import { EventLog, purgeEveryMs } from './events/event-log.js';
import { createApiServer, listen } from './http/api-server.js';
import { addCodeRoutes } from './http/code-routes.js';
import { addCommandRoutes, processSockets } from './http/command-routes.js';
import { Desktops, addDesktopRoutes } from './http/desktop-routes.js';
import { LifecycleSockets, addEventRoutes } from './http/event-routes.js';
import { addFileRoutes } from './http/file-routes.js';
import { addKeyRoutes } from './http/key-routes.js';
import { addMachineRoutes } from './http/machine-routes.js';
import { addMetricsRoutes } from './http/metrics-routes.js';
import { PreviewProxy } from './http/preview-proxy.js';
import { addPreviewRoutes } from './http/preview-routes.js';
import { Router } from './http/router.js';
import { addServerRoutes } from './http/server-routes.js';
import { addSnapshotRoutes } from './http/snapshot-routes.js';
import { addSshRoutes } from './http/ssh-routes.js';
import { addTemplateRoutes } from './http/template-routes.js';
import { addVolumeRoutes } from './http/volume-routes.js';
import { Logger } from './log.js';
import { DnsForwarder, hostResolvers } from './net/dns-forwarder.js';
import { MachineRecords } from './services/machines/machine-records.js';
import { MachineService } from './services/machines/machine-service.js';
import { CreateLatency, MetricsService } from './services/metrics-service.js';
import { PreviewService } from './services/preview-service.js';
import { SshAccessService } from './services/ssh-access.js';
import { SshCa } from './services/ssh-ca.js';
import { TemplateCatalog } from './services/template-catalog.js';
import { TemplateService } from './services/template-service.js';
import { VolumeService } from './services/volume-service.js';
import { WarmPoolService } from './services/warm-pool-service.js';
import { MachineStore } from './store/machine-store.js';
import { PreviewGrantStore } from './store/preview-grant-store.js';
import { SecretStore } from './store/secret-store.js';
import { SnapshotStore } from './store/snapshot-store.js';
import { TemplateStore } from './store/template-store.js';
import { VolumeStore } from './store/volume-store.js';
import { ensureBaseTemplate } from './templates/base-template.js';
import { PackageCache, debianMirror } from './templates/package-cache.js';
import { ApiKeys } from './tenancy/keys.js';
import { Ownership, ownedParams } from './tenancy/ownership.js';
import { TenantQuotas } from './tenancy/quotas.js';

export interface RunningServer {
  url: string;
  port: number;
  apiKey: string;
  config: ServerConfig;
  machines: MachineService;
  driver: MachineDriver;
  /** Stops serving. Machines keep running; the next start re-adopts them. */
  close(): Promise<void>;
}

/**
 * Starts the server: opens the data directory and database, checks the runtime, re-adopts what is
 * still running from an earlier start, then listens.
 */
export async function startServer(overrides: Partial<ServerConfig> = {}): Promise<RunningServer> {
  const config = configFromEnv(overrides);
  const log = new Logger(config.logLevel);
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  // The data directory holds the API key, machines' env values and their disks: root only, also
  // when set-up (or an older version) created it with looser permissions.
  chmodSync(config.dataDir, 0o700);
  const { key: apiKey, generated } = loadOrCreateApiKey(config.dataDir, config.apiKey);
  if (!process.env.NULLSPACE_TEMPLATES_DIR && config.templatesDir !== join(config.dataDir, 'templates'))
    log.info("templates come from the set-up's directory (NULLSPACE_TEMPLATES_DIR unset)", {
      templates_dir: config.templatesDir,
    });
  await ensureBaseTemplate(config.templatesDir, log);

  const driver = new RuncDriver({
    machinesDir: join(config.dataDir, 'machines'),
    runcRoot: join(config.dataDir, 'runc'),
    agentHomeDir: agentBundleDir(),
  });
  await driver.init();
  // `unavailable`: every checkpoint and restore probes the kernel again (60–110 ms each).
  if (driver.kdatCache === 'unavailable')
    log.warn("CRIU's kernel feature cache could not be made: each CRIU run probes the kernel", {
      kdat: '/run/criu.kdat',
    });
  const uplinks = await enableUplinkForwarding(config.uplinks);
  await guardMachineNetwork(parsePool(config.machineNetwork).cidr);
  const store = new MachineStore(join(config.dataDir, 'nullspace.db'));
  const events = new EventLog(store.database, config.eventsRetentionS * 1000);
  // Machines' name service, up before machines are re-adopted (their rules name its port).
  const resolvers = config.dnsServers === 'host' ? hostResolvers() : config.dnsServers;
  const dns = new DnsForwarder({ upstreams: resolvers, log });
  const dnsPort = resolvers.length > 0 ? await dns.start() : undefined;
  if (dnsPort === undefined) log.warn('no DNS resolvers: machines get no name service');
  const records = new MachineRecords(store, events);
  const templateStore = new TemplateStore(store.database);
  const catalog = new TemplateCatalog({
    store: templateStore,
    templatesDir: config.templatesDir,
    buildsDir: join(config.dataDir, 'template-builds'),
  });
  // Volumes are mounted on the host before machines are re-adopted (their mounts are cloned from them).
  const volumeStore = new VolumeStore(store.database);
  const volumes = new VolumeService({
    store: volumeStore,
    volumesDir: join(config.dataDir, 'volumes'),
    driver,
    machines: records,
    log,
  });
  await volumes.init();
  const createLatency = new CreateLatency();
  const machines = new MachineService({
    records,
    driver,
    templates: catalog,
    maxMachines: config.maxMachines,
    networkPoolSize: config.networkPoolSize,
    pauseSpillAfterMs: config.pauseSpillAfterS * 1000,
    snapshotsDir: config.snapshotsDir,
    transitionTimeoutMs: config.transitionTimeoutMs,
    addressPool: parsePool(config.machineNetwork),
    machinesDir: join(config.dataDir, 'machines'),
    ...(dnsPort !== undefined ? { dnsPort } : {}),
    onCreated: (ms) => createLatency.observe(ms),
    volumes,
    quotas: new TenantQuotas(config.tenantQuotas),
    log,
  });
  await machines.readopt();
  const templates = new TemplateService({
    catalog,
    machines,
    packages: new PackageCache(config.packageCacheDir, () => debianMirror(log), config.packagesOffline),
    log,
  });
  await templates.recover();
  const pools = new WarmPoolService({
    templates: templateStore,
    resolver: catalog,
    machines,
    machineStore: store,
    log,
  });
  pools.start();
  const metrics = new MetricsService({
    store,
    driver,
    intervalMs: config.metricsIntervalMs,
    createLatency,
    pools,
    teardowns: { stats: () => machines.teardownStats() },
    log,
  });

  // Every route's path ids are classified for the tenants' check, or the server does not start.
  for (const id of Object.keys(ROUTES) as RouteId[]) ownedParams(id);
  const keys = new ApiKeys(store.database, apiKey);
  const ownership = new Ownership({
    machines: store,
    snapshots: new SnapshotStore(store.database),
    volumes: volumeStore,
    templateOwner: (ref) => catalog.ownerOf(ref),
    poolOwner: (id) => pools.tenantOf(id),
  });
  const router = new Router();
  const desktops = new Desktops({ machines, templates: catalog, previews: () => previews, log });
  addMachineRoutes(router, machines, pools, desktops, ownership);
  addSnapshotRoutes(router, machines);
  addVolumeRoutes(router, volumes);
  addTemplateRoutes(
    router,
    templates,
    pools,
    (templateId) => [
      ...store
        .listInStates(KEPT_STATES)
        .filter((m) => m.template_id === templateId)
        .map((m) => (m.warm_pool_id ? `a machine of warm pool ${m.warm_pool_id}` : `machine ${m.id}`)),
      ...pools.usersOf(templateId),
    ],
    ownership,
  );
  addCommandRoutes(router, machines);
  addCodeRoutes(router, machines);
  const commandSockets = processSockets(machines, log);
  const eventPolls = addEventRoutes(router, machines, events);
  const lifecycleSockets = new LifecycleSockets(machines, events, log);
  const files = addFileRoutes(router, machines, { secrets: new SecretStore(store.database), log });
  // The preview domain's default names the port, known only once listening.
  let previewDomain = config.previewDomain ?? '';
  const grants = new PreviewGrantStore(store.database);
  grants.prune(Date.now());
  // Every get_host_info call makes a grant: expired ones go a day after their expiry, hourly.
  const pruneGrants = setInterval(() => grants.prune(Date.now()), 3600_000);
  pruneGrants.unref();
  // Killed machines are kept for as long as their events (NULLSPACE_EVENTS_RETENTION), then go.
  const retentionMs = config.eventsRetentionS * 1000;
  const pruneKilled = () => {
    const n = store.purgeKilledBefore(Date.now() - retentionMs);
    if (n > 0) log.debug('killed machines past retention removed', { count: n });
  };
  pruneKilled();
  const pruneKilledTimer = setInterval(pruneKilled, purgeEveryMs(retentionMs));
  pruneKilledTimer.unref();
  const previews = new PreviewService({
    machines,
    grants,
    domain: () => previewDomain,
    scheme: config.previewScheme,
    log,
  });
  addPreviewRoutes(router, previews);
  addDesktopRoutes(router, machines, desktops);
  addMetricsRoutes(router, metrics);
  metrics.start();
  const ca = new SshCa(config.dataDir);
  await ca.init();
  const ssh = new SshAccessService({
    machines,
    db: store.database,
    ca,
    bindHost: config.sshHost ?? config.host,
    ...(config.sshPublicHost ? { publicHost: config.sshPublicHost } : {}),
    ...(config.sshPorts ? { ports: config.sshPorts } : {}),
    wakeTimeoutMs: config.previewWakeTimeoutMs,
    log,
  });
  addSshRoutes(router, ssh);
  addServerRoutes(router);
  addKeyRoutes(router, keys);
  // Every route of the table has its handler, or the server does not start.
  const unhandled = router.missing();
  if (unhandled.length > 0) throw new Error(`routes without a handler: ${unhandled.join(', ')}`);
  await ssh.reopen();
  const previewProxy = new PreviewProxy({
    previews,
    machines,
    domain: () => previewDomain,
    scheme: config.previewScheme,
    wakeTimeoutMs: config.previewWakeTimeoutMs,
    log,
  });
  const server: http.Server = createApiServer({
    router,
    keys,
    ownership,
    log,
    upgrades: [lifecycleSockets, commandSockets, files.sockets],
    preview: previewProxy,
  });
  const address = await listen(server, config.host, config.port);
  if (!previewDomain) previewDomain = `preview.localhost:${address.port}`;
  const url = `http://${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`;
  log.info('nullspace server listening', {
    url,
    data_dir: config.dataDir,
    driver: driver.name,
    machine_network: config.machineNetwork,
    uplinks,
    preview_domain: previewDomain,
  });
  if (generated)
    log.info('generated an API key (kept in the data directory)', {
      api_key_file: join(config.dataDir, 'api-key'),
    });

  return {
    url,
    port: address.port,
    apiKey,
    config,
    machines,
    driver,
    async close() {
      // Stop accepting, let requests in flight finish for a moment, then drop what is left
      // (a long foreground command's client sees its connection close; the command keeps running).
      lifecycleSockets.close();
      commandSockets.close();
      files.close();
      eventPolls.close();
      await ssh.close();
      await dns.close();
      metrics.stop();
      pools.close();
      clearInterval(pruneGrants);
      clearInterval(pruneKilledTimer);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = setTimeout(() => server.closeAllConnections(), 5_000);
      await closed;
      clearTimeout(grace);
      await machines.close();
      events.close();
      store.close();
      log.info('nullspace server stopped; machines keep running');
    },
  };
}

/** `nullspace serve`: start with the environment's configuration and stop cleanly on a signal. */
export async function runServe(): Promise<void> {
  let running: RunningServer;
  try {
    running = await startServer();
  } catch (err) {
    // What start-up had already opened (the DNS forwarder's sockets ...) would keep a server that
    // never listens alive, and its caller waiting: say why, and end.
    process.stderr.write(`nullspace: the server could not start: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  }
  process.stdout.write(
    `\nNullspace is listening on ${running.url}\n` +
      `  export NULLSPACE_API_URL=${running.url}\n` +
      `  export NULLSPACE_API_KEY=${running.apiKey}\n\n`,
  );
  // A closed stdout (the terminal or the pipe of whoever started the server went away) must not
  // end the server on its next line of log: an EPIPE there killed it before its close on SIGTERM,
  // and what it had made ahead (networks) stayed behind as after a crash.
  process.stdout.on('error', () => undefined);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.stdout.write(`received ${signal}, stopping (machines keep running)\n`);
      running.close().then(resolve, resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  // Everything is closed; do not let a stray handle keep a stopped server alive.
  process.exit(0);
}
