/**
 * The fuzzed edge (issue 20): requests for every route of the route table, generated from its
 * schemas — valid values and their boundaries, invalid ones (wrong types, out of range, too long,
 * NUL, unknown and missing fields, junk JSON), huge strings, any Unicode, path tricks, random and
 * real ids — sent to a real server over HTTP, plus malformed HTTP and malformed WebSocket upgrades
 * and frames over raw sockets. What must hold for every one:
 *
 * - never a 5xx (`internal` or any other; only a `timeout` or `unavailable` the route declares, such
 *   as a port wait that ran out), never a hang (an answer within the deadline);
 * - an error is JSON with a stable code of `ERROR_STATUS`, sent with that code's status, and one
 *   the route declares (or the edge's own: unauthenticated, routing, invalid_argument);
 * - what is invalid by construction gets a 4xx; a valid request about things that exist gets a
 *   2xx or one of the route's declared 4xx (a state or cross-field refusal);
 * - the server still answers afterwards, holds no more sockets and file descriptors than before,
 *   and the harness's teardown finds nothing left on the host.
 *
 * Routes are generated from `ROUTES`, so a new route is fuzzed without editing this file. Valid
 * requests that create or change machines, snapshots, volumes, templates and pools run at most
 * NULLSPACE_FUZZ_BUDGET times per route (and the server's NULLSPACE_MAX_MACHINES bounds the
 * machines), against the "victim" machine only, so the "keeper" machine stays running for the
 * routes served inside it.
 *
 * Reproduce a run: NULLSPACE_FUZZ_SEED=<seed printed> NULLSPACE_FUZZ_RUNS=<runs>; the number of
 * runs per property is NULLSPACE_FUZZ_RUNS (default 300).
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { after, before, it } from 'node:test';
import { ERROR_STATUS, type ErrorCode, ROUTES, type RouteId, type RouteSpec } from '@nullspace/protocol';
import fc from 'fast-check';
import { type Hooks, type Invalid, type Node, anyText, invalid, valid } from './fuzz-schema.js';
import { api, describeWithServer } from './harness.js';

function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${raw}`);
  return n;
}

const RUNS = intEnv('NULLSPACE_FUZZ_RUNS', 300);
const SEED = intEnv('NULLSPACE_FUZZ_SEED', (Date.now() ^ (Math.random() * 2 ** 31)) | 0);
/** Valid requests per route that create or change machines and other resources. */
const BUDGET = intEnv('NULLSPACE_FUZZ_BUDGET', 2);
/** An answer's headers (or a whole JSON answer) later than this is a hang. */
const DEADLINE_MS = intEnv('NULLSPACE_FUZZ_DEADLINE_MS', 30_000);
/** Lifecycle operations (fork of 16, hibernate) on a 2-core host get longer. */
const SLOW_DEADLINE_MS = intEnv('NULLSPACE_FUZZ_SLOW_DEADLINE_MS', 120_000);
const MAX_MACHINES = 6;
const SURVEY = process.env.NULLSPACE_FUZZ_SURVEY === '1';
const REPRODUCE = `NULLSPACE_FUZZ_SEED=${SEED} NULLSPACE_FUZZ_RUNS=${RUNS}`;
console.log(`fuzz-edge: seed ${SEED}, ${RUNS} runs per property (reproduce: ${REPRODUCE})`);

const ROUTE_IDS = Object.keys(ROUTES) as RouteId[];
const spec = (id: RouteId): RouteSpec => ROUTES[id];
/** The codes of an agent-served route: those run inside a machine and change only its files and processes. */
const AGENT_CODES: readonly ErrorCode[] = ['unavailable', 'timeout', 'not_found', 'machine_transitioning'];
const servedInside = (s: RouteSpec) => AGENT_CODES.every((c) => s.errors.includes(c));
/** Valid requests of these create or change resources of the server: budgeted, victim only. */
const budgeted = (s: RouteSpec) =>
  s.method !== 'GET' && (!servedInside(s) || s.status === 201 || s.status === 202);
/** Routes that answer `unauthenticated` without the API key: a tenant's or the operator's. */
const needsKey = (s: RouteSpec) => (s.auth ?? 'key') === 'key' || s.auth === 'operator';
/** Codes the edge itself answers on any route. */
const EDGE_CODES: readonly ErrorCode[] = ['invalid_argument', 'not_found', 'method_not_allowed'];

