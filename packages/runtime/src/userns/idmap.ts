import { chmod, chown, copyFile, link, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CodedError } from '@nullspace/protocol';
import { type Argv, host } from '../exec.js';
import { MACHINE_FILES } from '../machine-dir.js';
import type { IdRange } from './id-ranges.js';

/** Where scripts/build-native-helpers.sh installs the idmap helper (native/idmap.c). */
export const IDMAP_HELPER_PATH = '/usr/local/libexec/nullspace/idmap';

export function idmapHelper(): string {
  return process.env.NULLSPACE_IDMAP_HELPER || IDMAP_HELPER_PATH;
}

/**
 * The machine's template layers, each as an idmapped mount of its own (`<machineDir>/lower/<n>`):
 * a template's files, owned by 0..65535 on the host, appear owned by the machine's ids, so its root
 * owns /usr, /etc… while the template stays as it is, shared by every machine (overlayfs takes
 * idmapped layers since Linux 5.19). `lowerdir` is the overlay's option (`a:b:c`, topmost first);
 * returns the host commands and the `lowerdir` of the idmapped mounts.
 */
export function lowerLayerSteps(
  machineDir: string,
  lowerdir: string,
  range: IdRange,
): { steps: Argv[]; lowerdir: string } {
  const layers = lowerdir.split(':');
  const targets = layers.map((_, i) => join(machineDir, MACHINE_FILES.lower, String(i)));
  return {
    steps: [
      ['mkdir', '-p', ...targets],
      ...layers.map(
        (layer, i): Argv => [
          idmapHelper(),
          'mount',
          String(range.base),
          String(range.size),
          layer,
          targets[i] as string,
        ],
      ),
    ],
    lowerdir: targets.join(':'),
  };
}

/**
 * Host command that moves the owners of the files under `dir` (a disk's upper directory, a
 * template layer being exported) from one id range to another: host ids are what a machine's
 * files are stored with (an idmapped upper layer cannot be written by the overlay's mounter,
 * host root, whose id is outside every machine's range), so a disk that moves to a machine of
 * another range (a fork child, a machine from a snapshot) is shifted once. `from`/`to` are range
 * bases (0: ids as a template stores them). Never on a tree a running machine can change.
 */
export function shiftStep(dir: string, from: number, to: number, size: number): Argv {
  return [idmapHelper(), 'shift', dir, String(from), String(to), String(size)];
}

/** Fails at start-up, naming why, when this host cannot give machines idmapped template layers. */
export async function checkIdmapSupport(templateDir: string): Promise<void> {
  try {
    await host(idmapHelper(), ['probe', String(2 ** 30), '65536', templateDir]);
  } catch (err) {
    const why = err instanceof CodedError ? String(err.details?.stderr ?? err.message).trim() : String(err);
    throw new CodedError(
      'internal',
      'machines need idmapped mounts (Linux 5.19 or later, a filesystem that supports them) and ' +
        `${idmapHelper()} (scripts/setup.sh builds it): ${why}`,
    );
  }
}

// ---- CRIU images of a machine in a user namespace ------------------------------------------

/**
 * CRIU records the machine's id mapping in its image (`userns-<n>.img`) and restores it as it was.
 * The image's file is a 4-byte magic, the image type's magic, then one length-prefixed protobuf
 * `UsernsEntry { repeated UidGidExtent uid_map = 1; repeated UidGidExtent gid_map = 2; }`,
 * `UidGidExtent { uint32 first = 1; uint32 lower_first = 2; uint32 count = 3; }` (CRIU's
 * images/userns.proto). A machine gets back its own range; another (a fork child, a machine from a
 * snapshot) gets an image naming its range instead: that is the only difference.
 */
const USERNS_IMAGE = /^userns-\d+\.img$/;

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

function readVarint(buf: Buffer, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const b = buf[i] as number;
    value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return [value, i + 1];
  }
  throw new CodedError('internal', 'CRIU userns image: truncated varint');
}

