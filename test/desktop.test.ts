/**
 * The desktop (issue 18), end to end on a real X server in real machines of the shipped `desktop`
 * template: sizes, real pixels (decoded PNGs), the pointer, typing into a program's stdin through
 * an xterm (non-ASCII too), the X primary selection from a double click, an xmessage button's
 * exit code from a click, the clipboard both ways, windows, the viewer (RFB over the preview
 * proxy, view-only ignoring a click, the page in a real Chromium showing the desktop),
 * recordings (ffprobe), hibernate → connect and fork with windows and pixels kept, and the 400s.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { LookupFunction } from 'node:net';
import { join } from 'node:path';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import {
  DesktopUnavailableError,
  InvalidArgumentError,
  Machine,
  type NullspaceError,
  Template,
  redactPreviewUrl,
} from '@nullspace/sdk';
import WebSocket from 'ws';
import { TEMPLATES_DIR, cli, describeWithServer, eventually } from './harness.js';
import { decodePng, pixel } from './png.js';

const exec = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
const noTemplate = existsSync(join(TEMPLATES_DIR, 'desktop', 'template.json'))
  ? undefined
  : `the desktop template is not built in ${TEMPLATES_DIR} (scripts/setup.sh builds it)`;
if (noTemplate && process.env.CI) throw new Error(noTemplate);

async function rejects(p: Promise<unknown>): Promise<NullspaceError> {
  try {
    await p;
  } catch (err) {
    return err as NullspaceError;
  }
  assert.fail('expected a rejection');
}

/** A window's absolute position (its client area), from xwininfo in the machine. */
async function origin(
  m: Machine,
  id: number,
): Promise<{ x: number; y: number; width: number; height: number }> {
  // Once the window manager placed it (a window just mapped is 1x1 at 0,0 for a moment).
  return eventually(async () => {
    const r = await m.commands.run(`xwininfo -id ${id}`);
    const num = (label: string) => Number(new RegExp(`${label}:\\s+(-?\\d+)`).exec(r.stdout)?.[1]);
    const g = {
      x: num('Absolute upper-left X'),
      y: num('Absolute upper-left Y'),
      width: num('Width'),
      height: num('Height'),
    };
    return g.width > 1 && g.y > 0 && g;
  }, `window ${id} placed`);
}

async function windowOf(m: Machine, app: string, title?: string) {
  return eventually(async () => {
    const ws = await m.desktop.listWindows();
    return ws.find((w) => w.app === app && (title === undefined || w.title === title));
  }, `a window of ${app}`);
}

/** The button of an xmessage (its lowest child window), in screen coordinates. */
async function xmessageButton(m: Machine, id: number): Promise<{ x: number; y: number }> {
  const r = await m.commands.run(`xwininfo -tree -id ${id}`);
  let best: { x: number; y: number; w: number; h: number } | undefined;
  for (const line of r.stdout.split('\n')) {
    const g = /(\d+)x(\d+)\+-?\d+\+-?\d+\s+\+(-?\d+)\+(-?\d+)\s*$/.exec(line);
    if (!g) continue;
    const [w, h, x, y] = [Number(g[1]), Number(g[2]), Number(g[3]), Number(g[4])];
    if (w > 20 && h > 10 && (!best || y > best.y)) best = { x, y, w, h };
  }
  assert.ok(best, `no button in ${r.stdout}`);
  return { x: best.x + Math.floor(best.w / 2), y: best.y + Math.floor(best.h / 2) };
}

/** An HTTP GET of a preview URL through the server's port on 127.0.0.1 (Host from the URL). */
function previewGet(
  url: string,
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port: u.port, path: u.pathname + u.search, headers: { host: u.host } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`no complete answer in 30 s: GET ${url}`)));
    req.on('error', reject);
  });
}

const toLoopback: LookupFunction = (_host, opts, cb) => {
  if ((opts as { all?: boolean }).all)
    (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [
      { address: '127.0.0.1', family: 4 },
    ]);
  else cb(null, '127.0.0.1', 4);
};