/** One generated request and what it is. */
interface Req {
  route: RouteId;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** `invalid`: something in it is wrong by construction; `absent`: names something that does not exist. */
  expect: 'valid' | 'invalid' | 'absent';
  /** A raw path trick in a parameter: the request may reach another route (any declared 4xx). */
  tricked: boolean;
  why: string[];
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

describeWithServer(
  'the fuzzed edge',
  (ctx) => {
    const real: Record<string, string[]> = {};
    let keeper = '';
    let victim = '';
    let fdsBefore = 0;
    const used = new Map<RouteId, number>();
    const tally = new Map<string, number>();
    let cases = 0;

    /** Problems by kind (survey mode), with one request that showed it. */
    const found = new Map<string, string>();
    const count = (key: string) => tally.set(key, (tally.get(key) ?? 0) + 1);

    before(async () => {
      const create = async () =>
        ((await api(ctx.server, 'POST', '/v1/machines', { timeout: 3600 })) as { id: string }).id;
      keeper = await create();
      victim = await create();
      const vol = (await api(ctx.server, 'POST', '/v1/volumes', { name: 'fuzzvol', size_mb: 300 })) as {
        id: string;
      };
      const vat = (await api(ctx.server, 'POST', `/v1/machines/${keeper}/volumes`, {
        volume: vol.id,
        mount_path: '/mnt/fuzz',
      })) as { id: string };
      const proc = (await api(ctx.server, 'POST', `/v1/machines/${keeper}/commands`, {
        // A reader: stdin streamed to a process that never reads waits for it, by design.
        cmd: 'cat > /dev/null',
        shell: true,
        background: true,
        tag: 'fuzz-sleeper',
      })) as { pid: number };
      const pty = (await api(ctx.server, 'POST', `/v1/machines/${keeper}/pty`, {})) as { pid: number };
      await api(ctx.server, 'POST', `/v1/machines/${keeper}/files/mkdir`, { path: '/tmp/fz' });
      const watch = (await api(ctx.server, 'POST', `/v1/machines/${keeper}/files/watches`, {
        path: '/tmp/fz',
      })) as {
        id: string;
      };
      const grant = (await api(ctx.server, 'POST', `/v1/machines/${keeper}/preview_urls`, {
        port: 8080,
      })) as {
        id: string;
      };
      const snap = (await api(ctx.server, 'POST', `/v1/machines/${keeper}/snapshots`, {})) as { id: string };
      const signed = (await api(ctx.server, 'POST', `/v1/machines/${keeper}/files/signed_url`, {
        path: '/tmp/fz/signed.txt',
        op: 'write',
      })) as { url: string };
      const signedQuery = new URL(signed.url).searchParams;
      Object.assign(real, {
        id: [keeper, victim],
        pid: [String(proc.pid), 'fuzz-sleeper', String(pty.pid)],
        vol: [vol.id, 'fuzzvol'],
        volume: [vol.id, 'fuzzvol'],
        vat: [vat.id],
        wid: [watch.id],
        grant: [grant.id],
        snap: [snap.id],
        snapshot_id: [snap.id],
        ref: ['base'],
        template: ['base'],
        base: ['base'],
        port: ['8080'],
        sig: [signedQuery.get('sig') ?? ''],
        expires: [signedQuery.get('expires') ?? ''],
        op: [signedQuery.get('op') ?? ''],
      });
      fdsBefore = openFds(ctx.server.process.pid);
    });

    after(async () => {
      const rows = [...tally].sort(([a], [b]) => a.localeCompare(b));
      console.log(`fuzz-edge: ${cases} cases (seed ${SEED}); answers by route and status/code:`);
      for (const [k, n] of rows) console.log(`  ${k} ${n}`);
    });

    // ---- requests from the route table --------------------------------------------------------

    /** Parameters, query and body fields named like something the test made get its real values. */
    const hooksFor = (id: RouteId): Hooks => {
      const s = spec(id);
      return {
        real: (name) => {
          if (name === 'id') return budgeted(s) ? [victim] : real.id;
          return real[name];
        },
        tame: (name, node) => tame(s, name, node),
      };
    };

    const requestArb = (id: RouteId): fc.Arbitrary<Req> => {
      const s = spec(id);
      const hooks = hooksFor(id);
      const paramNames = Object.keys(s.params ?? {});
      const params = fc.tuple(
        ...paramNames.map((p) => paramArb(p, (s.params as Record<string, Node>)[p] as Node, hooks)),
      );
      const query = s.query
        ? queryArb(s.query as unknown as Node, hooks)
        : fc.constant({ text: '', bad: undefined });
      const body = bodyArb(s, hooks);
      const auth = fc.oneof(
        { weight: 12, arbitrary: fc.constant<'key' | 'none' | 'wrong'>('key') },
        { weight: 1, arbitrary: fc.constantFrom<'none' | 'wrong'>('none', 'wrong') },
      );
      return fc.tuple(params, query, body, auth).map(([ps, q, b, a]) => {
        const why: string[] = [];
        let path = s.path;
        let absent = false;
        let bad = false;
        let tricked = false;
        paramNames.forEach((name, i) => {
          const p = (ps as Param[])[i] as Param;
          path = path.replace(`{${name}}`, p.raw);
          if (p.kind === 'absent') absent = true;
          if (p.kind === 'invalid') bad = true;
          if (p.kind === 'trick') tricked = true;
          if (p.kind !== 'real') why.push(`${name}=${p.raw.slice(0, 60)} (${p.kind})`);
        });
        if (q.bad) {
          bad = true;
          why.push(`query ${q.bad}`);
        }
        if (b.bad) {
          bad = true;
          why.push(b.bad);
        }
        const headers: Record<string, string> = {};
        if (a === 'key') headers.authorization = `Bearer ${ctx.server.apiKey}`;
        else if (a === 'wrong') headers.authorization = 'Bearer not-the-key';
        if (needsKey(s) && a !== 'key') {
          bad = true;
          why.push(`auth ${a}`);
        }
        if (b.bytes !== undefined)
          headers['content-type'] = b.json ? 'application/json' : 'application/octet-stream';
        return {
          // fast-check prints a counterexample with this (a body can be 1 MiB)
          [fc.toStringMethod]: () =>
            `${s.method} ${path.slice(0, 200)} ${b.bytes ? `(${b.bytes.length} body bytes)` : ''} [${id}] ${why.join('; ')}`,
          route: id,
          method: s.method,
          path: path + (q.text ? `?${q.text}` : ''),
          headers,
          ...(b.bytes !== undefined ? { body: b.bytes } : {}),
          expect: bad ? 'invalid' : absent || tricked ? 'absent' : 'valid',
          tricked,
          why,
        };
      });
    };

    const send = async (r: Req): Promise<Answer> => {
      const s = spec(r.route);
      const deadline = budgeted(s) ? SLOW_DEADLINE_MS : DEADLINE_MS;
      return request(ctx.server.url, r.method, r.path, r.headers, r.body, deadline, streams(s));
    };

    /**
     * Checks one answer. Strict (the default): the first problem fails the property, with its
     * seed and path. NULLSPACE_FUZZ_SURVEY=1: every kind of problem (route, status, code, what
     * was sent) is collected and the last test fails listing them all, to fix many in one run.
     */
    const judge = (r: Req, a: Answer): void => {
      const s = spec(r.route);
      const what = `${r.method} ${r.path.slice(0, 300)} [${r.route}, ${r.expect}${r.why.length ? `: ${r.why.join('; ')}` : ''}] → ${a.status} ${a.body.subarray(0, 400).toString()}`;
      cases++;
      const code = a.status >= 400 ? errorCode(a) : undefined;
      count(`${r.route} ${a.status}${code ? ` ${code}` : ''}`);
      const declared: readonly string[] = [
        ...s.errors,
        ...EDGE_CODES,
        ...(needsKey(s) ? ['unauthenticated' as const] : []),
      ];
      const problems: [string, string][] = [];
      if (!a.headers['x-request-id']) problems.push(['no x-request-id', 'no x-request-id']);
      // A wait that ran out (`timeout`) or a machine that cannot answer now (`unavailable`) is the
      // answer a route declares for it, not the server failing; anything else at 5xx is.
      const declaredWait = (code === 'timeout' || code === 'unavailable') && s.errors.includes(code);
      if (a.status >= 500 && !declaredWait) problems.push([`a ${a.status} ${code}`, 'a 5xx']);
      if (a.status >= 400 && code === undefined) problems.push(['no code', 'an error without a JSON code']);
      if (code !== undefined && a.status !== ERROR_STATUS[code])
        problems.push([`${code} ${a.status}`, `code ${code} with status ${a.status}`]);
      if (code !== undefined && !r.tricked && !declared.includes(code))
        problems.push([`undeclared ${code}`, `${code} is not declared by ${r.route}`]);
      // A path trick may land on another route, where the request can be fine.
      if (r.expect !== 'valid' && !r.tricked && a.status < 400)
        problems.push([
          `${r.expect} ${a.status} (${r.why.join('; ').slice(0, 80)})`,
          `${r.expect} but answered ${a.status}`,
        ]);
      for (const [key, message] of problems) {
        if (!SURVEY) assert.fail(`${message}: ${what}`);
        const k = `${r.route}: ${key}`;
        if (!found.has(k)) found.set(k, what);
      }
    };

    it('answers every route of the table, from its schema, with 2xx or a declared 4xx, never a 5xx or a hang', async () => {
      const arb = fc.constantFrom(...ROUTE_IDS).chain((id) => requestArb(id));
      await check(
        fc.asyncProperty(arb, async (r) => {
          const s = spec(r.route);
          if (r.expect === 'valid' && budgeted(s)) {
            const n = used.get(r.route) ?? 0;
            if (n >= BUDGET) return; // this route's share of real creates and state changes is spent
            used.set(r.route, n + 1);
          }
          judge(r, await send(r));
        }),
      );
      await stillAnswering(ctx.server.url);
    });

    it('gives every route a valid request with its real resources, as well as a random one', async () => {
      // The first property picks routes at random; this one walks every route in order, so each is
      // reached with generated valid values about things that exist (the budget still applies).
      for (const id of ROUTE_IDS) {
        // Only routes whose every parameter names something the test made (not a pool, a code
        // context or a desktop window: the base template has none).
        const params = Object.keys(spec(id).params ?? {});
        if (!params.every((p) => (hooksFor(id).real?.(p) ?? []).length > 0)) continue;
        const valids = fc.sample(
          requestArb(id).filter((r) => r.expect === 'valid'),
          { seed: SEED, numRuns: 2 },
        );
        for (const r of valids) {
          if (budgeted(spec(id))) {
            const n = used.get(id) ?? 0;
            if (n >= BUDGET) continue;
            used.set(id, n + 1);
          }
          judge(r, await send(r));
        }
      }
      await stillAnswering(ctx.server.url);
    });

    it('answers malformed HTTP with a 4xx and keeps answering', async () => {
      const { port } = new URL(ctx.server.url);
      const paths = fc.oneof(
        fc.constantFrom(...ROUTE_IDS).map((id) => spec(id).path),
        fc.constantFrom(
          '//',
          '///',
          '//x',
          '//[',
          '/%',
          '/%%',
          '/v1/machines/%ZZ',
          '*',
          'http://[',
          '/v1/../../etc/passwd',
          '/v1/machines/%00',
          '/\\\\',
        ),
        anyText(40).map((t) => `/${encodeURIComponent(t)}`),
      );
      const headerValue = fc.oneof(
        anyText(30).map((t) => t.replace(/[\r\n\0]/g, '')),
        fc.constantFrom('', ' ', 'x'.repeat(9000)),
      );
      const raw = fc.record({
        method: fc.constantFrom(
          'GET',
          'POST',
          'PUT',
          'DELETE',
          'PATCH',
          'OPTIONS',
          'HEAD',
          'CONNECT',
          'BREW',
          'get',
        ),
        path: paths,
        version: fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1', 'HTTP/1.1'),
        host: fc.oneof(
          fc.constant(`127.0.0.1:${port}`),
          fc.constant(`8080-mch_aaaaaaaaaaaaaaaaaaaa.preview.localhost:${port}`),
          headerValue,
        ),
        extra: fc.array(
          fc.tuple(
            fc.constantFrom(
              'content-length',
              'transfer-encoding',
              'x-api-key',
              'authorization',
              'content-type',
              'upgrade',
              'connection',
              'expect',
              'x-junk',
            ),
            headerValue,
          ),
          { maxLength: 3 },
        ),
        body: fc.oneof(
          fc.constant(''),
          anyText(50),
          fc.constant('5\r\nhello\r\n0\r\n\r\n'),
          fc.constant('zz\r\n'),
        ),
      });
      await check(
        fc.asyncProperty(raw, async (q) => {
          const lines = [
            `${q.method} ${q.path} ${q.version}`,
            `Host: ${q.host}`,
            ...q.extra.map(([k, v]) => `${k}: ${v}`),
            'Connection: close',
            '',
            q.body,
          ];
          const text = Buffer.from(lines.join('\r\n'), 'utf8');
          const head = await rawExchange(Number(port), text, DEADLINE_MS);
          cases++;
          const status = /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1];
          // A request the parser cannot read may be closed without an answer only if nothing came.
          if (status === undefined) {
            assert.equal(
              head,
              '',
              `not an HTTP answer to ${JSON.stringify(text.toString().slice(0, 300))}: ${head.slice(0, 200)}`,
            );
          } else {
            const sent = JSON.stringify(text.toString().slice(0, 300));
            assert.ok(Number(status) < 500, `a ${status} for ${sent}: ${head.slice(0, 300)}`);
            assert.match(head, /x-request-id: req_/i, `no request id for ${sent}: ${head.slice(0, 300)}`);
            if (Number(status) >= 400 && q.method !== 'HEAD')
              assert.match(head, /"code":"[a-z_]+"/, `no error code for ${sent}: ${head.slice(0, 300)}`);
          }
          count(`raw-http ${status ?? 'closed'}`);
          await stillAnswering(ctx.server.url);
        }),
      );
    });

    it('answers malformed WebSocket upgrades and frames without falling over', async () => {
      const { port } = new URL(ctx.server.url);
      const wsRoutes = ROUTE_IDS.filter((id) => spec(id).kind === 'websocket');
      assert.ok(wsRoutes.length > 0, 'the table has WebSocket routes');
      const upgrade = fc.record({
        route: fc.constantFrom(...wsRoutes),
        id: fc.constantFrom(keeper, 'mch_aaaaaaaaaaaaaaaaaaaa', '%ZZ'),
        key: fc.constantFrom('dGhlIHNhbXBsZSBub25jZQ==', '', 'short', '!!!!'),
        version: fc.constantFrom('13', '8', '', 'x'),
        upgradeHeader: fc.constantFrom('websocket', 'WebSocket', 'h2c', ''),
        auth: fc.constantFrom('key', 'key', 'none'),
        frames: fc.array(
          fc.oneof(
            fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
            // a text frame of invalid UTF-8, unmasked (clients must mask)
            fc.constant(Buffer.from([0x81, 0x02, 0xc3, 0x28])),
            // a masked frame that claims 2^63 bytes
            fc.constant(
              Buffer.from([0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]),
            ),
            // a fragmented ping (control frames must not be fragmented)
            fc.constant(Buffer.from([0x09, 0x80, 1, 2, 3, 4])),
            // a reserved opcode, masked
            fc.constant(Buffer.from([0x83, 0x80, 1, 2, 3, 4])),
            // a masked binary frame [kind 0][junk JSON] (a control message the route cannot read)
            fc
              .uint8Array({ maxLength: 32 })
              .map((b) => maskedFrame(0x82, Buffer.concat([Buffer.from([0]), Buffer.from(b)]))),
            fc.constant(maskedFrame(0x82, Buffer.from('\u0000{"type":"signal","signal":"NOPE"}'))),
          ),
          { maxLength: 4 },
        ),
      });
      await check(
        fc.asyncProperty(upgrade, async (u) => {
          const s = spec(u.route);
          const path = s.path
            .replace('{id}', u.id)
            .replace(/\{(\w+)\}/g, (_, name: string) => real[name]?.[0] ?? 'x');
          const head = [
            `GET ${path} HTTP/1.1`,
            `Host: 127.0.0.1:${port}`,
            ...(u.upgradeHeader ? [`Upgrade: ${u.upgradeHeader}`, 'Connection: Upgrade'] : []),
            ...(u.key ? [`Sec-WebSocket-Key: ${u.key}`] : []),
            ...(u.version ? [`Sec-WebSocket-Version: ${u.version}`] : []),
            ...(u.auth === 'key' ? [`Authorization: Bearer ${ctx.server.apiKey}`] : []),
            '',
            '',
          ].join('\r\n');
          const answer = await rawExchange(
            Number(port),
            Buffer.concat([Buffer.from(head), ...u.frames]),
            DEADLINE_MS,
          );
          cases++;
          const status = /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1];
          assert.ok(status !== undefined, `no HTTP answer to ${head}: ${answer.slice(0, 200)}`);
          assert.ok(Number(status) < 500, `a ${status} for ${head}: ${answer.slice(0, 400)}`);
          count(`websocket ${u.route} ${status}`);
          await stillAnswering(ctx.server.url);
        }),
      );
    });

