/**
 * The desktop of a machine: a real X11 display (Xvfb + openbox) inside machines of a template
 * that has one (the shipped `desktop` template). Screenshots, mouse and keyboard, windows,
 * clipboard, a VNC viewer behind a preview grant, and recordings. The agent runs the X tools with
 * argument vectors; these schemas and parsers are checked at the API edge.
 */
import { DESKTOP_LIMITS, MOUSE_BUTTONS, type MouseButton, SCROLL_DIRECTIONS } from './desktop-core.js';
import { CodedError, invalidArgument } from './errors.js';
import { check, queryValues } from './schema/check.js';
import { DateTime, Nullable, type Static, Strict, StringEnum, Type, named } from './schema/kit.js';

export * from './desktop-core.js';

// ---- create -------------------------------------------------------------------------------------

export const DesktopGeometrySchema = named(
  'DesktopGeometry',
  Strict({
    width: Type.Optional(
      Type.Integer({
        minimum: DESKTOP_LIMITS.width.min,
        maximum: DESKTOP_LIMITS.width.max,
        default: DESKTOP_LIMITS.width.default,
        description: 'Screen width in pixels.',
      }),
    ),
    height: Type.Optional(
      Type.Integer({
        minimum: DESKTOP_LIMITS.height.min,
        maximum: DESKTOP_LIMITS.height.max,
        default: DESKTOP_LIMITS.height.default,
        description: 'Screen height in pixels.',
      }),
    ),
    dpi: Type.Optional(
      Type.Integer({
        minimum: DESKTOP_LIMITS.dpi.min,
        maximum: DESKTOP_LIMITS.dpi.max,
        default: DESKTOP_LIMITS.dpi.default,
        description: 'Dots per inch the display reports.',
      }),
    ),
  }),
);

export interface DesktopGeometry {
  width: number;
  height: number;
  dpi: number;
}

/** `desktop` of a create (`true` or a geometry) with its defaults; undefined when not asked. */
export function desktopGeometry(
  raw: boolean | { width?: number; height?: number; dpi?: number } | undefined,
): DesktopGeometry | undefined {
  if (raw === undefined || raw === false) return undefined;
  const g = raw === true ? {} : raw;
  return {
    width: g.width ?? DESKTOP_LIMITS.width.default,
    height: g.height ?? DESKTOP_LIMITS.height.default,
    dpi: g.dpi ?? DESKTOP_LIMITS.dpi.default,
  };
}

// ---- screen, pointer ----------------------------------------------------------------------------

const coordinate = (what: string) =>
  Type.Integer({ minimum: 0, maximum: DESKTOP_LIMITS.maxCoordinate, description: what });

export const ScreenSizeSchema = named(
  'ScreenSize',
  Type.Object({ width: Type.Integer(), height: Type.Integer(), dpi: Type.Integer() }),
);
export type ScreenSize = Static<typeof ScreenSizeSchema>;

export const PointSchema = named(
  'Point',
  Strict({ x: coordinate('Pixels from the left edge.'), y: coordinate('Pixels from the top edge.') }),
);
export type Point = Static<typeof PointSchema>;

export const SCREENSHOT_FORMATS = ['png', 'jpeg'] as const;
export const ScreenshotQuerySchema = Type.Object({
  format: Type.Optional(StringEnum(SCREENSHOT_FORMATS, { default: 'png', description: 'png or jpeg.' })),
  x: Type.Optional(coordinate('Region: left edge (with y, width, height).')),
  y: Type.Optional(coordinate('Region: top edge.')),
  width: Type.Optional(Type.Integer({ minimum: 1, maximum: DESKTOP_LIMITS.maxCoordinate + 1 })),
  height: Type.Optional(Type.Integer({ minimum: 1, maximum: DESKTOP_LIMITS.maxCoordinate + 1 })),
  quality: Type.Optional(
    Type.Integer({
      minimum: DESKTOP_LIMITS.jpegQuality.min,
      maximum: DESKTOP_LIMITS.jpegQuality.max,
      description: 'JPEG quality (default 80).',
    }),
  ),
});

export interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
}
export interface ScreenshotQuery {
  format: 'png' | 'jpeg';
  region?: Region;
  quality: number;
}

