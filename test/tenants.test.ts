/**
 * Tenants and API keys (docs/tenants.md), against one real server: the operator's key and two
 * tenants' keys. The isolation check is generated from the route table: every route with an id in
 * its path is called with another tenant's resource and must answer 404 with that resource's
 * not-found code (a WebSocket route over a real upgrade too); every list must leave the other
 * tenant's items out. A route added later is called here without anyone writing a case for it,
 * and a path parameter this test does not know fails it.
 */
import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { ERROR_STATUS, type ErrorCode, ROUTES, type RouteId, type RouteSpec } from '@nullspace/protocol';
import {
  ApiKey,
  AuthenticationError,
  type ConnectionOptions,
  Machine,
  NotFoundError,
  PermissionDeniedError,
  QuotaExceededError,
  RateLimitError,
} from '@nullspace/sdk';
import WebSocket from 'ws';
import { cli, describeWithServer, eventually } from './harness.js';

type Kind = 'machine' | 'snapshot' | 'volume' | 'template' | 'warm_pool';

/** The not-found answer of each kind, as an id that does not exist gets it. */
const NOT_FOUND: Record<Kind, ErrorCode> = {
  machine: 'machine_not_found',
  snapshot: 'snapshot_not_found',
  volume: 'volume_not_found',
  template: 'template_not_found',
  warm_pool: 'not_found',
};

/**
 * What a path parameter names, read from the path as a client sees it (not from the server's
 * code): the resource of its collection, or a part of a machine looked up under the machine.
 */
function kindOf(route: RouteId, spec: RouteSpec, param: string): Kind | 'part' {
  const collection = /^\/v1\/(\w+)\//.exec(spec.path)?.[1];
  if (param === 'id' && collection === 'machines') return 'machine';
  if (param === 'id' && collection === 'snapshots') return 'snapshot';
  if (param === 'id' && collection === 'warm_pools') return 'warm_pool';
  if (param === 'vol') return 'volume';
  if (param === 'ref') return 'template';
  const PARTS = ['pid', 'vat', 'wid', 'grant', 'port', 'ctx', 'execution', 'artifact', 'window', 'recording'];
  if (collection === 'machines' && PARTS.includes(param)) return 'part';
  throw new Error(
    `route ${route} (${spec.path}): this test does not know what {${param}} names; teach kindOf()`,
  );
}

/** A syntactically fine value for a part of a machine (the machine's check comes first). */
const PART_VALUE: Record<string, string> = {
  pid: '1',
  vat: 'vat_aaaaaaaaaaaaaaaaaaaa',
  wid: 'fwt_aaaaaaaaaaaaaaaaaaaa',
  grant: 'pvg_aaaaaaaaaaaaaaaaaaaa',
  port: '8080',
  ctx: 'default-python',
  execution: 'cex_aaaaaaaaaaaaaaaaaaaa',
  artifact: 'art_aaaaaaaaaaaaaaaaaaaa',
  window: '0x1',
  recording: 'rec_aaaaaaaaaaaaaaaaaaaa',
};

interface Answer {
  status: number;
  body: { error?: { code: string; message: string; details?: Record<string, unknown> } } & Record<
    string,
    unknown
  >;
  text: string;
}