    it('found nothing wrong (with NULLSPACE_FUZZ_SURVEY=1: every kind of problem seen)', () => {
      const all = [...found].map(([k, v]) => `${k}\n      e.g. ${v}`);
      assert.equal(all.length, 0, `${all.length} kinds of problem:\n  ${all.join('\n  ')}`);
    });

    it('leaves nothing behind at the edge: the server holds no more sockets or descriptors', async () => {
      await stillAnswering(ctx.server.url);
      // Connections the fuzz closed may take a moment to be reaped; count, never time.
      let fds = 0;
      for (let i = 0; i < 50; i++) {
        fds = openFds(ctx.server.process.pid);
        if (fds <= fdsBefore + 16) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(
        fds <= fdsBefore + 16,
        `the server held ${fdsBefore} descriptors before the fuzz and ${fds} after`,
      );
      const alive = (await api(ctx.server, 'GET', '/v1/machines?limit=1000')) as {
        items: { status: string }[];
      };
      const live = alive.items.filter((m) => m.status !== 'killed' && m.status !== 'failed');
      assert.ok(live.length <= MAX_MACHINES, `${live.length} machines alive (at most ${MAX_MACHINES})`);
    });
  },
  { NULLSPACE_MAX_MACHINES: String(MAX_MACHINES) },
);