export function parseScreenshotQuery(q: URLSearchParams): ScreenshotQuery {
  const b = check(ScreenshotQuerySchema, queryValues(q, ScreenshotQuerySchema));
  const parts = [b.x, b.y, b.width, b.height];
  const given = parts.filter((v) => v !== undefined).length;
  if (given !== 0 && given !== 4) throw invalidArgument('x', 'a region needs all of x, y, width and height');
  const out: ScreenshotQuery = {
    format: b.format ?? 'png',
    quality: b.quality ?? DESKTOP_LIMITS.jpegQuality.default,
  };
  if (given === 4) out.region = { x: b.x ?? 0, y: b.y ?? 0, width: b.width ?? 1, height: b.height ?? 1 };
  return out;
}

/** The query string the agent gets for a screenshot. */
export function screenshotQueryText(q: ScreenshotQuery): string {
  const p = new URLSearchParams({ format: q.format, quality: String(q.quality) });
  if (q.region) for (const [k, v] of Object.entries(q.region)) p.set(k, String(v));
  return p.toString();
}

export const ClickBodySchema = named(
  'ClickRequest',
  Strict({
    button: Type.Optional(StringEnum(MOUSE_BUTTONS, { default: 'left', description: 'Which button.' })),
    x: Type.Optional(coordinate('Move here first (with y); else click where the pointer is.')),
    y: Type.Optional(coordinate('Move here first (with x).')),
    double: Type.Optional(Type.Boolean({ default: false, description: 'A double click.' })),
  }),
);
export interface ClickRequest {
  button: MouseButton;
  double: boolean;
  x?: number;
  y?: number;
}
export function parseClick(body: unknown): ClickRequest {
  const b = check(ClickBodySchema, body ?? {});
  if ((b.x === undefined) !== (b.y === undefined))
    throw invalidArgument(b.x === undefined ? 'x' : 'y', 'give both x and y, or neither');
  const out: ClickRequest = { button: b.button ?? 'left', double: b.double ?? false };
  if (b.x !== undefined && b.y !== undefined) {
    out.x = b.x;
    out.y = b.y;
  }
  return out;
}

export function parsePoint(body: unknown): Point {
  return check(PointSchema, body ?? {});
}

export const ButtonBodySchema = named(
  'ButtonRequest',
  Strict({
    button: Type.Optional(StringEnum(MOUSE_BUTTONS, { default: 'left', description: 'Which button.' })),
  }),
);
export function parseButton(body: unknown): { button: MouseButton } {
  return { button: check(ButtonBodySchema, body ?? {}).button ?? 'left' };
}

export const DragBodySchema = named(
  'DragRequest',
  Strict({
    from: PointSchema,
    to: PointSchema,
    button: Type.Optional(StringEnum(MOUSE_BUTTONS, { default: 'left', description: 'Which button.' })),
  }),
);
export interface DragRequest {
  from: Point;
  to: Point;
  button: MouseButton;
}
export function parseDrag(body: unknown): DragRequest {
  const b = check(DragBodySchema, body ?? {});
  return { from: b.from, to: b.to, button: b.button ?? 'left' };
}

export const ScrollBodySchema = named(
  'ScrollRequest',
  Strict({
    direction: Type.Optional(StringEnum(SCROLL_DIRECTIONS, { default: 'down', description: 'Direction.' })),
    amount: Type.Optional(
      Type.Integer({
        minimum: DESKTOP_LIMITS.scrollAmount.min,
        maximum: DESKTOP_LIMITS.scrollAmount.max,
        default: DESKTOP_LIMITS.scrollAmount.default,
        description: 'Wheel steps.',
      }),
    ),
  }),
);
export interface ScrollRequest {
  direction: (typeof SCROLL_DIRECTIONS)[number];
  amount: number;
}
export function parseScroll(body: unknown): ScrollRequest {
  const b = check(ScrollBodySchema, body ?? {});
  return { direction: b.direction ?? 'down', amount: b.amount ?? DESKTOP_LIMITS.scrollAmount.default };
}

// ---- keyboard -----------------------------------------------------------------------------------

