// Of the desktop contract, what the agent shares (through `@nullspace/protocol/core`): limits,
// paths, ports, X buttons, without a schema.
import { CodedError } from './errors-core.js';

export const DESKTOP_LIMITS = {
  width: { min: 320, max: 3840, default: 1024 },
  height: { min: 240, max: 2160, default: 768 },
  dpi: { min: 48, max: 384, default: 96 },
  /** A coordinate is at most this (the screen's size is checked by the agent). */
  maxCoordinate: 16383,
  text: { maxLength: 100_000 },
  chunkSize: { min: 1, max: 10_000, default: 25 },
  delayMs: { min: 0, max: 1000, default: 5 },
  scrollAmount: { min: 1, max: 100, default: 1 },
  keys: { maxItems: 16 },
  clipboard: { maxLength: 1_000_000 },
  fps: { min: 1, max: 30, default: 10 },
  jpegQuality: { min: 1, max: 100, default: 80 },
} as const;

/**
 * The file a template with a desktop carries (its geometry defaults). The agent starts the display
 * at boot when it is there; the server checks a template's layers for it.
 */
export const DESKTOP_MARKER = '/etc/nullspace/desktop.json';
/** The X display of a desktop machine (`DISPLAY` of every command and terminal in it). */
export const DESKTOP_DISPLAY = ':0';
/** Ports on the machine's loopback: the viewer pages (read-write, view-only) and their VNC servers. */
export const DESKTOP_PORTS = { viewer: 6080, viewerViewOnly: 6081, vnc: 5900, vncViewOnly: 5901 } as const;
/** The page of the viewer, under the viewer's port. */
export const DESKTOP_VIEWER_PAGE = '/viewer.html';

/** The 400 of a desktop asked of a machine or template that has none. */
export function desktopUnavailable(what: string): CodedError {
  return new CodedError(
    'desktop_unavailable',
    `${what} has no desktop: create the machine from the "desktop" template (or one built on it)`,
  );
}

export const MOUSE_BUTTONS = ['left', 'middle', 'right'] as const;
export type MouseButton = (typeof MOUSE_BUTTONS)[number];
/** X button numbers. */
export const BUTTON_NUMBER: Record<MouseButton, number> = { left: 1, middle: 2, right: 3 };

export const SCROLL_DIRECTIONS = ['up', 'down', 'left', 'right'] as const;
/** X buttons 4–7 scroll. */
export const SCROLL_BUTTON: Record<(typeof SCROLL_DIRECTIONS)[number], number> = {
  up: 4,
  down: 5,
  left: 6,
  right: 7,
};