// ---- generators -----------------------------------------------------------------------------

/** Runs a property with the run's seed; a failure names the seed and the counterexample's path. */
async function check<T>(property: fc.IAsyncProperty<T>): Promise<void> {
  const path = process.env.NULLSPACE_FUZZ_PATH;
  const out = await fc.check(property, {
    seed: SEED,
    numRuns: RUNS,
    ...(path ? { path } : {}),
    endOnFailure: true,
  });
  if (out.failed)
    throw new Error(
      `${String(out.errorInstance)}\n${fc.defaultReportMessage(out)}\nreproduce: ${REPRODUCE} NULLSPACE_FUZZ_PATH=${out.counterexamplePath}`,
    );
}

/** Tamed valid values: long polls short, sizes small, and what a write or DELETE touches in scratch space. */
function tame(s: RouteSpec, name: string, node: Node): fc.Arbitrary<unknown> | undefined {
  if ((node.type === 'integer' || node.type === 'number') && /(^|_)(wait|timeout|delay)_ms$/.test(name)) {
    const min = node.minimum ?? 0;
    return fc.integer({ min, max: Math.max(min, Math.min(node.maximum ?? 1500, 1500)) });
  }
  if (node.type === 'integer' && ['size_mb', 'disk_mb'].includes(name))
    return fc.integer({ min: node.minimum ?? 300, max: Math.max(node.minimum ?? 300, 1024) });
  if (node.type === 'integer' && name === 'size') return fc.constant(node.minimum ?? 1);
  if (node.type === 'integer' && name === 'depth') return fc.integer({ min: node.minimum ?? 1, max: 3 });
  // Reads go anywhere in the machine (/, /proc, ../..); writes, moves and removals stay in /tmp/fz.
  if (s.method !== 'GET' && node.type === 'string' && ['path', 'from', 'to', 'paths', 'cwd'].includes(name))
    return scratchPath();
  if (s.method !== 'GET' && node.type === 'array' && name === 'paths')
    return fc.array(scratchPath(), { maxLength: 3 });
  return undefined;
}

