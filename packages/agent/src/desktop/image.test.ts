/** xwd dumps read into RGB, cropped, and written as PNG (no X server needed). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inflateSync } from 'node:zlib';
import { crop, encodePng, readXwd } from './image.js';

/** A 32-bit little-endian ZPixmap dump as `xwd -root` writes it on Xvfb, of w×h pixels from `at`. */
function xwd(w: number, h: number, at: (x: number, y: number) => [number, number, number]): Buffer {
  const name = Buffer.from('xwdump\0\0');
  const header = Buffer.alloc(100);
  const fields = [
    100 + name.length,
    7,
    2,
    24,
    w,
    h,
    0,
    0,
    32,
    0,
    32,
    32,
    w * 4,
    4,
    0xff0000,
    0xff00,
    0xff,
    8,
    0,
    0,
    w,
    h,
    0,
    0,
    0,
  ];
  fields.forEach((v, i) => header.writeUInt32BE(v, i * 4));
  const data = Buffer.alloc(w * h * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const [r, g, b] = at(x, y);
      data.set([b, g, r, 0], (y * w + x) * 4);
    }
  return Buffer.concat([header, name, data]);
}

describe('screenshot images', () => {
  const colour = (x: number, y: number): [number, number, number] => [x * 10, y * 20, 255 - x];
  it('reads an xwd dump into RGB', () => {
    const p = readXwd(xwd(4, 3, colour));
    assert.deepEqual([p.width, p.height], [4, 3]);
    assert.deepEqual([...p.rgb.subarray(0, 3)], [0, 0, 255]);
    assert.deepEqual([...p.rgb.subarray((2 * 4 + 3) * 3, (2 * 4 + 3) * 3 + 3)], [30, 40, 252]);
  });

  it('crops a region and writes a PNG whose rows undo to the pixels', () => {
    const p = crop(readXwd(xwd(5, 4, colour)), { x: 1, y: 1, width: 3, height: 2 });
    const png = encodePng(p);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(png.readUInt32BE(16), 3);
    assert.equal(png.readUInt32BE(20), 2);
    const idatLen = png.readUInt32BE(33);
    const raw = inflateSync(png.subarray(41, 41 + idatLen));
    assert.equal(raw.length, (3 * 3 + 1) * 2);
    // Row 0 is unfiltered; row 1 uses "Up" (filter 2): each byte minus the one above.
    assert.equal(raw[0], 0);
    assert.deepEqual([...raw.subarray(1, 4)], [10, 20, 254]);
    assert.equal(raw[10], 2);
    assert.deepEqual([...raw.subarray(11, 14)], [0, 20, 0]);
  });

  it('refuses a dump it does not understand', () => {
    assert.throws(() => readXwd(Buffer.alloc(10)), /short/);
  });
});
