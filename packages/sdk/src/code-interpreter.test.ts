/** An Execution built from a run's events, as the SDK reads them off the wire (no server). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CodeResult, Execution } from './index.js';

describe('Execution', () => {
  it('collects output, results (camelCase, data untouched), the error and the end', () => {
    const ex = new Execution();
    const seen: string[] = [];
    const results: CodeResult[] = [];
    const o = {
      onStart: (s: { executionId: string }) => seen.push(`start ${s.executionId}`),
      onStdout: (t: string) => seen.push(`out ${t}`),
      onStderr: (t: string) => seen.push(`err ${t}`),
      onResult: (r: CodeResult) => results.push(r),
    };
    ex.apply(
      {
        type: 'start',
        execution_id: 'cex_0123456789abcdef',
        context_id: 'default-python',
        language: 'python',
      },
      o,
    );
    ex.apply({ type: 'stdout', text: 'a' }, o);
    ex.apply({ type: 'stdout', text: 'b\n' }, o);
    ex.apply({ type: 'stderr', text: 'warn\n' }, o);
    ex.apply({ type: 'result', is_main_result: false, png: 'iVBO', artifact_ids: ['art_x'] }, o);
    ex.apply({ type: 'result', is_main_result: true, text: '42', json: { some_key: 1 } }, o);
    ex.apply({ type: 'error', name: 'ValueError', value: 'bad', traceback: ['line'] }, o);
    ex.apply({ type: 'end', execution_count: 3, duration_ms: 1.5 }, o);
    assert.deepEqual(seen, ['start cex_0123456789abcdef', 'out a', 'out b\n', 'err warn\n']);
    assert.deepEqual(ex.logs, { stdout: ['a', 'b\n'], stderr: ['warn\n'] });
    assert.equal(ex.text, '42');
    assert.deepEqual(results[0], { isMainResult: false, png: 'iVBO', artifactIds: ['art_x'] });
    assert.deepEqual(results[1]?.json, { some_key: 1 });
    assert.deepEqual(ex.error, { name: 'ValueError', value: 'bad', traceback: ['line'] });
    assert.equal(ex.executionCount, 3);
    assert.equal(ex.eventCount, 8);
    assert.equal(ex.done, true);
    assert.equal(ex.id, 'cex_0123456789abcdef');
  });

  it('an interrupted stream is not done and does not count the interruption as an event', () => {
    const ex = new Execution();
    ex.apply({ type: 'start', execution_id: 'cex_0123456789abcdef', context_id: 'c', language: 'bash' }, {});
    ex.apply({ type: 'interrupted', reason: 'machine hibernating' }, {});
    assert.equal(ex.done, false);
    assert.equal(ex.interrupted, 'machine hibernating');
    assert.equal(ex.eventCount, 1);
    assert.equal(ex.text, undefined);
  });
});