function scratchPath(): fc.Arbitrary<string> {
  const segment = fc.oneof(
    fc
      .string({ minLength: 1, maxLength: 12 })
      .filter((t) => !t.includes('/') && !t.includes('\0') && t !== '.' && t !== '..'),
    fc
      .string({ unit: 'grapheme', minLength: 1, maxLength: 6 })
      .filter((t) => !t.includes('/') && !t.includes('\0')),
  );
  return fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => `/tmp/fz/${parts.join('/')}`);
}

interface Param {
  raw: string;
  kind: 'real' | 'absent' | 'invalid' | 'trick';
}

const PREFIXES: Record<string, string> = {
  id: 'mch_',
  vol: 'vol_',
  vat: 'vat_',
  wid: 'fwt_',
  grant: 'pvg_',
  snap: 'snap_',
  pool: 'twp_',
  ctx: 'ctx_',
  execution: 'cex_',
  artifact: 'art_',
  recording: 'rec_',
};

function paramArb(name: string, node: Node, hooks: Hooks): fc.Arbitrary<Param> {
  const realValues = hooks.real?.(name) ?? [];
  const options: fc.WeightedArbitrary<Param>[] = [];
  if (realValues.length > 0)
    options.push({
      weight: 8,
      arbitrary: fc
        .constantFrom(...realValues)
        .map((v) => ({ raw: encodeURIComponent(String(v)), kind: 'real' as const })),
    });
  if (node.type === 'integer') {
    options.push({
      weight: 2,
      arbitrary: fc
        .integer({ min: node.minimum ?? 0, max: node.maximum ?? 2 ** 31 })
        .map((n) => ({ raw: String(n), kind: 'real' as const })),
    });
    options.push({
      weight: 2,
      arbitrary: fc
        .oneof(
          fc.constantFrom(
            String((node.minimum ?? 0) - 1),
            String((node.maximum ?? 2 ** 31) + 1),
            'abc',
            '-1',
            '1.5',
            '1e3',
            '0x50',
            '%D9%A3',
            ' 80',
            '99999999999999999999',
          ),
          anyText(10)
            .filter((t) => t.length > 0 && !/^\d+$/.test(t))
            .map(encodeURIComponent),
        )
        .map((raw) => ({ raw, kind: 'invalid' as const })),
    });
  } else {
    const prefix = PREFIXES[name] ?? '';
    options.push({
      weight: 2,
      arbitrary: fc
        .stringMatching(/^[a-z2-7]{20}$/)
        .map((t) => ({ raw: `${prefix}${t}`, kind: 'absent' as const })),
    });
    options.push({
      weight: 2,
      arbitrary: anyText(40)
        .filter((t) => t.length > 0 && !realValues.includes(t))
        .map((t) => ({ raw: encodeURIComponent(t), kind: 'absent' as const })),
    });
    options.push({
      weight: 1,
      arbitrary: fc
        .integer({ min: 1000, max: 9000 })
        .map((n) => ({ raw: 'x'.repeat(n), kind: 'absent' as const })),
    });
    options.push({
      weight: 2,
      arbitrary: fc
        .constantFrom(
          '..',
          '.',
          '%2e%2e',
          '%2E',
          '%2F',
          '%2f..%2f',
          '%00',
          '%ZZ',
          '%',
          '%E0%A4%A',
          '%C0%AF',
          '~',
          '*',
          '%20',
          '+',
          '%5C..%5C',
          '',
        )
        .map((raw) => ({ raw, kind: 'trick' as const })),
    });
  }
  return fc.oneof(...options);
}