/** A minimal RFB client over the viewer's WebSocket: handshake, then pointer events. */
class Rfb {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  /** Why the socket ended, once it has: a read then fails with it instead of waiting forever. */
  private ended: string | undefined;
  private received = 0;
  version = '';
  width = 0;
  height = 0;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      this.received += d.length;
      this.buf = Buffer.concat([this.buf, d]);
      for (const w of this.waiters.splice(0)) w();
    });
    const end = (why: string) => {
      this.ended ??= why;
      for (const w of this.waiters.splice(0)) w();
    };
    ws.on('close', (code: number, reason: Buffer) => end(`closed (${code} ${reason.toString()})`));
    ws.on('error', (err: Error) => end(`failed: ${err.message}`));
  }

  static async open(pageUrl: string): Promise<Rfb> {
    const u = new URL(pageUrl);
    const wsUrl = `ws://${u.host}/websockify${u.search}`;
    const ws = new WebSocket(wsUrl, ['binary'], { lookup: toLoopback, handshakeTimeout: 15_000 });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`the viewer's WebSocket was refused: ${res.statusCode}`)),
      );
    });
    const rfb = new Rfb(ws);
    rfb.version = (await rfb.read(12)).toString('latin1');
    ws.send(Buffer.from('RFB 003.008\n', 'latin1'));
    const n = (await rfb.read(1))[0] as number;
    const types = [...(await rfb.read(n))];
    assert.ok(types.includes(1), `security types ${types}`);
    ws.send(Buffer.from([1]));
    assert.equal((await rfb.read(4)).readUInt32BE(0), 0, 'security result');
    ws.send(Buffer.from([1])); // ClientInit: shared
    const init = await rfb.read(24);
    rfb.width = init.readUInt16BE(0);
    rfb.height = init.readUInt16BE(2);
    await rfb.read(init.readUInt32BE(20));
    return rfb;
  }

  private async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.ended !== undefined)
        throw new Error(`the VNC WebSocket ${this.ended} after ${this.received} bytes, wanting ${n} more`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  pointer(x: number, y: number, mask: number): void {
    const m = Buffer.alloc(6);
    m[0] = 5;
    m[1] = mask;
    m.writeUInt16BE(x, 2);
    m.writeUInt16BE(y, 4);
    this.ws.send(m);
  }

  async click(x: number, y: number): Promise<void> {
    this.pointer(x, y, 0);
    await sleep(50);
    this.pointer(x, y, 1);
    await sleep(50);
    this.pointer(x, y, 0);
  }

  close(): void {
    this.ws.close();
  }
}

