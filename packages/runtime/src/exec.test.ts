/**
 * hostPlan: the steps of a plan run in one real `sh` (no root needed): commands in order, files
 * written by the shell itself, a fallback only when its command failed and its path is missing,
 * and a failure that names its step and stops its lane.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { host, hostPlan, planScript, shellQuote } from './exec.js';

const dir = mkdtempSync('/tmp/nst-plan-');
after(() => rmSync(dir, { recursive: true, force: true }));

describe('hostPlan', () => {
  it('runs each lane in order and writes files from the shell itself', async () => {
    const a = join(dir, 'a');
    await hostPlan([
      [
        ['sh', '-c', `printf 1 > ${a}`],
        ['sh', '-c', `printf 2 >> ${a}`],
        { write: "it's 3", to: join(dir, 'written') },
      ],
    ]);
    assert.equal(readFileSync(a, 'utf8'), '12');
    assert.equal(readFileSync(join(dir, 'written'), 'utf8'), "it's 3");
    // A write is no process: the script has no command for it.
    assert.doesNotMatch(planScript([[{ write: '1', to: '/x' }]]), /'printf'/);
  });

  it('a fallback runs when its command fails and its path is missing, never when the path exists', async () => {
    const ran = join(dir, 'fallback-ran');
    const step = (unlessExists: string) => ({
      argv: ['false'],
      fallback: { argv: ['touch', ran], unlessExists },
    });
    await hostPlan([[step(join(dir, 'missing'))]]);
    assert.ok(existsSync(ran));
    rmSync(ran);
    await assert.rejects(hostPlan([[step(dir)]]), /failed: false/);
    assert.ok(!existsSync(ran));
    // A command that succeeds needs no fallback.
    await hostPlan([[{ argv: ['true'], fallback: { argv: ['touch', ran], unlessExists: join(dir, 'no') } }]]);
    assert.ok(!existsSync(ran));
  });

  it('a failing step names itself and stops its lane; a failed write too', async () => {
    const after = join(dir, 'after');
    await assert.rejects(
      hostPlan([
        [
          ['sh', '-c', 'echo boom >&2; exit 3'],
          ['touch', after],
        ],
      ]),
      /failed: sh -c echo boom >&2; exit 3/,
    );
    assert.ok(!existsSync(after));
    await assert.rejects(
      hostPlan([[{ write: '1', to: join(dir, 'no', 'such', 'dir') }]]),
      /failed: write .*no\/such\/dir/,
    );
  });

  it('a shell step passes a value between its commands, and a failure names the step and stops its lane', async () => {
    const out = join(dir, "it's shell");
    await hostPlan([
      [{ name: 'pass a value', shell: `v=$(printf 7) && printf %s "$v" > ${shellQuote(out)}` }],
    ]);
    assert.equal(readFileSync(out, 'utf8'), '7');
    const after = join(dir, 'after-shell');
    await assert.rejects(
      hostPlan([[{ name: 'fails on purpose', shell: 'v=$(printf 7) && [ "$v" = 8 ]' }, ['touch', after]]]),
      /failed: fails on purpose/,
    );
    assert.ok(!existsSync(after));
  });
});

describe('host (through the host shell)', () => {
  it('passes arguments as they are, feeds stdin, runs in cwd and returns the output', async () => {
    assert.equal((await host('printf', ['%s|', "it's", 'a b', '$HOME'])).stdout, "it's|a b|$HOME|");
    assert.equal((await host('cat', [], { input: 'in\n' })).stdout, 'in\n');
    assert.equal((await host('pwd', [], { cwd: dir })).stdout.trim(), dir);
  });

  it('reports the pid of the tool itself, and many tools at once each get their own output', async () => {
    let pid = 0;
    const { stdout } = await host('sh', ['-c', 'echo $$'], {
      onSpawn: (p) => {
        pid = p;
      },
    });
    assert.equal(Number(stdout.trim()), pid);
    const outs = await Promise.all(Array.from({ length: 50 }, (_, i) => host('echo', [String(i)])));
    assert.deepEqual(
      outs.map((o) => o.stdout.trim()),
      Array.from({ length: 50 }, (_, i) => String(i)),
    );
  });

  it('a failure carries the exit status and stderr; a missing tool is ENOENT; a timeout ends the tool', async () => {
    await assert.rejects(
      host('sh', ['-c', 'echo out; echo bad >&2; exit 3']),
      (err: Error & { details?: unknown }) => {
        assert.match(err.message, /exit 3: bad/);
        return true;
      },
    );
    await assert.rejects(host('no-such-tool-nst', []), (err: Error) => {
      assert.equal((err.cause as NodeJS.ErrnoException).code, 'ENOENT');
      return true;
    });
    let pid = 0;
    await assert.rejects(
      host('sleep', ['30'], {
        timeoutMs: 200,
        killGroup: true,
        onSpawn: (p) => {
          pid = p;
        },
      }),
      /timed out/,
    );
    // Answered once the shell reaped it: the tool is gone.
    assert.ok(pid > 0);
    assert.ok(!existsSync(`/proc/${pid}`));
  });
});