function queryText(node: Node, value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap((v) => queryText(node.items ?? {}, v));
  if (typeof value === 'boolean') return [value ? 'true' : 'false'];
  return [String(value)];
}

function queryArb(node: Node, hooks: Hooks): fc.Arbitrary<{ text: string; bad: string | undefined }> {
  const props = node.properties ?? {};
  const names = Object.keys(props);
  const encode = (pairs: [string, string][]) =>
    pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  const validPairs = fc
    .tuple(...names.map((k) => fc.option(valid(props[k], hooks, k), { nil: undefined, freq: 3 })))
    .map((vals) => {
      const pairs: [string, string][] = [];
      names.forEach((k, i) => {
        const v = vals[i];
        // null means absent in a body; a query has no null, so it is left out
        if (v !== undefined && v !== null) for (const t of queryText(props[k] as Node, v)) pairs.push([k, t]);
      });
      return pairs;
    });
  const good = validPairs.map((pairs) => ({ text: encode(pairs), bad: undefined }));
  const bads: fc.Arbitrary<{ text: string; bad: string | undefined }>[] = [
    fc
      .tuple(
        validPairs,
        fc
          .string({ minLength: 1, maxLength: 10 })
          .filter((k) => !names.includes(k) && !k.startsWith('metadata.')),
      )
      .map(([pairs, k]) => ({ text: encode([...pairs, [k, '1']]), bad: `unknown parameter ${k}` })),
  ];
  for (const k of names) {
    const p = props[k] as Node;
    const inv = invalid(p, hooks, k, k);
    // A query's values are text: only what stays wrong as text (not a number written as text).
    if (inv)
      bads.push(
        fc
          .tuple(validPairs, inv)
          .filter(([, b]) => stillInvalidAsText(p, b))
          .map(([pairs, b]) => ({
            text: encode([
              ...pairs.filter(([n]) => n !== k),
              ...queryText(p, b.value).map((t): [string, string] => [k, t]),
            ]),
            bad: b.why,
          })),
      );
    if (p.type === 'integer' || p.type === 'number')
      bads.push(
        fc
          .tuple(
            validPairs,
            fc.constantFrom('abc', '-1', '1.5', '1e3', ' 1', '0x10', '12345678901234567', ''),
          )
          .map(([pairs, t]) => ({
            text: encode([...pairs.filter(([n]) => n !== k), [k, t]]),
            bad: `${k}=${t}`,
          })),
      );
    if (p.type !== 'array')
      bads.push(
        validPairs.map((pairs) => ({
          text: encode([...pairs.filter(([n]) => n !== k), [k, '1'], [k, '1']]),
          bad: `${k} twice`,
        })),
      );
  }
  bads.push(
    validPairs.map((pairs) => ({
      text: `${encode(pairs)}&${names[0] ?? 'x'}=%ZZ%00`,
      bad: 'a NUL in a value',
    })),
  );
  return fc.oneof({ weight: 3, arbitrary: good }, { weight: 2, arbitrary: fc.oneof(...bads) });
}