describeWithServer('desktop', (ctx) => {
  let m: Machine;
  const make = (opts: Parameters<typeof Machine.create>[0] = {}) =>
    Machine.create({ template: 'desktop', ...opts, ...ctx.server.conn });

  it(
    'creates a desktop machine with the size asked for; a template without one is refused',
    { skip: noTemplate },
    async () => {
      m = await make({ desktop: { width: 800, height: 600 } });
      assert.deepEqual(await m.desktop.getScreenSize(), { width: 800, height: 600, dpi: 96 });
      const display = await m.commands.run(
        'echo "$DISPLAY"; ls /tmp/.X11-unix 2>&1; grep -c "@/tmp/.X11-unix/X0" /proc/net/unix',
      );
      const [env, ls, abstract] = display.stdout.trim().split('\n');
      assert.equal(env, ':0', 'DISPLAY of every command');
      assert.match(ls ?? '', /No such file|^$/, 'no path socket for the display');
      assert.ok(Number(abstract) >= 1, 'the display listens on its abstract socket');
      const err = await rejects(Machine.create({ template: 'base', desktop: true, ...ctx.server.conn }));
      assert.ok(err instanceof DesktopUnavailableError);
      assert.equal(err.code, 'desktop_unavailable');
      assert.equal(err.status, 400);
    },
  );

  it(
    'screenshots show real pixels: xsetroot red is red, a region is its size, JPEG is JPEG',
    { skip: noTemplate },
    async () => {
      const set = await m.commands.run("xsetroot -solid '#ff0000'");
      assert.equal(set.exitCode, 0, set.stderr);
      const img = decodePng(await m.desktop.screenshot());
      assert.equal(img.width, 800);
      assert.equal(img.height, 600);
      assert.deepEqual(pixel(img, 400, 300), [255, 0, 0]);
      assert.deepEqual(pixel(img, 799, 599), [255, 0, 0]);
      const part = decodePng(await m.desktop.screenshot({ region: { x: 10, y: 20, width: 30, height: 40 } }));
      assert.deepEqual([part.width, part.height], [30, 40]);
      assert.deepEqual(pixel(part, 29, 39), [255, 0, 0]);
      const jpeg = await m.desktop.screenshot({ format: 'jpeg' });
      assert.deepEqual([...jpeg.subarray(0, 3)], [0xff, 0xd8, 0xff]);
    },
  );

  it('the cursor lands where it is moved', { skip: noTemplate }, async () => {
    await m.desktop.moveMouse(123, 456);
    assert.deepEqual(await m.desktop.getCursorPosition(), { x: 123, y: 456 });
    await m.desktop.leftClick(10, 20);
    assert.deepEqual(await m.desktop.getCursorPosition(), { x: 10, y: 20 });
  });

  it(
    'typing into a focused xterm reaches a program reading its stdin, non-ASCII included',
    { skip: noTemplate },
    async () => {
      await m.desktop.launch('xterm', [
        '-title',
        'typing',
        '-geometry',
        '60x5+40+40',
        '-e',
        'bash',
        '-c',
        'read -r a; read -r b; printf "%s\\n%s" "$a" "$b" > /tmp/typed.tmp; mv /tmp/typed.tmp /tmp/typed.txt',
      ]);
      const w = await windowOf(m, 'xterm', 'typing');
      await m.desktop.focusWindow(w.id);
      assert.equal(await m.desktop.getCurrentWindowId(), w.id);
      const text = 'héllo wörld ✓ 世界 -x "quoted" $HOME';
      // More different characters off the keyboard map than it has spare keys: they change hands.
      const many = 'àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿ ĀāĂăĄąĆćĈĉ 你好世界こんにちは ✓✗→←';
      await m.desktop.write(`${text}\n${many}\n`);
      const typed = await eventually(async () => {
        const r = await m.commands.run('cat /tmp/typed.txt 2>/dev/null');
        return r.exitCode === 0 && r.stdout;
      }, 'the typed lines');
      assert.equal(typed, `${text}\n${many}`);
      // The program ended, and its xterm with it: gone from the list before the next test's window
      // (a new client may get the same window id, which openbox must not confuse with this one).
      await eventually(
        async () => !(await m.desktop.listWindows()).some((x) => x.id === w.id),
        'the xterm gone',
      );
    },
  );

  it('a double click on a word selects it (the X primary selection)', { skip: noTemplate }, async () => {
    const word = 'nullspace'.repeat(5);
    await m.desktop.launch('xterm', [
      '-title',
      'words',
      '-geometry',
      '60x3+60+200',
      '-e',
      'bash',
      '-c',
      `printf '%s' ${word}; sleep 600`,
    ]);
    const w = await windowOf(m, 'xterm', 'words');
    const at = await origin(m, w.id);
    await eventually(
      async () => {
        await m.desktop.doubleClick(at.x + 30, at.y + 8);
        const r = await m.commands.run('xclip -selection primary -o');
        return r.stdout === word;
      },
      'the word in the primary selection',
      20,
      200,
    );
    await m.desktop.closeWindow(w.id);
  });

  it("a click on an xmessage button ends it with that button's exit code", { skip: noTemplate }, async () => {
    const msg = await m.commands.run("xmessage -buttons pressme:7 -geometry +300+300 'click the button'", {
      background: true,
    });
    const w = await windowOf(m, 'xmessage');
    const b = await xmessageButton(m, w.id);
    await m.desktop.leftClick(b.x, b.y);
    const done = await msg.wait();
    assert.equal(done.exitCode, 7);
  });

  it('the clipboard works both ways', { skip: noTemplate }, async () => {
    await m.desktop.setClipboard('from the API: héllo ✓');
    const inside = await m.commands.run('xclip -selection clipboard -o');
    assert.equal(inside.stdout, 'from the API: héllo ✓');
    await m.files.write('/tmp/clip.txt', 'from inside the machine');
    const put = await m.commands.run('xclip -selection clipboard -i /tmp/clip.txt >/dev/null 2>&1');
    assert.equal(put.exitCode, 0);
    assert.equal(await m.desktop.getClipboard(), 'from inside the machine');
  });

  it(
    'lists the window of an app started with launch, focuses and closes it',
    { skip: noTemplate },
    async () => {
      const pid = await m.desktop.launch('xterm', ['-title', 'listed', '-geometry', '40x5+500+50']);
      const w = await windowOf(m, 'xterm', 'listed');
      assert.equal(w.pid, pid);
      assert.ok(w.width > 0 && w.height > 0);
      await m.desktop.focusWindow(w.id);
      const listed = await m.desktop.listWindows();
      assert.equal(listed.find((x) => x.id === w.id)?.focused, true);
      await m.desktop.closeWindow(w.id);
      await eventually(
        async () => !(await m.desktop.listWindows()).some((x) => x.id === w.id),
        'the window closed',
      );
    },
  );

  it(
    'xev sees the wheel, held buttons, a drag and key combinations with their keysyms',
    { skip: noTemplate },
    async () => {
      // xev prints every event of its window; stdbuf makes it write each one as it comes.
      const xev = await m.commands.run(
        'stdbuf -oL xev -name xev-test -geometry 300x300+200+150 -event mouse -event keyboard > /tmp/xev.log',
        { background: true },
      );
      const w = await eventually(
        async () => (await m.desktop.listWindows()).find((x) => x.title === 'xev-test'),
        "xev's window",
      );
      await m.desktop.focusWindow(w.id);
      const at = await origin(m, w.id);
      const p = (dx: number, dy: number) => ({ x: at.x + dx, y: at.y + dy });
      await m.desktop.moveMouse(p(50, 50).x, p(50, 50).y);
      await m.desktop.scroll('down', 2);
      await m.desktop.scroll('up', 1);
      await m.desktop.mousePress('right');
      await m.desktop.mouseRelease('right');
      await m.desktop.drag(p(20, 20), p(120, 140));
      await m.desktop.press(['ctrl+shift+a', 'pageup', 'F5']);
      await m.desktop.rightClick(p(10, 10).x, p(10, 10).y);
      const events = await eventually(async () => {
        const log = (await m.commands.run('cat /tmp/xev.log')).stdout;
        const blocks = log.split('\n\n').map((b) => b.trim());
        return blocks.filter((b) => /^ButtonRelease/.test(b) && /button 3/.test(b)).length >= 2 && blocks;
      }, 'the events in xev');
      const of = (type: string) => events.filter((b) => b.startsWith(type));
      const buttons = of('ButtonPress').map((b) => Number(/button (\d+)/.exec(b)?.[1]));
      assert.deepEqual(buttons, [5, 5, 4, 3, 1, 3]);
      const drop = of('ButtonRelease').find((b) => /button 1,/.test(b)) ?? '';
      assert.match(drop, new RegExp(`root:\\(${at.x + 120},${at.y + 140}\\)`), drop);
      assert.ok(of('MotionNotify').length > 0);
      const keys = of('KeyPress').map((b) => /keysym 0x[0-9a-f]+, (\w+)/.exec(b)?.[1]);
      assert.deepEqual(keys, ['Control_L', 'Shift_L', 'A', 'Prior', 'F5']);
      await xev.kill();
    },
  );

  it(
    'user text never reaches a shell: open, launch and the clipboard take it as one argument',
    { skip: noTemplate },
    async () => {
      const trap = '/tmp/pwned';
      const opened = await rejects(m.desktop.open(`/tmp/nothing-here; touch ${trap}; $(touch ${trap})`));
      assert.equal(opened.code, 'invalid_argument');
      assert.equal(opened.details?.field, 'target');
      const launched = await rejects(m.desktop.launch(`touch ${trap}`));
      assert.equal(launched.code, 'invalid_argument');
      assert.equal(launched.details?.field, 'app');
      await m.desktop.setClipboard(`$(touch ${trap})`);
      await m.desktop.press('esc');
      assert.equal(
        (await m.commands.run(`test -e ${trap}`)).exitCode,
        1,
        'nothing ran the text as a command',
      );
    },
  );

  it(
    'bad coordinates, unknown keys and unknown windows are 400s with codes',
    { skip: noTemplate },
    async () => {
      const off = await rejects(m.desktop.moveMouse(5000, 10));
      assert.ok(off instanceof InvalidArgumentError);
      assert.equal(off.details?.field, 'x');
      assert.match(off.message, /off the screen/);
      const negative = await rejects(m.desktop.leftClick(-1, 5));
      assert.equal(negative.status, 400);
      assert.equal(negative.details?.field, 'x');
      const key = await rejects(m.desktop.press('ctrl+nosuchkey'));
      assert.equal(key.code, 'invalid_argument');
      assert.equal(key.details?.key, 'nosuchkey');
      assert.match(key.message, /unknown key "nosuchkey"/);
      const win = await rejects(m.desktop.focusWindow(0x7ffffff));
      assert.equal(win.code, 'invalid_argument');
      assert.equal(win.details?.field, 'window_id');
      const region = await rejects(
        m.desktop.screenshot({ region: { x: 700, y: 0, width: 200, height: 10 } }),
      );
      assert.equal(region.status, 400);
      await m.desktop.press(['ctrl+shift+Escape', 'esc']);
    },
  );

  it(
    'the viewer: a signed page, RFB 003.008 on its WebSocket, view-only ignores a click, read-write does not',
    { skip: noTemplate },
    async () => {
      const rw = await m.desktop.stream.start();
      assert.match(
        rw.url,
        /^http:\/\/6080-mch_[a-z2-7]+\.preview\.localhost:\d+\/viewer\.html\?ns_token=nspv_/,
      );
      const page = await previewGet(rw.url);
      assert.equal(page.status, 200, page.body);
      assert.match(page.body, /novnc\/core\/rfb\.js/);
      const unsigned = await previewGet(rw.url.replace(/\?.*$/, ''));
      assert.equal(unsigned.status, 401);
      const rfbJs = await previewGet(
        `${rw.url.replace(/viewer\.html.*$/, 'novnc/core/rfb.js')}${new URL(rw.url).search}`,
      );
      assert.equal(rfbJs.status, 200);

      // The URL is an ordinary preview grant: redacted like one, and a revoked one opens nothing.
      const token = new URL(rw.url).searchParams.get('ns_token') ?? '';
      assert.ok(!redactPreviewUrl(rw.url).includes(token) && redactPreviewUrl(rw.url).includes('***'));
      const extra = await m.desktop.stream.getUrl();
      assert.notEqual(extra.grantId, rw.grantId);
      assert.equal((await previewGet(extra.url)).status, 200);
      await m.revokePreviewUrl(extra.grantId);
      assert.equal((await previewGet(extra.url)).status, 403);
      assert.equal((await previewGet(rw.url)).status, 200, 'other grants of the viewer stay good');

      const ro = await m.desktop.stream.getUrl({ viewOnly: true });
      assert.match(ro.url, /^http:\/\/6081-/);
      const msg = await m.commands.run("xmessage -buttons pressme:9 -geometry +200+200 'view only?'", {
        background: true,
      });
      const w = await windowOf(m, 'xmessage');
      const b = await xmessageButton(m, w.id);

      const viewer = await Rfb.open(ro.url);
      assert.equal(viewer.version, 'RFB 003.008\n');
      assert.deepEqual([viewer.width, viewer.height], [800, 600]);
      await viewer.click(b.x, b.y);
      await sleep(1000);
      assert.ok(
        (await m.desktop.listWindows()).some((x) => x.id === w.id),
        'the view-only click did nothing',
      );
      viewer.close();

      const driver = await Rfb.open(rw.url);
      assert.equal(driver.version, 'RFB 003.008\n');
      await driver.click(b.x, b.y);
      assert.equal((await msg.wait()).exitCode, 9);
      driver.close();
    },
  );

  it(
    'the viewer page in a real browser (Chromium) shows the red desktop',
    { skip: noTemplate ?? (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed`) },
    async () => {
      await m.commands.run("xsetroot -solid '#ff0000'");
      // Something to see in the documentation's screenshot, away from the pixel checked.
      await m.desktop.launch('xterm', [
        '-title',
        'viewer',
        '-geometry',
        '50x8+16+16',
        '-e',
        'bash',
        '-c',
        'echo "hello from the desktop of $(hostname)"; xdpyinfo | grep dimensions; sleep 600',
      ]);
      await windowOf(m, 'xterm', 'viewer');
      const { url } = await m.desktop.stream.getUrl({ viewOnly: true });
      const { chromium } = await import('playwright-core');
      const profile = mkdtempSync('/tmp/nsd-chromium-');
      // A fresh profile (--user-data-dir, which playwright passes for a persistent context).
      const browser = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        viewport: { width: 800, height: 600 },
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      try {
        const page = await browser.newPage();
        await page.goto(url);
        await page.waitForFunction("document.body.dataset.state === 'connected'", undefined, {
          timeout: 30_000,
        });
        const shot = await eventually(
          async () => {
            const png = await page.screenshot({ type: 'png' });
            const img = decodePng(png);
            const [r, g, b] = pixel(img, Math.floor(img.width / 2), Math.floor(img.height / 2));
            return r > 200 && g < 40 && b < 40 && png;
          },
          'a red desktop in the browser',
          50,
          200,
        );
        // The documentation's screenshot is this one (docs/desktop.md).
        if (process.env.NULLSPACE_DOCS_SCREENSHOT) writeFileSync(process.env.NULLSPACE_DOCS_SCREENSHOT, shot);
      } finally {
        await browser.close();
        rmSync(profile, { recursive: true, force: true });
      }
      await m.desktop.stream.stop();
      assert.equal((await m.desktop.stream.status()).running, false);
      assert.equal((await previewGet(url)).status, 403, 'stopping the viewer revoked its grants');
    },
  );

  it(
    'records the screen into a valid MP4, also one whose ffmpeg was killed',
    { skip: noTemplate },
    async () => {
      const dir = mkdtempSync('/tmp/nsd-rec-');
      try {
        const rec = await m.desktop.recordings.start({ fps: 10 });
        assert.equal(rec.status, 'recording');
        await m.desktop.launch('xterm', ['-title', 'recorded', '-geometry', '40x5+100+100']);
        await sleep(2500);
        const done = await m.desktop.recordings.stop(rec.id);
        assert.equal(done.status, 'stopped');
        assert.ok(done.sizeBytes > 0);
        const file = join(dir, 'a.mp4');
        writeFileSync(file, await m.desktop.recordings.download(rec.id));
        const probe = await exec('ffprobe', [
          '-v',
          'error',
          '-show_entries',
          'format=duration:stream=codec_name,width,height',
          '-of',
          'json',
          file,
        ]);
        const info = JSON.parse(probe.stdout) as {
          format: { duration: string };
          streams: { codec_name: string; width: number }[];
        };
        assert.ok(Number(info.format.duration) >= 1.5, `duration ${info.format.duration}`);
        assert.equal(info.streams[0]?.codec_name, 'h264');
        assert.equal(info.streams[0]?.width, 800);

        const cut = await m.desktop.recordings.start({ fps: 10 });
        await sleep(2500);
        const kill = await m.commands.run('kill -9 $(pidof ffmpeg)');
        assert.equal(kill.exitCode, 0, kill.stderr);
        const killedFile = join(dir, 'b.mp4');
        writeFileSync(killedFile, await m.desktop.recordings.download(cut.id));
        const probe2 = await exec('ffprobe', [
          '-v',
          'error',
          '-show_entries',
          'format=duration',
          '-of',
          'json',
          killedFile,
        ]);
        assert.ok(
          Number((JSON.parse(probe2.stdout) as { format: { duration: string } }).format.duration) >= 1,
        );
        const listed = await m.desktop.recordings.list();
        assert.deepEqual(
          listed.map((r) => r.id),
          [rec.id, cut.id],
        );
        await m.desktop.recordings.delete(cut.id);
        assert.deepEqual(
          (await m.desktop.recordings.list()).map((r) => r.id),
          [rec.id],
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it(
    'hibernate → connect keeps the windows, the pixels and the recordings',
    { skip: noTemplate },
    async () => {
      await m.commands.run("xsetroot -solid '#00ff00'");
      await m.desktop.launch('xterm', ['-title', 'survivor', '-geometry', '40x5+300+300']);
      const w = await windowOf(m, 'xterm', 'survivor');
      const before = (await m.desktop.listWindows()).map((x) => x.id).sort();
      // A viewer with a client connected and a recording running go through it too.
      const viewer = await m.desktop.stream.start({ viewOnly: true });
      const client = await Rfb.open(viewer.url);
      const running = await m.desktop.recordings.start({ fps: 5 });
      const recs = (await m.desktop.recordings.list()).map((r) => r.id);
      await m.hibernate();
      client.close();
      const back = await Machine.connect(m.id, ctx.server.conn);
      const after = (await back.desktop.listWindows()).map((x) => x.id).sort();
      assert.deepEqual(after, before);
      assert.ok(after.includes(w.id));
      const img = decodePng(await back.desktop.screenshot());
      assert.deepEqual(pixel(img, 5, 595), [0, 255, 0]);
      assert.deepEqual(
        (await back.desktop.recordings.list()).map((r) => r.id),
        recs,
      );
      // The X server still takes input after the restore.
      await back.desktop.moveMouse(77, 88);
      assert.deepEqual(await back.desktop.getCursorPosition(), { x: 77, y: 88 });
      // The viewer answers a new connection with the same grant; the recording goes on.
      assert.equal((await back.desktop.stream.status()).running, true);
      const again = await Rfb.open(viewer.url);
      assert.deepEqual([again.version, again.width], ['RFB 003.008\n', 800]);
      again.close();
      const stopped = await back.desktop.recordings.stop(running.id);
      assert.equal(stopped.status, 'stopped');
      const mp4 = await back.desktop.recordings.download(running.id);
      assert.equal(Buffer.from(mp4.subarray(4, 8)).toString('latin1'), 'ftyp');
      await back.desktop.stream.stop();
    },
  );

  it(
    "pause → connect keeps the windows; a fork's child has its own display with the parent's windows",
    { skip: noTemplate },
    async () => {
      const parentWindows = (await m.desktop.listWindows()).map((x) => `${x.app}:${x.title}`).sort();
      // Pause and resume first: the display is frozen with the machine and comes back as it was.
      await m.pause();
      await Machine.connect(m.id, ctx.server.conn);
      assert.deepEqual(
        (await m.desktop.listWindows()).map((x) => `${x.app}:${x.title}`).sort(),
        parentWindows,
      );
      const [child] = await m.fork({ count: 1 });
      const c = child?.machine;
      assert.ok(c, String(child?.error));
      const childWindows = (await c.desktop.listWindows()).map((x) => `${x.app}:${x.title}`).sort();
      assert.deepEqual(childWindows, parentWindows);
      await c.commands.run("xsetroot -solid '#0000ff'");
      assert.deepEqual(pixel(decodePng(await c.desktop.screenshot()), 5, 595), [0, 0, 255]);
      assert.deepEqual(pixel(decodePng(await m.desktop.screenshot()), 5, 595), [0, 255, 0]);
      await c.kill();
    },
  );

  it(
    'the CLI: create --desktop, screenshot, click, type, key, windows, viewer, record',
    { skip: noTemplate },
    async () => {
      const dir = mkdtempSync('/tmp/nsd-cli-');
      const created = await cli(ctx.server, [
        'machine',
        'create',
        '--template',
        'desktop',
        '--desktop',
        '640x480',
        '-q',
      ]);
      assert.equal(created.code, 0, created.stderr);
      const id = created.stdout.trim();
      const d = (...args: string[]) => cli(ctx.server, ['machine', 'desktop', id, ...args]);
      try {
        const shot = await d('screenshot', '-o', join(dir, 's.png'));
        assert.equal(shot.code, 0, shot.stderr);
        const img = decodePng(readFileSync(join(dir, 's.png')));
        assert.deepEqual([img.width, img.height], [640, 480]);
        assert.equal((await d('click', '10', '10')).code, 0);
        const xterm = await cli(ctx.server, [
          'machine',
          'exec',
          id,
          '--background',
          '--',
          'xterm',
          '-title',
          'cli',
          '-e',
          'bash',
          '-c',
          'read -r l; echo "$l" > /tmp/cli.txt',
        ]);
        assert.equal(xterm.code, 0, xterm.stderr);
        await eventually(async () => {
          const r = await d('windows', '--json');
          return (JSON.parse(r.stdout) as { title: string; focused: boolean }[]).some(
            (w) => w.title === 'cli' && w.focused,
          );
        }, 'the focused xterm in the CLI window list');
        assert.match((await d('windows')).stdout, /^ID\s+APP\s+PID/);
        assert.equal((await d('type', 'from the cli')).code, 0);
        assert.equal((await d('key', 'enter')).code, 0);
        await eventually(async () => {
          const r = await cli(ctx.server, ['machine', 'exec', id, '--', 'cat /tmp/cli.txt']);
          return r.stdout === 'from the cli\n';
        }, 'the line typed through the CLI');
        const bad = await d('key', 'ctrl+nosuchkey');
        assert.notEqual(bad.code, 0);
        assert.match(bad.stderr, /invalid_argument.*nosuchkey/);
        const viewer = await d('viewer', '--view-only');
        assert.match(viewer.stdout, /^http:\/\/6081-.*\/viewer\.html\?ns_token=nspv_/);
        const started = await d('record', 'start', '--fps', '5');
        assert.equal(started.code, 0, started.stderr);
        const rec = started.stdout.split(' ')[0] as string;
        await sleep(1200);
        assert.match((await d('record', 'stop', rec)).stdout, /stopped/);
        const dl = await d('record', 'download', rec, '-o', join(dir, 'r.mp4'));
        assert.equal(dl.code, 0, dl.stderr);
        assert.equal(readFileSync(join(dir, 'r.mp4')).subarray(4, 8).toString('latin1'), 'ftyp');
      } finally {
        await cli(ctx.server, ['machine', 'kill', id]);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it(
    'a template built on desktop has the desktop, at the size a create asks for',
    { skip: noTemplate },
    async () => {
      // Its build machine ran a desktop too: what that left in /tmp (the X lock) must not stop the next.
      const built = await Template.build(
        { name: 'team/desk', base: 'desktop', run: ['echo built-on-desktop > /etc/desk-marker'] },
        ctx.server.conn,
      );
      assert.deepEqual(built.template.names, ['team/desk:latest']);
      const d = await Machine.create({
        template: 'team/desk',
        desktop: { width: 640, height: 480 },
        ...ctx.server.conn,
      });
      try {
        assert.deepEqual(await d.desktop.getScreenSize(), { width: 640, height: 480, dpi: 96 });
        assert.equal((await d.commands.run('cat /etc/desk-marker')).stdout, 'built-on-desktop\n');
        // The shipped base's env (DISPLAY) is the built template's too.
        assert.ok((await d.getInfo()).envs.includes('DISPLAY'), 'DISPLAY in the machine envs');
        assert.equal((await d.commands.run('echo $DISPLAY')).stdout, ':0\n');
        await d.commands.run("xsetroot -solid '#0000ff'");
        assert.deepEqual(pixel(decodePng(await d.desktop.screenshot()), 639, 479), [0, 0, 255]);
      } finally {
        await d.kill();
      }
    },
  );

  it(
    'a machine of the template without desktop options has the default 1024x768 desktop',
    { skip: noTemplate },
    async () => {
      const d = await make();
      try {
        assert.deepEqual(await d.desktop.getScreenSize(), { width: 1024, height: 768, dpi: 96 });
        assert.equal(decodePng(await d.desktop.screenshot()).width, 1024);
      } finally {
        await d.kill();
      }
    },
  );

  it(
    'desktop operations on a machine without a desktop are desktop_unavailable',
    { skip: noTemplate },
    async () => {
      const b = await Machine.create({ template: 'base', ...ctx.server.conn });
      try {
        const err = await rejects(b.desktop.screenshot());
        assert.equal(err.code, 'desktop_unavailable');
        assert.equal(err.status, 400);
      } finally {
        await b.kill();
      }
    },
  );
});
