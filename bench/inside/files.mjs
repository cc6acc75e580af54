/**
 * The inside bench's file series: a 1 MiB write and read back through the SDK, the server's API
 * (fetch, node:http) and the agent alone, beside the same on the host (plain, and the agent's way
 * on the machine's disk).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { mountsUnder } from '@nullspace/runtime';
import { MiB, checkInterrupted, filesystemOf, progress, shuffled } from '../lib.mjs';
import { rawRequest } from './raw-http.mjs';
import { S } from './state.mjs';

const FILE_BYTES = MiB;

/** A fresh 1 MiB body per iteration: random, with the iteration number up front. */
function fileBody(base, i) {
  const b = Buffer.from(base);
  b.writeUInt32BE(i, 0);
  return b;
}

function checkSame(what, got, want) {
  if (!Buffer.from(got).equals(want))
    throw new Error(`${what}: read back ${got.length} bytes that differ from the ${want.length} written`);
}

/** Through the SDK: `files.write(path, data)` then `files.read(path, { format: 'bytes' })`. */
async function fileSdk(machine, path, data) {
  const t0 = performance.now();
  await machine.files.write(path, data);
  const t1 = performance.now();
  const back = await machine.files.read(path, { format: 'bytes' });
  const t2 = performance.now();
  checkSame('SDK files', back, data);
  return { total: t2 - t0, write: t1 - t0, read: t2 - t1 };
}

/** The same as raw HTTP (PUT then GET of the bytes), to the server or to the agent's socket. */
async function fileRaw(target, machineId, path, data) {
  const route =
    target.kind === 'server'
      ? `${target.prefix(machineId)}/files?path=${encodeURIComponent(path)}`
      : `/v1/files?path=${encodeURIComponent(path)}`;
  const t0 = performance.now();
  await rawRequest(target, 'PUT', route, {
    body: data,
    headers: { 'content-type': 'application/octet-stream' },
  });
  const t1 = performance.now();
  const { body } = await rawRequest(target, 'GET', route);
  const t2 = performance.now();
  checkSame(`${target.kind} files`, body, data);
  return { total: t2 - t0, write: t1 - t0, read: t2 - t1 };
}

/** The server's API with fetch (what the SDK's files.write/read send), without the SDK. */
async function fileFetch(machineId, path, data) {
  const url = `${S.server.url}/v1/machines/${machineId}/files?path=${encodeURIComponent(path)}`;
  const auth = { authorization: `Bearer ${S.server.apiKey}` };
  const t0 = performance.now();
  const put = await fetch(url, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/octet-stream' },
    body: data,
  });
  if (!put.ok) throw new Error(`fetch PUT: HTTP ${put.status} ${await put.text()}`);
  await put.json();
  const t1 = performance.now();
  const get = await fetch(url, { headers: auth });
  if (!get.ok) throw new Error(`fetch GET: HTTP ${get.status} ${await get.text()}`);
  const back = new Uint8Array(await get.arrayBuffer());
  const t2 = performance.now();
  checkSame('fetch files', back, data);
  return { total: t2 - t0, write: t1 - t0, read: t2 - t1 };
}

/** Host baseline: fs.promises writeFile + readFile. */
async function fileHost(path, data) {
  const t0 = performance.now();
  await writeFile(path, data);
  const t1 = performance.now();
  const back = await readFile(path);
  const t2 = performance.now();
  checkSame('host files', back, data);
  return { total: t2 - t0, write: t1 - t0, read: t2 - t1 };
}

/**
 * Host, the agent's way: a temp file beside the target, fsync, rename, fsync of the directory,
 * then readFile. In `dir` on the machine's own disk (its filesystem on its loop device), so the
 * difference to the agent's figure is the agent and the hops, not the disk.
 */
async function fileHostAtomic(dir, path, data) {
  const t0 = performance.now();
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const d = await open(dir, 'r');
  await d.sync().catch(() => undefined);
  await d.close();
  const t1 = performance.now();
  const back = await readFile(path);
  const t2 = performance.now();
  checkSame('host atomic files', back, data);
  return { total: t2 - t0, write: t1 - t0, read: t2 - t1 };
}

/** Where the machine's disk is mounted on the host (its upper dir is under it), if it is. */
async function machineDiskMount(machineId) {
  const dir = join(S.dataDir, 'machines', machineId);
  const mounts = await mountsUnder(dir);
  return mounts.find((m) => m.endsWith('/disk')) ?? undefined;
}

/**
 * 2. 1 MiB file round trip: a fresh body per iteration, written and read back on every path that
 * is there, in a random order; `push` keeps the samples, `info` what was not measured and why.
 */
export async function measureFiles({ machine, server, agent, opts, push, info }) {
  const base = randomBytes(FILE_BYTES);
  const hostDir = join(S.tmp, 'host-files');
  await mkdir(hostDir, { recursive: true });
  const diskMount = await machineDiskMount(machine.id);
  const diskDir = diskMount ? join(diskMount, `nsbench-host-files-${process.pid}`) : undefined;
  if (diskDir) await mkdir(diskDir, { recursive: true });
  info.diskFs = diskMount ? await filesystemOf(diskMount) : undefined;
  const hasFiles = typeof machine.files?.write === 'function' && typeof machine.files?.read === 'function';
  info.filesSdk = hasFiles;
  const filesPath = '/workspace/nsbench-1mib.bin';
  const probe = async (fn) => {
    try {
      await fn();
      return undefined;
    } catch (err) {
      return err.message.slice(0, 160);
    }
  };
  info.filesServer = await probe(() => fileRaw(server, machine.id, filesPath, fileBody(base, 0)));
  info.filesAgent = await probe(() => fileRaw(agent, machine.id, filesPath, fileBody(base, 0)));
  info.filesSdkError = hasFiles
    ? await probe(() => fileSdk(machine, filesPath, fileBody(base, 0)))
    : undefined;
  progress(
    `1 MiB file write + read × ${opts.fileIterations} (+${opts.warmup}) through the SDK, the server ` +
      '(fetch, node:http), the agent alone, and on the host',
  );
  const filePaths = [
    ...(hasFiles && !info.filesSdkError ? [['fileSdk', (d) => fileSdk(machine, filesPath, d)]] : []),
    ...(info.filesServer
      ? []
      : [
          ['fileFetch', (d) => fileFetch(machine.id, filesPath, d)],
          ['fileServer', (d) => fileRaw(server, machine.id, filesPath, d)],
        ]),
    ...(info.filesAgent ? [] : [['fileAgent', (d) => fileRaw(agent, machine.id, filesPath, d)]]),
    ['fileHost', (d) => fileHost(join(hostDir, 'f.bin'), d)],
    ...(diskDir ? [['fileHostAtomic', (d) => fileHostAtomic(diskDir, join(diskDir, 'f.bin'), d)]] : []),
  ];
  for (let i = -opts.warmup; i < opts.fileIterations; i++) {
    if (i % 20 === 0) checkInterrupted();
    const data = fileBody(base, i + opts.warmup);
    for (const [key, run] of shuffled(filePaths)) {
      const t = await run(data);
      if (i < 0) continue;
      push(key, t.total);
      push(`${key}Write`, t.write);
      push(`${key}Read`, t.read);
    }
  }
  if (diskDir) await rm(diskDir, { recursive: true, force: true });
}