/** Whether an invalid value still is when written as query text (`1` and `"1"` read the same). */
function stillInvalidAsText(node: Node, b: Invalid): boolean {
  const v = b.value;
  if (typeof v === 'object' && v !== null) return false; // objects and arrays have no query text
  if (node.type === 'string' && typeof v !== 'string') return false; // a number as text is a string
  if (node.type === 'boolean' && typeof v !== 'string') return false;
  if ((node.type === 'integer' || node.type === 'number') && typeof v === 'boolean') return true;
  return true;
}

interface Body {
  bytes: Buffer | undefined;
  json: boolean;
  bad: string | undefined;
}

function bodyArb(s: RouteSpec, hooks: Hooks): fc.Arbitrary<Body> {
  if (s.bodyBytes)
    return fc
      .oneof(
        { weight: 6, arbitrary: fc.uint8Array({ maxLength: 4096 }) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 1 << 20 }).map((n) => new Uint8Array(n)) },
      )
      .map((b) => ({ bytes: Buffer.from(b), json: false, bad: undefined }));
  if (!s.body) return fc.constant({ bytes: undefined, json: false, bad: undefined });
  const schema = s.body as unknown as Node;
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  const good: fc.Arbitrary<Body>[] = [
    valid(schema, hooks).map((v) => ({ bytes: json(v), json: true, bad: undefined })),
  ];
  if (!s.bodyRequired) good.push(fc.constant({ bytes: undefined, json: false, bad: undefined }));
  const bad: fc.Arbitrary<Body>[] = [
    fc
      .constantFrom(
        '{',
        '{"a":',
        '[1,',
        'nul',
        '{"a":1}}',
        '\u0000',
        '{"a":"\\ud800"',
        '\ufeff{}',
        "{'a':1}",
        '{"a":1e400',
      )
      .map((t) => ({ bytes: Buffer.from(t), json: true, bad: `junk JSON ${JSON.stringify(t)}` })),
    fc
      .constantFrom('[]', '1', '"x"', 'true', '[{}]')
      .map((t) => ({ bytes: Buffer.from(t), json: true, bad: `a body of ${t}` })),
  ];
  const inv = invalid(schema, hooks);
  if (inv) bad.push(inv.map((b) => ({ bytes: json(b.value), json: true, bad: b.why })));
  if (s.bodyRequired) bad.push(fc.constant({ bytes: undefined, json: false, bad: 'no body' }));
  return fc.oneof({ weight: 3, arbitrary: fc.oneof(...good) }, { weight: 2, arbitrary: fc.oneof(...bad) });
}

