/**
 * Issue 5 through the SDK and the CLI (the HTTP routes have their own tests): policies on create
 * and at run time, the preview helpers, and `nullspace machine network|preview|ssh`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { host } from '@nullspace/runtime';
import { InvalidArgumentError, Machine, redactPreviewUrl } from '@nullspace/sdk';
import { cli, describeWithServer, run } from './harness.js';

/** GET through the server's preview proxy, the way a browser would reach `url`. */
function get(serverUrl: string, url: string, headers: Record<string, string> = {}): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: new URL(serverUrl).port,
        path: u.pathname + u.search,
        headers: { host: u.host, ...headers },
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describeWithServer('network through the SDK and the CLI', (ctx) => {
  const home = mkdtempSync('/tmp/nst-home-');
  after(() => rmSync(home, { recursive: true, force: true }));

  it('SDK: policies on create and at run time, preview URLs from creation to revocation', async () => {
    await using m = await Machine.create({
      ...ctx.server.conn,
      network: {
        egress: { mode: 'custom', allowCidrs: ['203.0.113.7'], rateLimit: { pps: 100, burst: 20 } },
        maskRequestHost: 'localhost:${PORT}',
      },
    });
    let info = await m.getInfo();
    assert.deepEqual(info.network.egress, {
      mode: 'custom',
      allowCidrs: ['203.0.113.7/32'],
      denyCidrs: [],
      rateLimit: { pps: 100, burst: 20 },
    });
    assert.equal(info.network.maskRequestHost, 'localhost:${PORT}');
    assert.match(info.network.address ?? '', /^10\.213\./);
    info = await m.setNetwork({ internetAccess: false, allowOut: ['203.0.113.0/24'] });
    assert.equal(info.network.internetAccess, false);
    assert.equal(info.network.egress.mode, 'deny_all');
    info = await m.setNetwork({ egress: { mode: 'allow_all' } });
    assert.equal(info.network.internetAccess, true);
    await assert.rejects(
      m.setNetwork({ egress: { mode: 'custom', allowCidrs: ['2001:db8::/32'] } }),
      (e: unknown) => e instanceof InvalidArgumentError && /IPv6/.test(e.message),
    );

    await m.commands.run('python3 -m http.server 8000 >/dev/null 2>&1 &', { background: true });
    const ready = await m.waitForPreview(8000, { timeoutMs: 20_000 });
    assert.equal(ready.ready, true);
    const url = await m.getUrl(8000);
    assert.equal(await get(ctx.server.url, url), 200);
    assert.ok(!redactPreviewUrl(url).includes(new URL(url).searchParams.get('ns_token') ?? '-'));
    const ws = await m.getWebsocketUrl(8000);
    assert.match(ws, /^ws:\/\/8000-mch_[a-z2-7]{20}\.preview\.localhost:\d+\/\?ns_token=nspv_/);
    const grant = await m.createSignedPreviewUrl(8000, { expiresIn: 120 });
    assert.ok(grant.expiresAt.getTime() - Date.now() <= 120_000);
    const listed = await m.listPreviewUrls({ port: 8000 });
    assert.ok(listed.some((g) => g.id === grant.id));
    assert.equal(await get(ctx.server.url, grant.url), 200);
    const revoked = await m.revokePreviewUrl(grant.id);
    assert.equal(revoked.revoked, true);
    assert.equal(await get(ctx.server.url, grant.url), 403);
    const target = await m.createPreviewProxyTarget(8000);
    assert.equal(await get(ctx.server.url, target.upstreamUrl, target.headers), 200);
    await assert.rejects(
      m.waitForPreview(8999, { timeoutMs: 300 }),
      (e: { code?: string }) => e.code === 'timeout',
    );
  });

  it('CLI: machine network, machine preview, machine ssh', async () => {
    const created = await cli(ctx.server, [
      'machine',
      'create',
      '--json',
      '--egress',
      'custom',
      '--allow-cidr',
      '203.0.113.0/24',
      '--deny-cidr',
      '203.0.113.9',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const id = (JSON.parse(created.stdout) as { id: string }).id;
    const shown = await cli(ctx.server, ['machine', 'network', id, '--json']);
    assert.deepEqual((JSON.parse(shown.stdout) as { network: { egress: unknown } }).network.egress, {
      mode: 'custom',
      allow_cidrs: ['203.0.113.0/24'],
      deny_cidrs: ['203.0.113.9/32'],
      rate_limit: null,
    });
    const denied = await cli(ctx.server, ['machine', 'network', id, '--egress', 'deny_all']);
    assert.equal(denied.code, 0, denied.stderr);
    assert.match(denied.stdout, /deny_all/);
    const bad = await cli(ctx.server, [
      'machine',
      'network',
      id,
      '--egress',
      'custom',
      '--allow-cidr',
      '10.0.0.1/33',
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid_argument/);

    await cli(ctx.server, [
      'machine',
      'exec',
      id,
      '--background',
      '--',
      'python3',
      '-m',
      'http.server',
      '8000',
    ]);
    const preview = await cli(ctx.server, ['machine', 'preview', id, '8000', '--wait', '-q']);
    assert.equal(preview.code, 0, preview.stderr);
    const url = preview.stdout.trim();
    assert.match(url, /^http:\/\/8000-mch_/);
    assert.equal(await get(ctx.server.url, url), 200);
    const list = await cli(ctx.server, ['machine', 'preview', id, '--list', '--json']);
    const grants = JSON.parse(list.stdout) as
      | { id: string; token_hint: string }[]
      | { items: { id: string }[] };
    const items = Array.isArray(grants) ? grants : grants.items;
    assert.equal(items.length, 1);
    const revoke = await cli(ctx.server, ['machine', 'preview', id, '--revoke', items[0]?.id ?? '']);
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.equal(await get(ctx.server.url, url), 403);

    // ssh: the key is the user's, the certificate and known_hosts land in the CLI's config dir.
    const previousHome = process.env.HOME;
    process.env.HOME = home;
    try {
      await host('mkdir', ['-p', join(home, '.ssh')]);
      await host('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(home, '.ssh', 'id_ed25519')]);
      const printed = await cli(ctx.server, ['machine', 'ssh', id, '--print']);
      assert.equal(printed.code, 0, printed.stderr);
      const line = printed.stdout.trim();
      assert.match(
        line,
        new RegExp(`^ssh -p \\d+ .*CertificateFile=${home}/.config/nullspace/ssh/${id}-cert.pub`),
      );
      assert.match(
        readFileSync(join(home, '.config/nullspace/known_hosts'), 'utf8'),
        new RegExp(`^@cert-authority ${id} ssh-ed25519 `),
      );
      const r = await run('sh', ['-c', `${line} -o BatchMode=yes hostname`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), id.replace('_', '-'));
    } finally {
      process.env.HOME = previousHome;
    }
    await cli(ctx.server, ['machine', 'kill', id]);
  });
});
