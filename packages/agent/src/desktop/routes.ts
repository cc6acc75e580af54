import { spawn } from 'node:child_process';
import { createReadStream, statSync } from 'node:fs';
import {
  AGENT_ROUTES,
  type AgentDesktopSession,
  BUTTON_NUMBER,
  type ClickRequest,
  CodedError,
  type DragRequest,
  type MouseButton,
  type Point,
  type Region,
  SCROLL_BUTTON,
  type ScrollRequest,
  type WindowInfo,
  type WriteRequest,
} from '@nullspace/protocol/core';
import { log } from '../log.js';
import { type AgentRouter, RESPONDED } from '../router.js';
import { crop, encodePng, readXwd } from './image.js';
import { Recordings } from './recordings.js';
import { DesktopSession, markerGeometry } from './session.js';
import { UnicodeKeys, keysymName, onKeyboardMap } from './unicode-keys.js';
import { Viewer } from './viewer.js';
import { Scratch, desktopEnv, runTool, tool } from './x-tools.js';

const OK = { ok: true } as const;
/** The screenshot dump's buffer, reused (a second screenshot at the same time gets its own). */
const XWD_SCRATCH = new Scratch();

function inside(g: AgentDesktopSession, p: Point, field = ''): void {
  if (p.x >= g.width)
    throw new CodedError('invalid_argument', `${field}x: ${p.x} is off the screen (width ${g.width})`, {
      field: `${field}x`,
    });
  if (p.y >= g.height)
    throw new CodedError('invalid_argument', `${field}y: ${p.y} is off the screen (height ${g.height})`, {
      field: `${field}y`,
    });
}

/** xdotool, failing on a non-zero exit and on the keys it says it does not know. */
async function xdotool(args: string[], timeoutMs = 15_000): Promise<string> {
  const r = await runTool('xdotool', args, { timeoutMs });
  const unknown = /No such key name '([^']*)'/.exec(r.stderr);
  if (unknown)
    throw new CodedError('invalid_argument', `keys: unknown key "${unknown[1]}"`, {
      field: 'keys',
      key: unknown[1],
    });
  if (r.code !== 0)
    throw new CodedError('internal', `xdotool failed (exit ${r.code}): ${r.stderr.trim().slice(0, 300)}`);
  return r.stdout.toString('utf8');
}

const hex = (id: number) => `0x${id.toString(16).padStart(8, '0')}`;

async function activeWindow(): Promise<number | null> {
  const r = await runTool('xdotool', ['getactivewindow']);
  const id = Number.parseInt(r.stdout.toString('utf8').trim(), 10);
  return r.code === 0 && Number.isSafeInteger(id) && id > 0 ? id : null;
}

/** `wmctrl -lpGx`: id, desktop, pid, x, y, width, height, WM_CLASS, host, title. */
const WINDOW_LINE =
  /^(0x[0-9a-f]+)\s+(-?\d+)\s+(\d+)\s+(-?\d+)\s+(-?\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+) ?(.*)$/;

async function listWindows(): Promise<WindowInfo[]> {
  // wmctrl exits on an X error, which a window closing while it reads the list causes: the window
  // manager drops it from its list once it handled the close, which can take seconds after typing
  // has changed the keyboard map many times (see UnicodeKeys). Try again, a little later each time
  // (for up to about 5 s).
  let list = await runTool('wmctrl', ['-lpGx']);
  for (let i = 1; i <= 20 && list.code !== 0; i++) {
    await new Promise((r) => setTimeout(r, 25 * i));
    list = await runTool('wmctrl', ['-lpGx']);
  }
  if (list.code !== 0) throw new CodedError('internal', `wmctrl failed: ${list.stderr.trim().slice(0, 300)}`);
  const active = await activeWindow();
  const out: WindowInfo[] = [];
  for (const line of list.stdout.toString('utf8').split('\n')) {
    const m = WINDOW_LINE.exec(line);
    if (!m) continue;
    const id = Number.parseInt(m[1] ?? '0', 16);
    const cls = m[8] ?? '';
    const pid = Number(m[3]);
    out.push({
      id,
      title: m[10] ?? '',
      app: cls === 'N/A' ? '' : (cls.split('.')[0] ?? ''),
      pid: pid > 0 ? pid : null,
      x: Number(m[4]),
      y: Number(m[5]),
      width: Number(m[6]),
      height: Number(m[7]),
      focused: id === active,
    });
  }
  return out;
}

