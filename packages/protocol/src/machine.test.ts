/**
 * The machine requests at the API edge: create, set network, list query and `fields=`. Inputs go in,
 * the validated request (defaults applied) or an `invalid_argument` naming the field comes out.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MACHINE_INFO_FIELDS,
  MACHINE_STATES,
  type MachineInfo,
  newId,
  parseCreateMachine,
  parseFields,
  parseListMachinesQuery,
  parseSetNetwork,
  pickFields,
} from './index.js';
import { assertInvalid } from './test-support.js';

const create = parseCreateMachine;

describe('parseCreateMachine', () => {
  it('applies every default to an empty or absent body', () => {
    for (const body of [undefined, null, {}]) {
      assert.deepEqual(create(body), {
        template: 'base',
        template_given: false,
        cwd_given: false,
        vcpus: 1,
        memory_mb: 512,
        disk_mb: 2048,
        sized: {},
        timeout: 300,
        on_timeout: 'kill',
        auto_resume: false,
        cwd: '/workspace',
        envs: {},
        metadata: {},
        warm_pool_mode: 'prefer',
        warm_pool_wait_ms: 0,
      });
    }
  });

  it('treats null fields as absent', () => {
    const spec = create({ template: null, vcpus: null, cwd: null, envs: null, network: null, volumes: null });
    assert.equal(spec.template, 'base');
    assert.equal(spec.template_given, false);
    assert.equal(spec.vcpus, 1);
    assert.equal(spec.cwd_given, false);
    assert.equal(spec.network, undefined);
    assert.equal(spec.volumes, undefined);
  });

  it('refuses a body that is not an object', () => {
    for (const body of [[], 'x', 3, true]) assertInvalid(() => create(body), 'body');
  });

  it('refuses unknown fields by name', () => {
    assertInvalid(() => create({ vcpu: 2 }), 'vcpu');
    assertInvalid(() => create({ template: 'base', Template: 'base' }), 'Template');
  });

  it('reads desktop: true or a geometry with its defaults, and refuses sizes out of range', () => {
    assert.deepEqual(create({ desktop: true }).desktop, { width: 1024, height: 768, dpi: 96 });
    assert.deepEqual(create({ desktop: {} }).desktop, { width: 1024, height: 768, dpi: 96 });
    assert.deepEqual(create({ desktop: { width: 800, height: 600 } }).desktop, {
      width: 800,
      height: 600,
      dpi: 96,
    });
    assert.equal(create({ desktop: false }).desktop, undefined);
    assert.equal(create({}).desktop, undefined);
    assertInvalid(() => create({ desktop: { width: 10 } }), 'desktop.width');
    assertInvalid(() => create({ desktop: { depth: 24 } }), 'desktop.depth');
  });

  it('canonicalises the template reference and records that it was given', () => {
    assert.equal(create({ template: 'team/app' }).template, 'team/app:latest');
    assert.equal(create({ template: 'team/app:stable' }).template, 'team/app:stable');
    const base = create({ template: 'base' });
    assert.equal(base.template, 'base');
    assert.equal(base.template_given, true);
  });

  it('refuses a template that is not a template name, or longer than 128', () => {
    for (const bad of ['Team/App', '../x', '/abs', 'a:b:c', '', 'a b', 'x\0y', 5])
      assertInvalid(() => create({ template: bad }), 'template');
    assert.equal(create({ template: 'a'.repeat(128) }).template, `${'a'.repeat(128)}:latest`);
    assertInvalid(() => create({ template: 'a'.repeat(129) }), 'template');
  });

  it('takes a snapshot id, but not with a template, and not anything else', () => {
    const snap = newId('snapshot');
    const spec = create({ snapshot_id: snap });
    assert.equal(spec.snapshot_id, snap);
    assert.equal(spec.template_given, false);
    assertInvalid(() => create({ snapshot_id: snap, template: 'base' }), 'snapshot_id');
    assertInvalid(() => create({ snapshot_id: newId('machine') }), 'snapshot_id');
    assertInvalid(() => create({ snapshot_id: 'snap_x' }), 'snapshot_id');
  });

  const sizes = [
    { field: 'vcpus', min: 1, max: 64 },
    { field: 'memory_mb', min: 128, max: 65536 },
    { field: 'disk_mb', min: 300, max: 1048576 },
  ] as const;
  for (const { field, min, max } of sizes) {
    it(`${field}: ${min} to ${max}, integers only, and recorded in sized`, () => {
      assert.equal(create({ [field]: min })[field], min);
      const spec = create({ [field]: max });
      assert.equal(spec[field], max);
      assert.deepEqual(spec.sized, { [field]: max });
      for (const bad of [min - 1, max + 1, min + 0.5, String(min), true, Number.NaN])
        assertInvalid(() => create({ [field]: bad }), field);
    });
  }

  it('timeout: 1 s to 7 days', () => {
    assert.equal(create({ timeout: 1 }).timeout, 1);
    assert.equal(create({ timeout: 604800 }).timeout, 604800);
    for (const bad of [0, -1, 604801, 1.5, '60']) assertInvalid(() => create({ timeout: bad }), 'timeout');
  });

  it('on_timeout and auto_resume: auto_resume needs something to resume', () => {
    for (const action of ['kill', 'pause', 'hibernate'] as const)
      assert.equal(create({ on_timeout: action }).on_timeout, action);
    assertInvalid(() => create({ on_timeout: 'stop' }), 'on_timeout');
    assertInvalid(() => create({ auto_resume: true }), 'auto_resume');
    assertInvalid(() => create({ on_timeout: 'kill', auto_resume: true }), 'auto_resume');
    assertInvalid(() => create({ on_timeout: 'pause', auto_resume: 'yes' }), 'auto_resume');
    const spec = create({ on_timeout: 'hibernate', auto_resume: true });
    assert.equal(spec.auto_resume, true);
    assert.equal(create({ on_timeout: 'pause', auto_resume: true }).auto_resume, true);
  });

  it('cwd: an absolute path of at most 4096 characters, without NUL', () => {
    const spec = create({ cwd: '/srv/app' });
    assert.equal(spec.cwd, '/srv/app');
    assert.equal(spec.cwd_given, true);
    assert.equal(create({ cwd: `/${'a'.repeat(4095)}` }).cwd.length, 4096);
    for (const bad of ['srv', '', `/${'a'.repeat(4096)}`, '/a\0b', 7])
      assertInvalid(() => create({ cwd: bad }), 'cwd');
  });

  it('envs: shell names, string values, at most 256 entries of at most 32768 characters', () => {
    assert.deepEqual(create({ envs: { A: '1', _b2: '' } }).envs, { A: '1', _b2: '' });
    assertInvalid(() => create({ envs: { '1A': 'x' } }), 'envs.1A');
    assertInvalid(() => create({ envs: { 'A-B': 'x' } }), 'envs.A-B');
    assertInvalid(() => create({ envs: { A: 1 } }), 'envs.A');
    assertInvalid(() => create({ envs: { A: 'x\0' } }), 'envs.A');
    assertInvalid(() => create({ envs: ['A=1'] }), 'envs');
    assertInvalid(() => create({ envs: 'A=1' }), 'envs');
    const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`V${i}`, 'x']));
    assert.equal(Object.keys(create({ envs: many(256) }).envs).length, 256);
    assertInvalid(() => create({ envs: many(257) }), 'envs');
    assert.equal(create({ envs: { A: 'x'.repeat(32768) } }).envs.A?.length, 32768);
    assertInvalid(() => create({ envs: { A: 'x'.repeat(32769) } }), 'envs.A');
  });

  it('metadata: keys of 1-128 characters, at most 64 entries of at most 1024 characters', () => {
    const meta = { 'team/app': 'x', 'a.b:c_d-e': 'y', ['k'.repeat(128)]: 'z' };
    assert.deepEqual(create({ metadata: meta }).metadata, meta);
    assertInvalid(() => create({ metadata: { ['k'.repeat(129)]: 'x' } }), `metadata.${'k'.repeat(129)}`);
    assertInvalid(() => create({ metadata: { '-a': 'x' } }), 'metadata.-a');
    assertInvalid(() => create({ metadata: { 'a b': 'x' } }), 'metadata.a b');
    assertInvalid(() => create({ metadata: { a: 1 } }), 'metadata.a');
    assertInvalid(() => create({ metadata: { a: 'x'.repeat(1025) } }), 'metadata.a');
    const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'x']));
    assert.equal(Object.keys(create({ metadata: many(64) }).metadata).length, 64);
    assertInvalid(() => create({ metadata: many(65) }), 'metadata');
  });

  it('warm pool: an id, a mode and a wait of 0 to 60000 ms', () => {
    const pool = newId('warmPool');
    const spec = create({ warm_pool: pool, warm_pool_mode: 'require', warm_pool_wait_ms: 60000 });
    assert.equal(spec.warm_pool, pool);
    assert.equal(spec.warm_pool_mode, 'require');
    assert.equal(spec.warm_pool_wait_ms, 60000);
    assert.equal(create({ warm_pool_mode: 'bypass' }).warm_pool_mode, 'bypass');
    assertInvalid(() => create({ warm_pool: newId('template') }), 'warm_pool');
    assertInvalid(() => create({ warm_pool_mode: 'always' }), 'warm_pool_mode');
    assertInvalid(() => create({ warm_pool_wait_ms: -1 }), 'warm_pool_wait_ms');
    assertInvalid(() => create({ warm_pool_wait_ms: 60001 }), 'warm_pool_wait_ms');
  });

  it('network: the network object, or the legacy fields, never both', () => {
    const spec = create({ network: { egress: { mode: 'deny_all' } } });
    assert.deepEqual(spec.network, {
      egress: { mode: 'deny_all', allow_cidrs: [], deny_cidrs: [], locked: false },
    });
    assert.equal(create({ internet_access: false }).network?.egress.locked, true);
    assertInvalid(() => create({ network: {}, internet_access: true }), 'internet_access');
    assertInvalid(() => create({ network: {}, allow_out: ['10.0.0.0/8'] }), 'allow_out');
    assertInvalid(() => create({ network: { egress: { mode: 'open' } } }), 'network.egress.mode');
    assertInvalid(() => create({ network: { egres: {} } }), 'network.egres');
  });

  it('volumes: mounts come out validated; an empty list is no volumes', () => {
    const spec = create({ volumes: [{ volume: 'data', mount_path: '/data' }] });
    assert.deepEqual(spec.volumes, [
      { volume: 'data', mount_path: '/data', read_only: false, subpath: null },
    ]);
    assert.equal(create({ volumes: [] }).volumes, undefined);
    assertInvalid(
      () => create({ volumes: [{ volume: 'data', mount_path: 'data' }] }),
      'volumes[0].mount_path',
    );
  });
});

describe('parseSetNetwork', () => {
  it('takes the network object of create at the top level', () => {
    assert.deepEqual(
      parseSetNetwork({
        egress: { mode: 'custom', deny_cidrs: ['10.1.2.3/8'] },
        mask_request_host: 'localhost',
      }),
      {
        egress: { mode: 'custom', allow_cidrs: [], deny_cidrs: ['10.0.0.0/8'], locked: false },
        mask_request_host: 'localhost',
      },
    );
  });

  it('requires egress: replacing the policy with nothing named would open the machine', () => {
    assertInvalid(() => parseSetNetwork({}), 'egress');
    assertInvalid(() => parseSetNetwork({ mask_request_host: 'localhost' }), 'egress');
    assertInvalid(() => parseSetNetwork({ egress: null }), 'egress');
  });

  it('takes the legacy fields alone, and refuses them mixed with the new ones', () => {
    assert.deepEqual(parseSetNetwork({ internet_access: false, allow_out: ['1.1.1.1'] }).egress, {
      mode: 'deny_all',
      allow_cidrs: [],
      deny_cidrs: [],
      locked: true,
    });
    assert.deepEqual(parseSetNetwork({ allow_out: ['1.1.1.1'] }).egress, {
      mode: 'custom',
      allow_cidrs: ['1.1.1.1/32'],
      deny_cidrs: [],
      locked: false,
    });
    assertInvalid(() => parseSetNetwork({ internet_access: true, egress: { mode: 'allow_all' } }), 'egress');
    assertInvalid(() => parseSetNetwork({ deny_out: [], mask_request_host: 'x' }), 'mask_request_host');
  });

  it('refuses a body that is not an object, and unknown fields', () => {
    assertInvalid(() => parseSetNetwork(undefined), 'body');
    assertInvalid(() => parseSetNetwork([]), 'body');
    assertInvalid(() => parseSetNetwork({ egress: { mode: 'allow_all' }, extra: 1 }), 'extra');
  });
});

describe('parseListMachinesQuery', () => {
  const q = (s: string) => parseListMachinesQuery(new URLSearchParams(s));

  it('defaults: every state, limit 100', () => {
    assert.deepEqual(q(''), { states: [], metadata: {}, limit: 100 });
  });

  it('state: comma lists and repeats add up; unknown states are refused', () => {
    assert.deepEqual(q('state=running,paused&state=killed').states, ['running', 'paused', 'killed']);
    for (const s of MACHINE_STATES) assert.deepEqual(q(`state=${s}`).states, [s]);
    assertInvalid(() => q('state=running,stopped'), 'state');
    assertInvalid(() => q('state='), 'state');
  });

  it('limit: 1 to 1000, digits only', () => {
    assert.equal(q('limit=1').limit, 1);
    assert.equal(q('limit=1000').limit, 1000);
    for (const bad of ['0', '1001', '-1', '1.5', 'ten', '', '1e2'])
      assertInvalid(() => q(`limit=${bad}`), 'limit');
  });

  it('metadata.KEY=VALUE filters, with the key checked', () => {
    assert.deepEqual(q('metadata.team=a&metadata.env=prod').metadata, { team: 'a', env: 'prod' });
    assertInvalid(() => q('metadata.=x'), 'metadata.');
    assertInvalid(() => q('metadata.a%20b=x'), 'metadata.a b');
  });

  it('template, next_token (empty = none) and fields', () => {
    const query = q('template=team/app:v1&next_token=abc&fields=id,status');
    assert.equal(query.template, 'team/app:v1');
    assert.equal(query.next_token, 'abc');
    assert.deepEqual(query.fields, ['id', 'status']);
    assert.equal(q('next_token=').next_token, undefined);
    assertInvalid(() => q('template=Bad!'), 'template');
  });

  it('refuses unknown parameters by name', () => {
    assertInvalid(() => q('states=running'), 'states');
    assertInvalid(() => q('page=2'), 'page');
  });
});

describe('parseFields and pickFields', () => {
  it('accepts every machine info field, trims and drops empty items', () => {
    assert.deepEqual(parseFields(MACHINE_INFO_FIELDS.join(',')), [...MACHINE_INFO_FIELDS]);
    assert.deepEqual(parseFields(' id , status ,,'), ['id', 'status']);
  });

  it('refuses an empty list and unknown fields', () => {
    assertInvalid(() => parseFields(''), 'fields');
    assertInvalid(() => parseFields(' , '), 'fields');
    assertInvalid(() => parseFields('id,secret'), 'fields', /secret/);
  });

  it('pickFields keeps exactly the fields named', () => {
    const info = { id: 'mch_x', status: 'running', vcpus: 2 } as unknown as MachineInfo;
    assert.deepEqual(pickFields(info, ['status', 'id']), { status: 'running', id: 'mch_x' });
  });
});