export const WriteBodySchema = named(
  'WriteRequest',
  Strict({
    text: Type.String({
      maxLength: DESKTOP_LIMITS.text.maxLength,
      description: 'Text to type (any Unicode).',
    }),
    chunk_size: Type.Optional(
      Type.Integer({
        minimum: DESKTOP_LIMITS.chunkSize.min,
        maximum: DESKTOP_LIMITS.chunkSize.max,
        default: DESKTOP_LIMITS.chunkSize.default,
        description: 'Characters typed per call of the typing tool.',
      }),
    ),
    delay_ms: Type.Optional(
      Type.Integer({
        minimum: DESKTOP_LIMITS.delayMs.min,
        maximum: DESKTOP_LIMITS.delayMs.max,
        default: DESKTOP_LIMITS.delayMs.default,
        description: 'Delay between keystrokes, in ms.',
      }),
    ),
  }),
);
export interface WriteRequest {
  text: string;
  chunk_size: number;
  delay_ms: number;
}
export function parseWrite(body: unknown): WriteRequest {
  const b = check(WriteBodySchema, body ?? {});
  // Control characters have no key to type them with, but newline, tab and carriage return.
  for (const ch of b.text) {
    const cp = ch.codePointAt(0) ?? 0;
    if ((cp < 0x20 && ch !== '\n' && ch !== '\t' && ch !== '\r') || (cp >= 0x7f && cp <= 0x9f))
      throw invalidArgument(
        'text',
        `control character U+${cp.toString(16).toUpperCase().padStart(4, '0')} cannot be typed`,
      );
  }
  return {
    text: b.text,
    chunk_size: b.chunk_size ?? DESKTOP_LIMITS.chunkSize.default,
    delay_ms: b.delay_ms ?? DESKTOP_LIMITS.delayMs.default,
  };
}

/** The usual names of keys, to X keysym names. */
export const KEY_ALIASES: Record<string, string> = {
  enter: 'Return',
  return: 'Return',
  esc: 'Escape',
  escape: 'Escape',
  tab: 'Tab',
  backspace: 'BackSpace',
  delete: 'Delete',
  del: 'Delete',
  insert: 'Insert',
  ins: 'Insert',
  space: 'space',
  up: 'Up',
  down: 'Down',
  left: 'Left',
  right: 'Right',
  arrowup: 'Up',
  arrowdown: 'Down',
  arrowleft: 'Left',
  arrowright: 'Right',
  home: 'Home',
  end: 'End',
  pageup: 'Page_Up',
  pagedown: 'Page_Down',
  pgup: 'Page_Up',
  pgdn: 'Page_Down',
  ctrl: 'ctrl',
  control: 'ctrl',
  alt: 'alt',
  option: 'alt',
  shift: 'shift',
  super: 'super',
  meta: 'super',
  cmd: 'super',
  command: 'super',
  win: 'super',
  windows: 'super',
  capslock: 'Caps_Lock',
  printscreen: 'Print',
  print: 'Print',
  menu: 'Menu',
  pause: 'Pause',
  minus: 'minus',
  plus: 'plus',
};

/** X keysym names accepted as they are (besides single characters, F1–F35 and KP_ / XF86 names). */
const KEYSYMS = new Set(
  (
    'Return Escape Tab ISO_Left_Tab BackSpace Delete Insert Home End Prior Next Page_Up Page_Down Up Down Left ' +
    'Right space Shift_L Shift_R Control_L Control_R Alt_L Alt_R Super_L Super_R Meta_L Meta_R Hyper_L ' +
    'Hyper_R Caps_Lock Num_Lock Scroll_Lock Print Pause Break Menu Sys_Req Linefeed Clear Begin Select ' +
    'Execute Find Cancel Help Undo Redo Mode_switch exclam quotedbl numbersign dollar percent ampersand ' +
    'apostrophe parenleft parenright asterisk plus comma minus period slash colon semicolon less equal ' +
    'greater question at bracketleft backslash bracketright asciicircum underscore grave braceleft bar ' +
    'braceright asciitilde ctrl alt shift super meta'
  ).split(' '),
);

