/**
 * The CRIU action script of a snapshot (dump-hook.ts), run by a real `sh` as CRIU runs it (the
 * action in CRTOOLS_SCRIPT_ACTION), against plain files standing in for the freezer's: it freezes
 * at pre-dump and waits for the state to say so, copies at post-dump (a failed copy fails it, which
 * fails CRIU's dump), thaws at network-unlock, ignores the other actions, and gives up on a freeze
 * that never completes (thawing again).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { readDumpHookErrors, readDumpHookStamps, removeDumpHook, writeDumpHook } from './dump-hook.js';

const dir = mkdtempSync('/tmp/nst-dump-hook-');
after(() => rmSync(dir, { recursive: true, force: true }));

async function action(script: string, name: string): Promise<number> {
  try {
    await promisify(execFile)(script, [], { env: { ...process.env, CRTOOLS_SCRIPT_ACTION: name } });
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

describe('the snapshot dump hook', () => {
  it('freezes at pre-dump, copies at post-dump, thaws at network-unlock, records the times', async () => {
    const state = join(dir, 'freezer.state');
    writeFileSync(state, 'THAWED');
    const source = join(dir, 'disk.img');
    writeFileSync(source, 'disk bytes');
    const target = join(dir, "it's a copy.img");
    const hook = await writeDumpHook(
      dir,
      {
        control: state,
        frozenValue: 'FROZEN',
        thawedValue: 'THAWED',
        stateFile: state,
        frozenLine: 'FROZEN',
      },
      [['cp', source, target]],
    );
    assert.equal(await action(hook.script, 'pre-dump'), 0);
    assert.equal(readFileSync(state, 'utf8'), 'FROZEN');
    assert.equal(await action(hook.script, 'network-lock'), 0, 'other actions: nothing to do');
    assert.equal(readFileSync(state, 'utf8'), 'FROZEN');
    assert.equal(await action(hook.script, 'post-dump'), 0);
    assert.equal(readFileSync(target, 'utf8'), 'disk bytes');
    assert.equal(await action(hook.script, 'network-unlock'), 0);
    assert.equal(readFileSync(state, 'utf8'), 'THAWED');
    const stamps = await readDumpHookStamps(hook);
    assert.deepEqual([...stamps.keys()], ['pre-dump', 'frozen', 'copied', 'thawed']);
    const from = stamps.get('pre-dump') ?? 0n;
    const to = stamps.get('thawed') ?? 0n;
    assert.ok(from > 0n && to >= from, `${from} … ${to}`);
    await removeDumpHook(hook);
    assert.equal((await readDumpHookStamps(hook)).size, 0);
  });

  it('a failed copy fails post-dump, and what it said is kept', async () => {
    const state = join(dir, 'state-2');
    writeFileSync(state, 'FROZEN');
    const hook = await writeDumpHook(
      dir,
      {
        control: state,
        frozenValue: 'FROZEN',
        thawedValue: 'THAWED',
        stateFile: state,
        frozenLine: 'FROZEN',
      },
      [['cp', join(dir, 'no such disk'), join(dir, 'copy-2')]],
    );
    assert.notEqual(await action(hook.script, 'post-dump'), 0);
    assert.equal((await readDumpHookStamps(hook)).has('copied'), false);
    assert.match(await readDumpHookErrors(hook), /no such disk/);
    await removeDumpHook(hook);
    assert.equal(await readDumpHookErrors(hook), '');
  });

  it('a freeze that does not complete: thawed again, pre-dump fails', async () => {
    // cgroup v2's files: the write asks, cgroup.events says when it is done (here: never).
    const control = join(dir, 'cgroup.freeze');
    const events = join(dir, 'cgroup.events');
    writeFileSync(control, '0');
    writeFileSync(events, 'populated 1\nfrozen 0\n');
    const hook = await writeDumpHook(
      dir,
      { control, frozenValue: '1', thawedValue: '0', stateFile: events, frozenLine: 'frozen 1' },
      [],
      50,
    );
    assert.notEqual(await action(hook.script, 'pre-dump'), 0);
    assert.equal(readFileSync(control, 'utf8'), '0');
    assert.ok((await readDumpHookStamps(hook)).has('freeze-timeout'));
    // Once cgroup.events says frozen, the same script succeeds.
    writeFileSync(events, 'populated 1\nfrozen 1\n');
    assert.equal(await action(hook.script, 'pre-dump'), 0);
    assert.equal(readFileSync(control, 'utf8'), '1');
    await removeDumpHook(hook);
  });
});