describeWithServer(
  'tenants and API keys',
  (ctx) => {
    let acme: { id: string; key: string };
    let bravo: { id: string; key: string };
    let capped: { id: string; key: string };
    /** Bravo's resources, one of each kind, that acme must never reach. */
    const theirs = {} as Record<Kind, string>;
    /** The machine, volume and pool of acme (a part of another's machine is tried under it). */
    let acmeMachine: string;
    let acmeVolume: string;
    let bravoGrant: string;
    let bravoChild: string;

    const conn = (key: string): ConnectionOptions => ({ apiUrl: ctx.server.url, apiKey: key });
    const call = async (key: string, method: string, path: string, body?: unknown): Promise<Answer> => {
      const res = await fetch(`${ctx.server.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      let parsed: Answer['body'] = {};
      try {
        parsed = text ? (JSON.parse(text) as Answer['body']) : {};
      } catch {
        // text (Prometheus) or NDJSON: kept in `text`
      }
      return { status: res.status, body: parsed, text };
    };
    const ok = async (key: string, method: string, path: string, body?: unknown) => {
      const a = await call(key, method, path, body);
      assert.ok(a.status < 300, `${method} ${path} → ${a.status} ${a.text}`);
      return a.body as Record<string, unknown>;
    };
    const refused = (a: Answer, code: ErrorCode, what: string) => {
      assert.equal(a.body.error?.code, code, `${what} → ${a.status} ${a.text}`);
      assert.equal(a.status, ERROR_STATUS[code], what);
    };

    before(async () => {
      const op = ctx.server.conn;
      acme = await ApiKey.create('acme', { ...op, name: 'acme ci' });
      bravo = await ApiKey.create('bravo', op);
      capped = await ApiKey.create('capped', op);

      acmeMachine = (await ok(acme.key, 'POST', '/v1/machines', {})).id as string;
      acmeVolume = (await ok(acme.key, 'POST', '/v1/volumes', { name: 'data', size_mb: 300 })).id as string;

      // Bravo: a machine with a preview grant, a reusable snapshot and a fork child of it, a
      // volume (named like acme's: names are per tenant), a template and a warm pool.
      theirs.machine = (await ok(bravo.key, 'POST', '/v1/machines', {})).id as string;
      bravoGrant = (
        await ok(bravo.key, 'POST', `/v1/machines/${theirs.machine}/preview_urls`, { port: 8080 })
      ).id as string;
      theirs.snapshot = (await ok(bravo.key, 'POST', `/v1/machines/${theirs.machine}/snapshots`))
        .id as string;
      const fork = (await ok(bravo.key, 'POST', `/v1/machines/${theirs.machine}/fork`, { count: 1 })) as {
        children: { id?: string; error?: unknown }[];
      };
      bravoChild = fork.children[0]?.id as string;
      assert.ok(bravoChild, JSON.stringify(fork));
      theirs.volume = (await ok(bravo.key, 'POST', '/v1/volumes', { name: 'data', size_mb: 300 }))
        .id as string;
      const build = await ok(bravo.key, 'POST', '/v1/templates', { name: 'bravo/app', run: ['echo b > /b'] });
      theirs.template = 'bravo/app';
      await eventually(async () => {
        const t = await ok(bravo.key, 'GET', `/v1/templates/${build.build_id}`);
        if (t.status === 'failed') throw new Error(`bravo's build failed: ${JSON.stringify(t)}`);
        return t.status === 'ready';
      }, `template build ${build.build_id}`);
      theirs.warm_pool = (await ok(bravo.key, 'POST', '/v1/warm_pools', { template: 'base', size: 1 }))
        .id as string;
    });

    it('keys: created by the operator, shown once, listed without the key, a tenant key gets 403', async () => {
      assert.match(acme.key, /^ns_[A-Za-z0-9_-]{32}$/);
      assert.match(acme.id, /^key_[a-z2-7]{20}$/);
      const listed = await ApiKey.list(ctx.server.conn);
      const mine = listed.find((k) => k.id === acme.id);
      assert.deepEqual(
        [mine?.tenant, mine?.name, mine?.hint, mine?.createdAt instanceof Date],
        ['acme', 'acme ci', acme.key.slice(-4), true],
      );
      const raw = await call(ctx.server.apiKey, 'GET', '/v1/keys');
      for (const k of [acme.key, bravo.key, capped.key])
        assert.ok(!raw.text.includes(k), 'a key is never listed');
      assert.ok(!raw.text.includes('key_hash'));

      for (const [method, path, body] of [
        ['POST', '/v1/keys', { tenant: 'acme' }],
        ['GET', '/v1/keys', undefined],
        ['DELETE', `/v1/keys/${bravo.id}`, undefined],
        ['GET', '/metrics', undefined],
      ] as const)
        refused(await call(acme.key, method, path, body), 'permission_denied', `${method} ${path} as acme`);
      await assert.rejects(ApiKey.list(conn(acme.key)), PermissionDeniedError);

      for (const body of [
        {},
        { tenant: 'Acme' },
        { tenant: 'a'.repeat(64) },
        { tenant: 'acme', name: '' },
        { tenant: 'acme', x: 1 },
      ])
        refused(
          await call(ctx.server.apiKey, 'POST', '/v1/keys', body),
          'invalid_argument',
          JSON.stringify(body),
        );
      refused(
        await call(ctx.server.apiKey, 'DELETE', '/v1/keys/key_aaaaaaaaaaaaaaaaaaaa'),
        'not_found',
        'unknown key',
      );
    });

    it('every route with an id in its path answers 404 for another tenant’s resource, as if it did not exist', async () => {
      const checked: string[] = [];
      for (const id of Object.keys(ROUTES) as RouteId[]) {
        const spec: RouteSpec = ROUTES[id];
        const auth = spec.auth ?? 'key';
        if (auth === 'none' || auth === 'signed' || auth === 'operator' || !spec.params) continue;
        const owned: Kind[] = [];
        const path = spec.path.replace(/\{(\w+)\}/g, (_, p: string) => {
          const kind = kindOf(id, spec, p);
          if (kind === 'part') return encodeURIComponent(PART_VALUE[p] as string);
          owned.push(kind);
          return encodeURIComponent(theirs[kind]);
        });
        assert.equal(owned.length, 1, `${id}: one owned resource in the path`);
        const kind = owned[0] as Kind;
        const body = spec.body || spec.bodyRequired ? {} : undefined;
        const a = await call(acme.key, spec.method, path, body);
        refused(a, NOT_FOUND[kind], `${id}: ${spec.method} ${path} as acme`);
        // The same answer as an id that exists nowhere.
        const none = {
          machine: 'mch_aaaaaaaaaaaaaaaaaaaa',
          snapshot: 'snap_aaaaaaaaaaaaaaaaaaaa',
          volume: 'vol_aaaaaaaaaaaaaaaaaaaa',
          template: 'acme/nothing',
          warm_pool: 'twp_aaaaaaaaaaaaaaaaaaaa',
        }[kind];
        const b = await call(
          acme.key,
          spec.method,
          path.replace(encodeURIComponent(theirs[kind]), encodeURIComponent(none)),
          body,
        );
        assert.equal(b.body.error?.code, a.body.error?.code, `${id}: same code as a missing ${kind}`);
        assert.equal(
          b.body.error?.message.replace(none, 'X'),
          a.body.error?.message.replace(theirs[kind], 'X'),
          `${id}: same message as a missing ${kind}`,
        );
        assert.equal(
          JSON.stringify(b.body.error?.details).replaceAll(none, 'X'),
          JSON.stringify(a.body.error?.details).replaceAll(theirs[kind], 'X'),
          `${id}: same details as a missing ${kind}`,
        );
        assert.equal(b.status, a.status);
        if (spec.kind === 'websocket') {
          const code = await upgradeStatus(`${path}`, acme.key);
          assert.equal(code, 404, `${id}: WebSocket upgrade as acme`);
        }
        checked.push(id);
      }
      // Every kind was tried, and the machine's routes are most of the table.
      assert.ok(checked.length > 60, `${checked.length} routes checked`);
      for (const r of [
        'getMachine',
        'getSnapshot',
        'getVolume',
        'getTemplate',
        'getWarmPool',
        'streamEvents',
      ])
        assert.ok(checked.includes(r), r);

      // The resources are there: their own tenant reaches each (so the 404s above are isolation).
      await ok(bravo.key, 'GET', `/v1/machines/${theirs.machine}`);
      await ok(bravo.key, 'GET', `/v1/machines/${bravoChild}`);
      await ok(bravo.key, 'GET', `/v1/snapshots/${theirs.snapshot}`);
      await ok(bravo.key, 'GET', `/v1/volumes/${theirs.volume}`);
      await ok(bravo.key, 'GET', '/v1/volumes/data');
      await ok(bravo.key, 'GET', `/v1/templates/${encodeURIComponent(theirs.template)}`);
      await ok(bravo.key, 'GET', `/v1/warm_pools/${theirs.warm_pool}`);
      // ... and the operator sees everything.
      await ok(ctx.server.apiKey, 'GET', `/v1/machines/${bravoChild}`);
      await ok(ctx.server.apiKey, 'GET', `/v1/volumes/${theirs.volume}`);
      // The fork child is its parent's tenant's: acme does not reach it either.
      refused(await call(acme.key, 'GET', `/v1/machines/${bravoChild}`), 'machine_not_found', 'fork child');
      await assert.rejects(Machine.connect(theirs.machine, conn(acme.key)), NotFoundError);
    });

    it('parts of a machine are looked up under the caller’s own machine: another’s grant is not found', async () => {
      refused(
        await call(acme.key, 'DELETE', `/v1/machines/${acmeMachine}/preview_urls/${bravoGrant}`),
        'not_found',
        "bravo's grant under acme's machine",
      );
      const grants = await ok(bravo.key, 'GET', `/v1/machines/${theirs.machine}/preview_urls`);
      assert.equal((grants.items as { revoked_at: unknown }[])[0]?.revoked_at, null, 'still in force');
    });

    it('ids in request bodies are checked the same way', async () => {
      const cases: [string, string, unknown, ErrorCode][] = [
        ['POST', '/v1/machines', { snapshot_id: theirs.snapshot }, 'snapshot_not_found'],
        ['POST', '/v1/machines', { template: theirs.template }, 'template_not_found'],
        [
          'POST',
          '/v1/machines',
          { volumes: [{ volume: theirs.volume, mount_path: '/d' }] },
          'volume_not_found',
        ],
        ['POST', '/v1/machines', { warm_pool: theirs.warm_pool }, 'not_found'],
        [
          'POST',
          `/v1/machines/${acmeMachine}/volumes`,
          { volume: theirs.volume, mount_path: '/d' },
          'volume_not_found',
        ],
        ['POST', '/v1/templates', { name: 'acme/app', base: theirs.template }, 'template_not_found'],
        ['POST', '/v1/warm_pools', { template: theirs.template, size: 1 }, 'template_not_found'],
      ];
      for (const [method, path, body, code] of cases)
        refused(await call(acme.key, method, path, body), code, `${method} ${path} ${JSON.stringify(body)}`);
      // A tenant names its templates under itself; by name, a volume is its own ("data" is acme's).
      refused(
        await call(acme.key, 'POST', '/v1/templates', { name: 'app' }),
        'invalid_argument',
        'unprefixed',
      );
      const attached = await ok(acme.key, 'POST', `/v1/machines/${acmeMachine}/volumes`, {
        volume: 'data',
        mount_path: '/data',
      });
      assert.equal(attached.volume_id, acmeVolume);
    });

    it('lists show a tenant only its own; the operator sees everyone’s', async () => {
      const bravoIds = [...Object.values(theirs), bravoChild, bravoGrant].filter((v) => v !== 'base');
      for (const id of Object.keys(ROUTES) as RouteId[]) {
        const spec: RouteSpec = ROUTES[id];
        if (spec.method !== 'GET' || spec.params || (spec.auth ?? 'key') !== 'key') continue;
        const a = await call(acme.key, 'GET', spec.path);
        assert.equal(a.status, 200, `${id}: ${a.text}`);
        for (const theirId of bravoIds)
          assert.ok(!a.text.includes(theirId), `${id} shows ${theirId} to acme`);
      }
      const names = (a: Record<string, unknown>) => JSON.stringify(a);
      const machines = await ok(acme.key, 'GET', '/v1/machines');
      assert.deepEqual(
        (machines.items as { id: string }[]).map((m) => m.id),
        [acmeMachine],
      );
      const templates = names(await ok(acme.key, 'GET', '/v1/templates'));
      assert.ok(templates.includes('"base"'), 'shipped templates are shared');
      assert.ok(!templates.includes('bravo/app'));
      const all = names(await ok(ctx.server.apiKey, 'GET', '/v1/machines'));
      for (const m of [acmeMachine, theirs.machine, bravoChild]) assert.ok(all.includes(m), m);
      // The operator tells whose a machine is, and lists one tenant's (SDK, CLI, HTTP).
      assert.equal((await ok(ctx.server.apiKey, 'GET', `/v1/machines/${acmeMachine}`)).tenant, 'acme');
      assert.equal((await ok(acme.key, 'GET', `/v1/machines/${acmeMachine}`)).tenant, 'acme');
      const bravos = await Machine.list({ ...ctx.server.conn, query: { tenant: 'bravo' } });
      assert.deepEqual(bravos.items.map((m) => m.id).sort(), [theirs.machine, bravoChild].sort());
      assert.ok(bravos.items.every((m) => m.tenant === 'bravo'));
      const listed = await cli(ctx.server, ['machine', 'list', '--tenant', 'acme', '-q']);
      assert.equal(listed.stdout, `${acmeMachine}\n`, listed.stderr);
      // A tenant asking for another's gets nothing (its list is its own anyway).
      assert.deepEqual((await ok(acme.key, 'GET', '/v1/machines?tenant=bravo')).items, []);
      refused(
        await call(ctx.server.apiKey, 'GET', '/v1/machines?tenant=Bad'),
        'invalid_argument',
        'bad tenant',
      );
      const own = await Machine.create(ctx.server.conn);
      try {
        assert.equal((await own.getInfo()).tenant, null, "the operator's machine has no tenant");
      } finally {
        await own.kill();
      }
      const vols = names(await ok(ctx.server.apiKey, 'GET', '/v1/volumes'));
      assert.ok(vols.includes(acmeVolume) && vols.includes(theirs.volume));
    });

    it('a shared template is usable by every tenant but deleted only by the operator', async () => {
      const build = await ok(ctx.server.apiKey, 'POST', '/v1/templates', {
        name: 'shared/tools',
        run: ['true'],
      });
      // Acme follows the operator's build by its id: a shared build is visible while it builds too.
      await eventually(
        async () => (await ok(acme.key, 'GET', `/v1/templates/${build.build_id}`)).status === 'ready',
        'the shared build',
      );
      await ok(acme.key, 'GET', `/v1/templates/${encodeURIComponent('shared/tools')}`);
      refused(
        await call(acme.key, 'DELETE', `/v1/templates/${encodeURIComponent('shared/tools')}`),
        'permission_denied',
        'acme deletes a shared template',
      );
      const m = await ok(acme.key, 'POST', '/v1/machines', { template: 'shared/tools' });
      await ok(acme.key, 'DELETE', `/v1/machines/${m.id}`);
    });

    it('a revoked key is refused at once, and its open WebSocket and long poll end', async () => {
      const temp = await ApiKey.create('acme', ctx.server.conn);
      const ws = new WebSocket(
        `${ctx.server.url.replace('http', 'ws')}/v1/machines/${acmeMachine}/lifecycle/ws`,
        {
          headers: { authorization: `Bearer ${temp.key}` },
        },
      );
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      // A long poll after the newest event: it waits (nothing happens to the machine meanwhile).
      const after = (await ok(temp.key, 'GET', `/v1/machines/${acmeMachine}/lifecycle/events`)).last_event_id;
      const poll = fetch(
        `${ctx.server.url}/v1/machines/${acmeMachine}/lifecycle/events?after_event_id=${after}&wait_ms=60000`,
        {
          headers: { authorization: `Bearer ${temp.key}` },
        },
      ).then(
        (r) =>
          r.text().then(
            () => `answered ${r.status}`,
            () => 'cut',
          ),
        () => 'cut',
      );
      // Give the poll time to reach the server and wait there (nothing observable says it has; a
      // poll that came after the revoke would get 401, which the assertion below tells apart).
      await new Promise((r) => setTimeout(r, 1000));
      const revoked = await ApiKey.revoke(temp.id, ctx.server.conn);
      assert.equal(revoked.id, temp.id);
      await closed;
      assert.equal(await poll, 'cut');
      refused(await call(temp.key, 'GET', '/v1/machines'), 'unauthenticated', 'revoked key');
      await assert.rejects(Machine.list(conn(temp.key)), AuthenticationError);
      refused(await call(ctx.server.apiKey, 'DELETE', `/v1/keys/${temp.id}`), 'not_found', 'revoked twice');
      assert.equal(
        (await ApiKey.list(ctx.server.conn)).some((k) => k.id === temp.id),
        false,
      );
      // The tenant's other keys and its machines are untouched.
      await ok(acme.key, 'GET', `/v1/machines/${acmeMachine}`);
    });

    it('quotas: a tenant over its limit gets 429 quota_exceeded naming it; others have none by default', async () => {
      const first = await Machine.create({ ...conn(capped.key), vcpus: 1 });
      const err = await Machine.create({ ...conn(capped.key), vcpus: 1 }).then(
        () => assert.fail('a second machine is over the quota of 1'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof QuotaExceededError && err instanceof RateLimitError, String(err));
      assert.equal(err.status, 429);
      assert.deepEqual(
        { ...err.details },
        { tenant: 'capped', limit: 'machines', max: 1, used: 1, requested: 1 },
      );
      await first.kill();
      const vcpus = await call(capped.key, 'POST', '/v1/machines', { vcpus: 3 });
      refused(vcpus, 'quota_exceeded', 'over the vCPU quota');
      assert.equal(vcpus.body.error?.details?.limit, 'vcpus');
      const second = await Machine.create({ ...conn(capped.key), vcpus: 2 });
      await second.kill();
      // Acme has no quota: a second machine of its own is fine.
      const more = await Machine.create(conn(acme.key));
      await more.kill();
    });

    it("a warm pool's machines are its tenant's, checked out by it or by the operator", async () => {
      for (const key of [bravo.key, ctx.server.apiKey]) {
        const m = await ok(key, 'POST', '/v1/machines', { warm_pool: theirs.warm_pool });
        assert.equal(m.tenant, 'bravo');
        refused(await call(acme.key, 'GET', `/v1/machines/${m.id}`), 'machine_not_found', 'pool machine');
        await ok(bravo.key, 'DELETE', `/v1/machines/${m.id}`);
      }
    });

    it('CLI: nullspace key create, list and revoke with the operator’s key; a tenant’s key is refused', async () => {
      const created = await cli(ctx.server, [
        'key',
        'create',
        '--tenant',
        'delta',
        '--name',
        'from the cli',
        '--json',
      ]);
      assert.equal(created.code, 0, created.stderr);
      const k = JSON.parse(created.stdout) as { id: string; key: string; tenant: string; name: string };
      assert.deepEqual([k.tenant, k.name], ['delta', 'from the cli']);
      assert.match(k.key, /^ns_[A-Za-z0-9_-]{32}$/);
      const quiet = await cli(ctx.server, ['key', 'create', '--tenant', 'delta', '-q']);
      assert.match(quiet.stdout, /^ns_[A-Za-z0-9_-]{32}\n$/);

      const table = await cli(ctx.server, ['key', 'list']);
      assert.equal(table.code, 0, table.stderr);
      const row = table.stdout.split('\n').find((l) => l.startsWith(k.id));
      assert.ok(
        row?.includes('delta') && row.includes('from the cli') && row.includes(`…${k.key.slice(-4)}`),
        row,
      );
      assert.ok(!table.stdout.includes(k.key), 'the key itself is never listed');

      // The new key works, for delta's own machines only: it sees none of acme's.
      const asDelta = await cli({ ...ctx.server, apiKey: k.key }, ['machine', 'list', '-q']);
      assert.equal(asDelta.code, 0, asDelta.stderr);
      assert.equal(asDelta.stdout, '');
      const denied = await cli({ ...ctx.server, apiKey: k.key }, ['key', 'list']);
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, /^error: permission_denied: /);

      const revoked = await cli(ctx.server, ['key', 'revoke', k.id]);
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.equal(revoked.stdout, `${k.id} revoked\n`);
      const after = await cli({ ...ctx.server, apiKey: k.key }, ['machine', 'list']);
      assert.equal(after.code, 1);
      assert.match(after.stderr, /error: unauthenticated/);
      const again = await cli(ctx.server, ['key', 'revoke', k.id]);
      assert.match(again.stderr, /^error: not_found: /);
      const usage = await cli(ctx.server, ['key', 'create']);
      assert.equal(usage.code, 2);
    });

    async function upgradeStatus(path: string, key: string): Promise<number> {
      const ws = new WebSocket(`${ctx.server.url.replace('http', 'ws')}${path}`, {
        headers: { authorization: `Bearer ${key}` },
      });
      return new Promise((resolve) => {
        ws.once('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
          ws.terminate();
        });
        ws.once('open', () => {
          resolve(101);
          ws.close();
        });
        ws.once('error', () => resolve(-1));
      });
    }
  },
  { NULLSPACE_TENANT_QUOTAS: JSON.stringify({ capped: { machines: 1, vcpus: 2 } }) },
);
