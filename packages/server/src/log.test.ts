/** Server logs: one JSON object per line, below-level lines dropped, preview tokens never written whole. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Logger } from './log.js';

/** The lines `fn` writes to stdout, parsed. */
function captured(fn: () => void): Record<string, unknown>[] {
  const lines: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
  try {
    fn();
  } finally {
    process.stdout.write = write;
  }
  for (const l of lines) assert.ok(l.endsWith('\n') && !l.slice(0, -1).includes('\n'), 'one line per entry');
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

const TOKEN = 'nspv_abcdSECRETSECRET';

describe('Logger', () => {
  it('writes time, level, message and fields; child fields come along', () => {
    const [line] = captured(() =>
      new Logger('info', { svc: 'api' }).child({ machine_id: 'mch_a' }).info('started', { n: 1 }),
    );
    assert.equal(line?.level, 'info');
    assert.equal(line?.msg, 'started');
    assert.equal(line?.svc, 'api');
    assert.equal(line?.machine_id, 'mch_a');
    assert.equal(line?.n, 1);
    assert.ok(!Number.isNaN(Date.parse(String(line?.time))));
  });

  it('drops lines below its level', () => {
    const lines = captured(() => {
      const log = new Logger('warn');
      log.debug('d');
      log.info('i');
      log.warn('w');
      log.error('e');
    });
    assert.deepEqual(
      lines.map((l) => l.msg),
      ['w', 'e'],
    );
    assert.equal(captured(() => new Logger().debug('hidden')).length, 0);
  });

  it('errors are written with name, message and stack', () => {
    const [line] = captured(() => new Logger().error('failed', { err: new TypeError('boom') }));
    const err = line?.err as Record<string, unknown>;
    assert.equal(err.name, 'TypeError');
    assert.equal(err.message, 'boom');
    assert.match(String(err.stack), /TypeError: boom/);
  });

  it('redacts preview tokens in the message, in fields, in URLs and in errors', () => {
    const lines = captured(() => {
      const log = new Logger('debug');
      log.info(`grant ${TOKEN} made`);
      log.info('request', {
        url: `/x?ns_token=${TOKEN}&a=1`,
        headers: { 'x-nullspace-preview-token': TOKEN },
      });
      log.error('failed', { err: new Error(`bad token ${TOKEN}`) });
      log.child({ token: TOKEN }).debug('child');
    });
    assert.equal(lines.length, 4);
    const text = JSON.stringify(lines);
    assert.ok(!text.includes('SECRET'), text);
    assert.equal(lines[0]?.msg, 'grant nspv_abcd*** made');
    assert.equal((lines[1] as { url: string }).url, '/x?ns_token=nspv_abcd***&a=1');
  });
});
