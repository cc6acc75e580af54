/**
 * Xvfb's arguments after the display: the screen, and no listening socket but the abstract one (a
 * path socket in /tmp/.X11-unix broke CRIU restores, criu#2359). The agent starts the machine's
 * display with them; bench/desktop.mjs starts the host's the same way.
 */
export function xvfbArgs(g: { width: number; height: number; dpi: number }): string[] {
  return [
    '-screen',
    '0',
    `${g.width}x${g.height}x24`,
    '-dpi',
    String(g.dpi),
    '-nolisten',
    'tcp',
    '-nolisten',
    'unix',
    '-nocursor',
    '-noreset',
  ];
}