async function knownWindow(raw: string | undefined): Promise<number> {
  const id = Number(raw);
  const windows = await listWindows();
  if (!windows.some((w) => w.id === id))
    throw new CodedError('invalid_argument', `window_id: no window ${hex(id)} on this desktop`, {
      field: 'window_id',
      window_id: id,
    });
  return id;
}

/**
 * `/v1/desktop/...` of the agent: the desktop operations, each an X tool run with an argument
 * vector (xwd, xdotool, wmctrl, xclip, ffmpeg, x11vnc). Requests were validated at the API edge;
 * what only the machine knows (the screen's size, its windows, key names) is checked here.
 */
export function addDesktopRoutes(router: AgentRouter): DesktopSession {
  const session = new DesktopSession();
  const recordings = new Recordings(session);
  const viewer = new Viewer(session);
  const base = AGENT_ROUTES.desktop;

  // At the agent's start: a template with a desktop has it running before anything asks.
  if (markerGeometry())
    session
      .ready()
      .catch((err: unknown) => log.write('error', 'desktop did not start', { error: String(err) }));

  router.add('POST', `${base}/session`, async ({ json }) =>
    session.configure((await json()) as AgentDesktopSession),
  );

  router.add('GET', `${base}/screen`, async () => session.ready());

  router.add('GET', `${base}/screenshot`, async ({ url, res }) => {
    const g = await session.ready();
    const q = url.searchParams;
    const num = (k: string) => Number(q.get(k));
    const region: Region = q.has('x')
      ? { x: num('x'), y: num('y'), width: num('width'), height: num('height') }
      : { x: 0, y: 0, width: g.width, height: g.height };
    if (region.x + region.width > g.width || region.y + region.height > g.height)
      throw new CodedError(
        'invalid_argument',
        `x: the region ${region.width}x${region.height}+${region.x}+${region.y} is not inside the ${g.width}x${g.height} screen`,
        { field: 'x' },
      );
    let body: Buffer;
    let type: string;
    if (q.get('format') === 'jpeg') {
      const quality = Number(q.get('quality') ?? 80);
      const qscale = Math.max(2, Math.min(31, Math.round(31 - (quality / 100) * 29)));
      body = (
        await tool('ffmpeg', [
          '-hide_banner',
          '-loglevel',
          'error',
          '-f',
          'x11grab',
          '-draw_mouse',
          '0',
          '-video_size',
          `${region.width}x${region.height}`,
          '-i',
          `:0.0+${region.x},${region.y}`,
          '-frames:v',
          '1',
          '-q:v',
          String(qscale),
          '-f',
          'image2pipe',
          '-c:v',
          'mjpeg',
          '-',
        ])
      ).stdout;
      type = 'image/jpeg';
    } else {
      const dump = await tool('xwd', ['-root', '-silent'], { scratch: XWD_SCRATCH });
      try {
        body = encodePng(crop(readXwd(dump.stdout), region));
      } finally {
        dump.release();
      }
      type = 'image/png';
    }
    res.writeHead(200, { 'content-type': type, 'content-length': body.length });
    res.end(body);
    return RESPONDED;
  });

  router.add('GET', `${base}/cursor`, async () => {
    await session.ready();
    const out = await xdotool(['getmouselocation', '--shell']);
    const x = /X=(-?\d+)/.exec(out)?.[1];
    const y = /Y=(-?\d+)/.exec(out)?.[1];
    return { x: Number(x), y: Number(y) };
  });

  router.add('POST', `${base}/mouse/move`, async ({ json }) => {
    const p = (await json()) as Point;
    inside(await session.ready(), p);
    await xdotool(['mousemove', String(p.x), String(p.y)]);
    return OK;
  });

  router.add('POST', `${base}/mouse/click`, async ({ json }) => {
    const c = (await json()) as ClickRequest;
    const g = await session.ready();
    const args: string[] = [];
    if (c.x !== undefined && c.y !== undefined) {
      inside(g, { x: c.x, y: c.y });
      args.push('mousemove', String(c.x), String(c.y));
    }
    // xdotool sleeps --delay (default 100 ms) after every click, the last one too.
    args.push('click', '--delay', c.double ? '60' : '0');
    if (c.double) args.push('--repeat', '2');
    args.push(String(BUTTON_NUMBER[c.button]));
    await xdotool(args);
    return OK;
  });

  for (const [path, verb] of [
    ['press', 'mousedown'],
    ['release', 'mouseup'],
  ] as const)
    router.add('POST', `${base}/mouse/${path}`, async ({ json }) => {
      const b = (await json()) as { button: MouseButton };
      await session.ready();
      await xdotool([verb, String(BUTTON_NUMBER[b.button])]);
      return OK;
    });

  router.add('POST', `${base}/mouse/drag`, async ({ json }) => {
    const d = (await json()) as DragRequest;
    const g = await session.ready();
    inside(g, d.from, 'from.');
    inside(g, d.to, 'to.');
    const b = String(BUTTON_NUMBER[d.button]);
    // Small pauses let the application see the press, the motion and the release apart.
    await xdotool([
      'mousemove',
      String(d.from.x),
      String(d.from.y),
      'mousedown',
      b,
      'sleep',
      '0.05',
      'mousemove',
      String(Math.round((d.from.x + d.to.x) / 2)),
      String(Math.round((d.from.y + d.to.y) / 2)),
      'sleep',
      '0.05',
      'mousemove',
      String(d.to.x),
      String(d.to.y),
      'sleep',
      '0.05',
      'mouseup',
      b,
    ]);
    return OK;
  });

  router.add('POST', `${base}/mouse/scroll`, async ({ json }) => {
    const s = (await json()) as ScrollRequest;
    await session.ready();
    await xdotool([
      'click',
      '--repeat',
      String(s.amount),
      '--delay',
      '10',
      String(SCROLL_BUTTON[s.direction]),
    ]);
    return OK;
  });

  const unicode = new UnicodeKeys();
  let unicodeGeneration = -1;
  router.add('POST', `${base}/keyboard/write`, async ({ json }) => {
    const w = (await json()) as WriteRequest;
    await session.ready();
    if (unicodeGeneration !== session.generation) {
      unicode.reset();
      unicodeGeneration = session.generation;
    }
    // A carriage return (with or without its newline) is the Return key, as a newline is.
    const chars = [...w.text.replace(/\r\n?/g, '\n')];
    const timeout = (n: number) => 60_000 + n * w.delay_ms;
    // Runs of characters on the keyboard map are typed as text (`--`: text starting with "-" is
    // typed, not read as an option); the others are pressed as keys of their own (UnicodeKeys).
    let i = 0;
    while (i < chars.length) {
      const mapped = onKeyboardMap(chars[i] as string);
      let j = i;
      while (j < chars.length && onKeyboardMap(chars[j] as string) === mapped && j - i < w.chunk_size) j++;
      const run = chars.slice(i, j);
      if (mapped)
        await xdotool(['type', '--delay', String(w.delay_ms), '--', run.join('')], timeout(run.length));
      else {
        const names = run.map(keysymName);
        const capacity = Math.max(1, await unicode.capacity());
        for (let k = 0; k < names.length; ) {
          // As many characters as there are keys for them: then the keys change hands.
          const piece: string[] = [];
          const distinct = new Set<string>();
          while (k < names.length && (distinct.has(names[k] as string) || distinct.size < capacity)) {
            distinct.add(names[k] as string);
            piece.push(names[k] as string);
            k++;
          }
          await unicode.ensure(piece);
          await xdotool(['key', '--delay', String(w.delay_ms), '--', ...piece], timeout(piece.length));
        }
      }
      i = j;
    }
    return OK;
  });

  router.add('POST', `${base}/keyboard/press`, async ({ json }) => {
    const p = (await json()) as { keys: string[] };
    await session.ready();
    await xdotool(['key', '--delay', '20', '--', ...p.keys]);
    return OK;
  });

  router.add('GET', `${base}/windows`, async () => {
    await session.ready();
    return { items: await listWindows() };
  });

  router.add('GET', `${base}/windows/current`, async () => {
    await session.ready();
    return { id: await activeWindow() };
  });

  router.add('POST', `${base}/windows/{window}/focus`, async ({ params }) => {
    await session.ready();
    const id = await knownWindow(params.window);
    await tool('wmctrl', ['-i', '-a', hex(id)]);
    return OK;
  });

  router.add('DELETE', `${base}/windows/{window}`, async ({ params }) => {
    await session.ready();
    const id = await knownWindow(params.window);
    await tool('wmctrl', ['-i', '-c', hex(id)]);
    return OK;
  });

  router.add('GET', `${base}/clipboard`, async () => {
    await session.ready();
    const r = await runTool('xclip', ['-selection', 'clipboard', '-o']);
    // Nobody owns the clipboard yet: it is empty.
    return { text: r.code === 0 ? r.stdout.toString('utf8') : '' };
  });

  router.add('PUT', `${base}/clipboard`, async ({ json }) => {
    const { text } = (await json()) as { text: string };
    await session.ready();
    // xclip stays in the background to serve the selection (until another owner takes it); its
    // first process exits once it owns it.
    await new Promise<void>((resolve, reject) => {
      const child = spawn('xclip', ['-selection', 'clipboard', '-i'], {
        env: desktopEnv(),
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      child.on('error', reject);
      child.on('exit', (code) =>
        code === 0 ? resolve() : reject(new CodedError('internal', `xclip failed (exit ${code})`)),
      );
      child.stdin.end(text);
    });
    return OK;
  });

  router.add('POST', `${base}/launch`, async ({ json }) => {
    const { app, args } = (await json()) as { app: string; args: string[] };
    await session.ready();
    const pid = await new Promise<number>((resolve, reject) => {
      const child = spawn(app, args, {
        env: desktopEnv(),
        stdio: 'ignore',
        detached: true,
        cwd: desktopEnv().HOME,
      });
      child.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          err.code === 'ENOENT' || err.code === 'EACCES'
            ? new CodedError('invalid_argument', `app: cannot run "${app}" (${err.code})`, { field: 'app' })
            : err,
        ),
      );
      child.once('spawn', () => {
        child.unref();
        resolve(child.pid ?? 0);
      });
    });
    return { pid };
  });

  router.add('POST', `${base}/open`, async ({ json }) => {
    const { target } = (await json()) as { target: string };
    await session.ready();
    // xdg-open may stay with the application it started: a failure shows within a moment.
    await new Promise<void>((resolve, reject) => {
      const child = spawn('xdg-open', [target], {
        env: desktopEnv(),
        stdio: ['ignore', 'ignore', 'pipe'],
        detached: true,
      });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString('utf8');
      });
      const done = setTimeout(() => {
        child.unref();
        child.stderr.destroy();
        resolve();
      }, 1000);
      child.once('error', (err) => {
        clearTimeout(done);
        reject(err);
      });
      child.once('exit', (code) => {
        clearTimeout(done);
        if (code === 0) resolve();
        else
          reject(
            new CodedError(
              'invalid_argument',
              `target: xdg-open could not open it (exit ${code}): ${stderr.trim().slice(0, 300)}`,
              {
                field: 'target',
              },
            ),
          );
      });
    });
    return OK;
  });

  router.add('POST', `${base}/stream`, async () => viewer.start());
  router.add('GET', `${base}/stream`, async () => viewer.status());
  router.add('DELETE', `${base}/stream`, async () => viewer.stop());

  router.add('POST', `${base}/recordings`, async ({ json }) => {
    const { fps } = (await json()) as { fps: number };
    return recordings.start(fps);
  });
  router.add('GET', `${base}/recordings`, async () => ({ items: recordings.list() }));
  router.add('POST', `${base}/recordings/{recording}/stop`, async ({ params }) =>
    recordings.stop(params.recording ?? ''),
  );
  router.add('DELETE', `${base}/recordings/{recording}`, async ({ params }) =>
    recordings.remove(params.recording ?? ''),
  );
  router.add('GET', `${base}/recordings/{recording}/file`, async ({ params, res }) => {
    const file = recordings.file(params.recording ?? '');
    // A recording still running grows: send what it holds now (whole fragments and the start of one).
    const size = statSync(file).size;
    res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': size });
    if (size === 0) res.end();
    else createReadStream(file, { end: size - 1 }).pipe(res);
    return RESPONDED;
  });

  return session;
}