function keysymOf(name: string): string | undefined {
  if (name.length === 0) return undefined;
  // One character (any Unicode code point) is typed as itself.
  if ([...name].length === 1) return name;
  const alias = KEY_ALIASES[name.toLowerCase()];
  if (alias) return alias;
  if (KEYSYMS.has(name)) return name;
  if (/^F([1-9]|[12][0-9]|3[0-5])$/i.test(name)) return name.toUpperCase();
  if (/^(KP_[A-Za-z0-9_]+|XF86[A-Za-z0-9_]+)$/.test(name)) return name;
  return undefined;
}

/**
 * A key combination (`ctrl+c`, `ctrl+shift+t`, `Return`, `a`) as X keysym names joined by `+`;
 * an unknown key is a 400 naming it. A lone `+` is the plus key.
 */
export function parseKeyCombo(combo: string, field = 'keys'): string {
  if (combo === '+') return 'plus';
  const parts = combo.split('+');
  // `ctrl++` means ctrl and the plus key.
  if (combo.endsWith('++')) parts.splice(parts.length - 2, 2, '+');
  const out: string[] = [];
  for (const part of parts) {
    const sym = keysymOf(part.trim());
    if (sym === undefined)
      throw new CodedError(
        'invalid_argument',
        `${field}: unknown key "${part.slice(0, 40)}" in "${combo.slice(0, 80)}"`,
        {
          field,
          key: part.slice(0, 40),
        },
      );
    out.push(sym === '+' ? 'plus' : sym);
  }
  return out.join('+');
}

export const PressBodySchema = named(
  'PressRequest',
  Strict({
    keys: Type.Union(
      [
        Type.String({ minLength: 1, maxLength: 128 }),
        Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
          minItems: 1,
          maxItems: DESKTOP_LIMITS.keys.maxItems,
        }),
      ],
      {
        description:
          'A key or combination (`enter`, `ctrl+c`, X keysym names), or several pressed one after the other.',
      },
    ),
  }),
);
export function parsePress(body: unknown): { keys: string[] } {
  const b = check(PressBodySchema, body ?? {});
  const list = typeof b.keys === 'string' ? [b.keys] : b.keys;
  return { keys: list.map((k, i) => parseKeyCombo(k, typeof b.keys === 'string' ? 'keys' : `keys[${i}]`)) };
}

// ---- windows, clipboard, apps -------------------------------------------------------------------

export const WindowInfoSchema = named(
  'DesktopWindow',
  Type.Object({
    id: Type.Integer({ description: 'X window id.' }),
    title: Type.String(),
    app: Type.String({ description: 'The application (WM_CLASS class), or "" when unknown.' }),
    pid: Nullable(Type.Integer()),
    x: Type.Integer(),
    y: Type.Integer(),
    width: Type.Integer(),
    height: Type.Integer(),
    focused: Type.Boolean(),
  }),
);
export type WindowInfo = Static<typeof WindowInfoSchema>;
export const ListWindowsResponseSchema = Type.Object({ items: Type.Array(WindowInfoSchema) });
export const CurrentWindowSchema = Type.Object({
  id: Nullable(Type.Integer({ description: 'The focused window, or null.' })),
});

/** A window id in a path: decimal or 0x-hex. */
export function parseWindowId(raw: string): number {
  const n = /^0x[0-9a-f]{1,8}$/i.test(raw)
    ? Number.parseInt(raw, 16)
    : /^\d{1,10}$/.test(raw)
      ? Number(raw)
      : Number.NaN;
  if (!Number.isSafeInteger(n) || n <= 0 || n > 0xffffffff)
    throw invalidArgument('window_id', `"${raw.slice(0, 40)}" is not a window id`);
  return n;
}

export const ClipboardSchema = named(
  'Clipboard',
  Strict({ text: Type.String({ maxLength: DESKTOP_LIMITS.clipboard.maxLength, description: 'Its text.' }) }),
);
export function parseClipboard(body: unknown): { text: string } {
  const b = check(ClipboardSchema, body ?? {});
  if (b.text.includes('\0')) throw invalidArgument('text', 'must not contain NUL');
  return b;
}

