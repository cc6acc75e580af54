/**
 * Screenshots without an image library: `xwd -root` dumps the X server's framebuffer (a few
 * milliseconds), and this file reads that dump and writes a PNG (zlib, fast level) of the screen
 * or a region of it.
 */
import { crc32, deflateSync } from 'node:zlib';
import { CodedError, type Region } from '@nullspace/protocol/core';

/** Buffers reused by every screenshot (see Scratch in x-tools.ts): the pixels, and PNG's rows. */
const reuse = { rgb: Buffer.alloc(0), raw: Buffer.alloc(0) };
function scratch(key: keyof typeof reuse, size: number): Buffer {
  if (reuse[key].length < size) reuse[key] = Buffer.allocUnsafeSlow(size);
  return reuse[key].subarray(0, size);
}

export interface Pixels {
  width: number;
  height: number;
  /** RGB, 3 bytes a pixel, rows top to bottom. */
  rgb: Buffer;
}

/**
 * Reads an XWD dump (ZPixmap, 24 or 32 bits a pixel, any byte order and masks). The pixels are in a
 * buffer the next screenshot reuses: encode them before awaiting anything.
 */
export function readXwd(buf: Buffer): Pixels {
  if (buf.length < 100) throw new CodedError('internal', 'xwd: short output');
  const u32 = (i: number) => buf.readUInt32BE(i * 4);
  const headerSize = u32(0);
  const version = u32(1);
  const format = u32(2);
  const width = u32(4);
  const height = u32(5);
  const byteOrder = u32(7);
  const bpp = u32(11);
  const bytesPerLine = u32(12);
  const masks = [u32(14), u32(15), u32(16)];
  const ncolors = u32(19);
  if (version !== 7 || format !== 2 || (bpp !== 32 && bpp !== 24))
    throw new CodedError(
      'internal',
      `xwd: unsupported dump (version ${version}, format ${format}, ${bpp} bpp)`,
    );
  const data = headerSize + ncolors * 12;
  if (buf.length < data + bytesPerLine * height) throw new CodedError('internal', 'xwd: truncated output');
  const shift = masks.map((m) => (m === 0 ? 0 : 31 - Math.clz32(m & -m)));
  const rgb = scratch('rgb', width * height * 3);
  const step = bpp / 8;
  // The common case (little-endian, 0xff0000/0xff00/0xff): bytes B G R X, read directly.
  const fast = byteOrder === 0 && masks[0] === 0xff0000 && masks[1] === 0xff00 && masks[2] === 0xff;
  let o = 0;
  for (let y = 0; y < height; y++) {
    let p = data + y * bytesPerLine;
    for (let x = 0; x < width; x++, p += step) {
      if (fast) {
        rgb[o++] = buf[p + 2] as number;
        rgb[o++] = buf[p + 1] as number;
        rgb[o++] = buf[p] as number;
        continue;
      }
      let v = 0;
      for (let b = 0; b < step; b++)
        v = byteOrder === 0 ? v | ((buf[p + b] as number) << (8 * b)) : (v << 8) | (buf[p + b] as number);
      v >>>= 0;
      for (let c = 0; c < 3; c++)
        rgb[o++] = (((v & (masks[c] as number)) >>> (shift[c] as number)) & 0xff) >>> 0;
    }
  }
  return { width, height, rgb };
}

/** A region of an image (already checked to lie inside it). */
export function crop(p: Pixels, r: Region): Pixels {
  if (r.x === 0 && r.y === 0 && r.width === p.width && r.height === p.height) return p;
  const rgb = Buffer.allocUnsafe(r.width * r.height * 3);
  for (let y = 0; y < r.height; y++) {
    const from = ((r.y + y) * p.width + r.x) * 3;
    p.rgb.copy(rgb, y * r.width * 3, from, from + r.width * 3);
  }
  return { width: r.width, height: r.height, rgb };
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(data, crc32(head.subarray(4))) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** An 8-bit RGB PNG: rows with the "Up" filter (desktops are mostly flat), deflated fast. */
export function encodePng(p: Pixels): Buffer {
  const row = p.width * 3;
  const raw = scratch('raw', (row + 1) * p.height);
  for (let y = 0; y < p.height; y++) {
    const at = y * (row + 1);
    const src = y * row;
    if (y === 0) {
      raw[at] = 0;
      p.rgb.copy(raw, at + 1, src, src + row);
      continue;
    }
    raw[at] = 2;
    for (let i = 0; i < row; i++)
      raw[at + 1 + i] = ((p.rgb[src + i] as number) - (p.rgb[src - row + i] as number)) & 0xff;
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(p.width, 0);
  ihdr.writeUInt32BE(p.height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 1 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