/** The extents of a `UsernsEntry`'s field `field` (1: uid_map, 2: gid_map). */
function extents(entry: Buffer, field: number): { first: number; lowerFirst: number; count: number }[] {
  const out: { first: number; lowerFirst: number; count: number }[] = [];
  let at = 0;
  while (at < entry.length) {
    const [key, afterKey] = readVarint(entry, at);
    if ((key & 7) !== 2) throw new CodedError('internal', 'CRIU userns image: unexpected field');
    const [len, afterLen] = readVarint(entry, afterKey);
    const body = entry.subarray(afterLen, afterLen + len);
    at = afterLen + len;
    if (key >> 3 !== field) continue;
    const ext = { first: 0, lowerFirst: 0, count: 0 };
    let p = 0;
    while (p < body.length) {
      const [k, afterK] = readVarint(body, p);
      const [v, afterV] = readVarint(body, afterK);
      p = afterV;
      if (k >> 3 === 1) ext.first = v;
      else if (k >> 3 === 2) ext.lowerFirst = v;
      else if (k >> 3 === 3) ext.count = v;
    }
    out.push(ext);
  }
  return out;
}

function encodeEntry(range: IdRange): Buffer {
  const extent = Buffer.concat([
    Buffer.from([0x08]),
    varint(0),
    Buffer.from([0x10]),
    varint(range.base),
    Buffer.from([0x18]),
    varint(range.size),
  ]);
  const field = (n: number) => Buffer.concat([Buffer.from([(n << 3) | 2]), varint(extent.length), extent]);
  return Buffer.concat([field(1), field(2)]);
}

async function usernsImage(imageDir: string): Promise<string | undefined> {
  const names = (await readdir(imageDir)).filter((n) => USERNS_IMAGE.test(n));
  if (names.length > 1) throw new CodedError('internal', `${imageDir}: more than one user namespace image`);
  return names[0] && join(imageDir, names[0]);
}

/**
 * The id range of the machine an image was dumped from (its root's host id), or null for an image
 * of a machine without a user namespace (taken before machines had one).
 */
export async function imageIdRange(imageDir: string): Promise<IdRange | null> {
  const file = await usernsImage(imageDir);
  if (file === undefined) return null;
  const buf = await readFile(file);
  const size = buf.readUInt32LE(8);
  const uid = extents(buf.subarray(12, 12 + size), 1);
  const root = uid.find((e) => e.first === 0);
  if (uid.length !== 1 || root === undefined)
    throw new CodedError('internal', `${file}: not a machine's id mapping`);
  return { base: root.lowerFirst, size: root.count };
}

/**
 * Makes `target` the image `source` restored as a machine of `range`: every file hard-linked (a
 * copy where the two are on different filesystems), the userns image written for `range`. The
 * image directory itself is left as it is (a snapshot restored by several machines at once).
 * `target` belongs to the machine's root with group 0, mode 0750: CRIU's restored process opens
 * image files as host root before its mapping is written (the group), and as the machine's root
 * after (the owner). Returns `target`.
 */
export async function imageForRange(source: string, target: string, range: IdRange): Promise<string> {
  await rm(target, { recursive: true, force: true });
  await mkdir(target, { mode: 0o750 });
  const names = await readdir(source);
  await Promise.all(
    names.map(async (name) => {
      if (USERNS_IMAGE.test(name)) return;
      await link(join(source, name), join(target, name)).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EXDEV') throw err;
        await copyFile(join(source, name), join(target, name));
      });
    }),
  );
  const userns = await usernsImage(source);
  if (userns !== undefined) {
    const buf = await readFile(userns);
    const entry = encodeEntry(range);
    const size = Buffer.alloc(4);
    size.writeUInt32LE(entry.length);
    await writeFile(
      join(target, userns.slice(userns.lastIndexOf('/') + 1)),
      Buffer.concat([buf.subarray(0, 8), size, entry]),
    );
  }
  await chown(target, range.base, 0);
  await chmod(target, 0o750);
  return target;
}