export const LaunchBodySchema = named(
  'LaunchRequest',
  Strict({
    app: Type.String({
      minLength: 1,
      maxLength: 256,
      description: 'A program on PATH or an absolute path (run as it is, no shell).',
    }),
    args: Type.Optional(
      Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 64, description: 'Its arguments.' }),
    ),
  }),
);
export function parseLaunch(body: unknown): { app: string; args: string[] } {
  const b = check(LaunchBodySchema, body ?? {});
  if (b.app.includes('\0') || (b.args ?? []).some((a) => a.includes('\0')))
    throw invalidArgument('app', 'must not contain NUL');
  return { app: b.app, args: b.args ?? [] };
}
export const LaunchResultSchema = Type.Object({ pid: Type.Integer() });

export const OpenBodySchema = named(
  'OpenRequest',
  Strict({
    target: Type.String({
      minLength: 1,
      maxLength: 4096,
      description: 'A path in the machine or a URL, opened with its default application (xdg-open).',
    }),
  }),
);
export function parseOpen(body: unknown): { target: string } {
  const b = check(OpenBodySchema, body ?? {});
  if (b.target.includes('\0')) throw invalidArgument('target', 'must not contain NUL');
  return b;
}

// ---- viewer -------------------------------------------------------------------------------------

export const StreamStartBodySchema = named(
  'DesktopStreamStart',
  Strict({
    view_only: Type.Optional(
      Type.Boolean({ default: false, description: 'The URL returned is the view-only one.' }),
    ),
    expires_in: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 7 * 24 * 3600,
        default: 3600,
        description: "The URL's grant lifetime, s.",
      }),
    ),
  }),
);
export function parseStreamStart(body: unknown): { view_only: boolean; expires_in: number } {
  const b = check(StreamStartBodySchema, body ?? {});
  return { view_only: b.view_only ?? false, expires_in: b.expires_in ?? 3600 };
}

export const StreamStatusSchema = named(
  'DesktopStream',
  Type.Object({
    running: Type.Boolean(),
    port: Type.Integer({ description: 'Port of the read-write viewer in the machine.' }),
    view_only_port: Type.Integer({ description: 'Port of the view-only viewer in the machine.' }),
  }),
);
export type StreamStatus = Static<typeof StreamStatusSchema>;

export const StreamUrlSchema = named(
  'DesktopStreamUrl',
  Type.Object({
    url: Type.String({ description: 'The viewer page, signed (a preview grant of the viewer port).' }),
    view_only: Type.Boolean(),
    grant_id: Type.String({ description: 'The preview grant (`pvg_...`): revoke it to close the URL.' }),
    expires_at: DateTime(),
  }),
);

// ---- recordings ---------------------------------------------------------------------------------

export const RecordingStartBodySchema = named(
  'RecordingStart',
  Strict({
    fps: Type.Optional(
      Type.Integer({
        minimum: DESKTOP_LIMITS.fps.min,
        maximum: DESKTOP_LIMITS.fps.max,
        default: DESKTOP_LIMITS.fps.default,
        description: 'Frames per second.',
      }),
    ),
  }),
);
export function parseRecordingStart(body: unknown): { fps: number } {
  return { fps: check(RecordingStartBodySchema, body ?? {}).fps ?? DESKTOP_LIMITS.fps.default };
}

export const RecordingInfoSchema = named(
  'Recording',
  Type.Object({
    id: Type.String({ description: '`rec_...`' }),
    status: StringEnum(['recording', 'stopped', 'failed'] as const),
    fps: Type.Integer(),
    width: Type.Integer(),
    height: Type.Integer(),
    started_at: DateTime(),
    stopped_at: Nullable(DateTime()),
    size_bytes: Type.Integer(),
    error: Type.Optional(Type.String()),
  }),
);
export type RecordingInfo = Static<typeof RecordingInfoSchema>;
export const ListRecordingsResponseSchema = Type.Object({ items: Type.Array(RecordingInfoSchema) });

const RECORDING_ID = /^rec_[a-z0-9]{8,32}$/;
export function parseRecordingId(raw: string): string {
  if (!RECORDING_ID.test(raw))
    throw invalidArgument('recording_id', `"${raw.slice(0, 40)}" is not a recording id`);
  return raw;
}

export const DesktopOkSchema = Type.Object({ ok: Type.Literal(true) });