// ---- the wire -------------------------------------------------------------------------------

/** Whether a route's success is a stream whose end the test does not wait for. */
function streams(s: RouteSpec): boolean {
  return s.kind === 'bytes' || s.kind === 'ndjson' || s.kind === 'websocket' || s.frameStream === true;
}

/**
 * One request on its own connection. JSON answers are read whole; a streaming success is read
 * for its first 256 KiB (a read of /dev/zero never ends, and need not). No headers within the
 * deadline is a hang.
 */
function request(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer | undefined,
  deadlineMs: number,
  streaming: boolean,
): Promise<Answer> {
  const url = new URL(base);
  // What Node's client refuses to put in a request line (spaces, controls, beyond Latin-1) goes
  // percent-encoded; raw bytes of that kind are the raw-socket properties' to send.
  const target = path.replace(/[^\u0021-\u00ff]/gu, (c) => {
    try {
      return encodeURIComponent(c);
    } catch {
      return '%EF%BF%BD'; // a lone surrogate: U+FFFD
    }
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`a hang: no answer to ${method} ${path.slice(0, 300)} in ${deadlineMs} ms`));
    }, deadlineMs);
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: target,
        agent: false,
        headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const finish = () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        };
        const json = (res.headers['content-type'] ?? '').startsWith('application/json');
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= 1 << 20) chunks.push(c);
          if (streaming && !json && size >= 256 * 1024) {
            res.destroy();
            finish();
          }
        });
        res.on('end', finish);
        res.on('error', () => finish());
        res.on('close', finish);
      },
    );
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${method} ${path.slice(0, 300)}: ${err.message}`));
    });
    req.end(body);
  });
}

/** Writes bytes on a raw connection and returns what came back until the server closed it (or 0.5 s of silence). */
function rawExchange(port: number, bytes: Buffer, deadlineMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    let quiet: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      clearTimeout(quiet);
      socket.destroy();
      resolve(got);
    };
    const timer = setTimeout(() => {
      socket.destroy();
      if (got === '')
        reject(
          new Error(
            `a hang: no answer in ${deadlineMs} ms to ${JSON.stringify(bytes.toString().slice(0, 300))}`,
          ),
        );
      else resolve(got);
    }, deadlineMs);
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      // Once the answer's head is in, 0.5 s of silence ends the exchange (a WebSocket stays open).
      clearTimeout(quiet);
      if (got.includes('\r\n\r\n')) quiet = setTimeout(done, 500);
    });
    socket.on('error', () => undefined);
    socket.on('close', done);
    socket.write(bytes);
  });
}

function maskedFrame(first: number, payload: Buffer): Buffer {
  const mask = Buffer.from([0x11, 0x22, 0x33, 0x44]);
  const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
  const len =
    payload.length < 126
      ? Buffer.from([0x80 | payload.length])
      : Buffer.from([0x80 | 126, payload.length >> 8, payload.length & 255]);
  return Buffer.concat([Buffer.from([first]), len, mask, masked]);
}

function errorCode(a: Answer): ErrorCode | undefined {
  try {
    const code = (JSON.parse(a.body.toString()) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' && Object.hasOwn(ERROR_STATUS, code) ? (code as ErrorCode) : undefined;
  } catch {
    return undefined;
  }
}

async function stillAnswering(base: string): Promise<void> {
  const a = await request(base, 'GET', '/healthz', {}, undefined, DEADLINE_MS, false);
  assert.equal(a.status, 200, `the server stopped answering: /healthz → ${a.status}`);
}

function openFds(pid: number | undefined): number {
  return pid === undefined ? 0 : readdirSync(`/proc/${pid}/fd`).length;
}
