/**
 * Queries the fuzzed edge (test/fuzz-edge.test.ts) found read by hand, ignoring a repeated
 * parameter or a NUL: they are checked against their schemas now.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodedError } from './errors.js';
import { parseListSnapshotsQuery } from './lifecycle.js';
import { parseGetMachineQuery } from './machine.js';
import { parseListPreviewGrantsQuery } from './preview.js';

const refused = (fn: () => unknown, field: string) =>
  assert.throws(
    fn,
    (e: unknown) => e instanceof CodedError && e.code === 'invalid_argument' && e.details?.field === field,
  );

describe('queries checked against their schemas', () => {
  it('GET /v1/snapshots', () => {
    assert.deepEqual(parseListSnapshotsQuery(new URLSearchParams('kind=pause&machine_id=mch_x')), {
      kind: 'pause',
      machine_id: 'mch_x',
    });
    refused(() => parseListSnapshotsQuery(new URLSearchParams('machine_id=a&machine_id=b')), 'machine_id');
    refused(() => parseListSnapshotsQuery(new URLSearchParams('machine_id=%00')), 'machine_id');
    refused(() => parseListSnapshotsQuery(new URLSearchParams('kind=other')), 'kind');
    refused(() => parseListSnapshotsQuery(new URLSearchParams('nope=1')), 'nope');
  });

  it('GET /v1/machines/{id}/preview_urls', () => {
    assert.deepEqual(parseListPreviewGrantsQuery(new URLSearchParams('port=8080')), { port: 8080 });
    refused(() => parseListPreviewGrantsQuery(new URLSearchParams('port=1&port=1')), 'port');
    refused(() => parseListPreviewGrantsQuery(new URLSearchParams('port=0')), 'port');
    refused(() => parseListPreviewGrantsQuery(new URLSearchParams('port=65536')), 'port');
  });

  it('GET /v1/machines/{id}', () => {
    assert.deepEqual(parseGetMachineQuery(new URLSearchParams('fields=id,status')), { fields: 'id,status' });
    refused(() => parseGetMachineQuery(new URLSearchParams('fields=id&fields=status')), 'fields');
    refused(() => parseGetMachineQuery(new URLSearchParams('other=1')), 'other');
  });
});
