/**
 * Issue 6, metrics: a machine's counters from its cgroups, disk and link, recent samples, the
 * server's Prometheus text — read from real machines doing real work.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Machine } from '@nullspace/sdk';
import { api, cli, describeWithServer, eventually } from './harness.js';

const MiB = 1024 * 1024;

describeWithServer(
  'metrics',
  (ctx) => {
    it("shows a CPU-burning machine's CPU and a memory-hungry one's memory, disk and network, with samples", async () => {
      await using burner = await Machine.create({ ...ctx.server.conn, vcpus: 1 });
      await using hungry = await Machine.create({ ...ctx.server.conn, memoryMb: 512 });
      await burner.commands.run('python3 -c "while True: pass" &', { background: true });
      await hungry.commands.run(
        `python3 -c "import time; b = bytearray(${200 * MiB}); b[::4096] = b'x' * (len(b) // 4096); time.sleep(600)" &`,
        { background: true },
      );
      const busy = await eventually(async () => {
        const m = await burner.getMetrics();
        return m.cpuPercent !== null && m.cpuPercent > 50 ? m : undefined;
      }, 'the burner to show CPU use');
      // It keeps burning: its CPU time goes on growing (read again until it has, never timed).
      await eventually(
        async () => (await burner.getMetrics()).cpuSeconds > busy.cpuSeconds + 0.5,
        'CPU time to grow',
      );
      const full = await eventually(async () => {
        const m = await hungry.getMetrics();
        return m.memoryBytes > 190 * MiB ? m : undefined;
      }, 'the hungry machine to show its memory');
      assert.equal(full.memoryLimitBytes, 512 * MiB);
      const idle = await burner.getMetrics();
      assert.ok(
        idle.memoryBytes < full.memoryBytes - 150 * MiB,
        `${idle.memoryBytes} vs ${full.memoryBytes}`,
      );
      const sampled = await eventually(async () => {
        const m = await hungry.getMetrics();
        return m.samples.length >= 3 ? m : undefined;
      }, 'three samples');
      assert.ok(sampled.samples.every((s, i) => i === 0 || s.at > (sampled.samples[i - 1]?.at ?? s.at)));
      assert.ok(sampled.samples.some((s) => s.memoryBytes > 190 * MiB));

      // Disk and network counters move with what the machine does.
      const before = await hungry.getMetrics();
      await hungry.commands.run('head -c 50000000 /dev/urandom > /workspace/blob && sync');
      await hungry.commands.run('python3 -m http.server 8000 >/dev/null 2>&1 &', { background: true });
      await hungry.waitForPreview(8000);
      const url = new URL(await hungry.getUrl(8000));
      for (let i = 0; i < 3; i++)
        await fetch(`${ctx.server.url}/${url.search}`, { headers: { host: url.host } }).then((r) => r.text());
      const after = await hungry.getMetrics();
      assert.ok(
        after.diskUsedBytes - before.diskUsedBytes > 40_000_000,
        `${before.diskUsedBytes} → ${after.diskUsedBytes}`,
      );
      assert.ok(
        after.networkRxPackets > before.networkRxPackets && after.networkTxBytes > before.networkTxBytes,
      );
      assert.ok(after.diskTotalBytes > 1_000_000_000);

      // Paused: still readable; killed: not.
      await burner.pause();
      assert.equal((await Machine.getMetricsById(burner.id, ctx.server.conn)).status, 'paused');
      const shown = await cli(ctx.server, ['machine', 'metrics', hungry.id]);
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, /^memory\s+\d+(\.\d+)? MB of 512 MB/m);
      await burner.kill();
      await assert.rejects(burner.getMetrics(), (e: { code?: string }) => e.code === 'invalid_state');
    });

    it('serves the server metrics in Prometheus text format, with the API key', async () => {
      const text = await fetch(`${ctx.server.url}/metrics`, {
        headers: { authorization: `Bearer ${ctx.server.apiKey}` },
      });
      assert.equal(text.status, 200);
      assert.match(text.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const body = await text.text();
      assert.match(body, /^# TYPE nullspace_machines gauge$/m);
      assert.match(body, /^nullspace_machines\{state="killed"\} [1-9]\d*$/m);
      assert.match(body, /^nullspace_machine_create_seconds_count [1-9]\d*$/m);
      assert.match(body, /^nullspace_machine_create_seconds_bucket\{le="\+Inf"\} [1-9]\d*$/m);
      // The server's own memory: its resident set and its heap in use, both non-zero, the heap inside the resident set.
      const rss = Number(/^process_resident_memory_bytes (\d+)$/m.exec(body)?.[1]);
      const heapUsed = Number(/^nodejs_heap_size_used_bytes (\d+)$/m.exec(body)?.[1]);
      assert.ok(heapUsed > 0 && rss > heapUsed, `rss ${rss}, heap used ${heapUsed}`);
      assert.equal((await fetch(`${ctx.server.url}/metrics`)).status, 401);
      await assert.rejects(
        api(ctx.server, 'GET', '/v1/machines/mch_aaaaaaaaaaaaaaaaaaaa/metrics'),
        (e: { code?: string }) => e.code === 'machine_not_found',
      );
    });
  },
  { NULLSPACE_METRICS_INTERVAL_MS: '300' },
);
