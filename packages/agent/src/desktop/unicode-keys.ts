import { tool } from './x-tools.js';

const RECYCLE_PAUSE_MS = 50;

/** The keysym name X gives a Unicode character (`U00E9`, `U4E16`): Latin-1 ones are their own keysym. */
export function keysymName(ch: string): string {
  return `U${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Printable ASCII and the whitespace xdotool types from the keyboard map as it is. */
export function onKeyboardMap(ch: string): boolean {
  return /^[\x20-\x7e\n\t]$/.test(ch);
}

/**
 * Characters the keyboard map lacks (`é`, `✓`, `世`), typed from keys of their own: xdotool alone
 * maps one spare key to such a character, presses it and maps it back at once, and an application
 * that reads the key after it was mapped back (or to the next character) drops or changes it.
 * Here each character gets a spare keycode of the map (one with no keysyms) and keeps it, so its
 * key means the same thing for as long as an application may take to read it; when the spare keys
 * run out, the least recently used is given to the next character, between two runs of typing.
 * One per X server: `reset()` when the display starts again.
 *
 * Each new key is one change of the keyboard map, and openbox handles each in about 50 ms here
 * (it reloads the map; with or without key bindings): after typing many different such characters
 * the window manager is behind by that much (a line of 50 different ones: about 3 s), which
 * window operations then wait out.
 */
export class UnicodeKeys {
  private spare: number[] | undefined;
  private readonly assigned = new Map<string, number>();

  reset(): void {
    this.spare = undefined;
    this.assigned.clear();
  }

  /** How many different characters can have a key at once. */
  async capacity(): Promise<number> {
    return (await this.spareKeys()).length + this.assigned.size;
  }

  private async spareKeys(): Promise<number[]> {
    if (this.spare === undefined) {
      const map = (await tool('xmodmap', ['-pke'])).stdout.toString('utf8');
      const empty = [...map.matchAll(/^keycode\s+(\d+)\s*=\s*$/gm)].map((m) => Number(m[1]));
      // The lowest keycode is left alone (some clients ignore it), and one more for xdotool's own use.
      this.spare = empty.filter((k) => k > 8).slice(1);
    }
    return this.spare;
  }

  /** Gives every one of `names` (at most `capacity()` different ones) a key, in one map change. */
  async ensure(names: string[]): Promise<void> {
    const spare = await this.spareKeys();
    const wanted = [...new Set(names)];
    const exprs: string[] = [];
    let recycled = false;
    for (const name of wanted) {
      const had = this.assigned.get(name);
      if (had !== undefined) {
        // Most recently used last (a Map keeps insertion order).
        this.assigned.delete(name);
        this.assigned.set(name, had);
        continue;
      }
      let keycode = spare.pop();
      if (keycode === undefined) {
        const [oldest, code] = [...this.assigned.entries()].find(([n]) => !wanted.includes(n)) ?? [];
        if (oldest === undefined || code === undefined) throw new Error('more characters than spare keys');
        this.assigned.delete(oldest);
        keycode = code;
        recycled = true;
      }
      this.assigned.set(name, keycode);
      exprs.push('-e', `keycode ${keycode} = ${name} ${name}`);
    }
    // A key given to another character: the application gets a moment to read the last press of it.
    if (recycled) await new Promise((r) => setTimeout(r, RECYCLE_PAUSE_MS));
    if (exprs.length > 0) await tool('xmodmap', exprs);
  }
}
