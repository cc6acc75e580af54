import {
  AGENT_ROUTES,
  type AgentPtyRequest,
  type AgentRunRequest,
  CodedError,
  FRAME,
  STREAM_CONTENT_TYPE,
  STREAM_KEEPALIVE_MS,
  type StreamControl,
  type StreamEvent,
  encodeEventFrame,
  encodeEventMessage,
  encodeFrame,
  encodeMessage,
  parseProcessSelector,
} from '@nullspace/protocol/core';
import type { WebSocket } from 'ws';
import type { OutChunk } from './output-log.js';
import type { Proc, ProcessTable, Subscriber } from './processes.js';
import { type AgentRouter, RESPONDED } from './router.js';

/** A reader with more than this much unsent output pauses the process's output. */
const HIGH_WATER = 1024 * 1024;

/**
 * Hands a reader what it missed since `offset` (a gap event if some of it is no longer kept),
 * then everything new until the process exits. Runs synchronously, so no output falls between.
 */
function attach(proc: Proc, sub: Subscriber, offset: number): void {
  const { from, chunks } = proc.output.since(offset);
  sub.event({ type: 'start', pid: proc.pid, tag: proc.tag, offset: from });
  if (from > offset) sub.event({ type: 'gap', from: offset, to: from });
  for (const c of chunks) sub.output(c);
  if (proc.exit) {
    const e = proc.exit;
    sub.event({
      type: 'exit',
      pid: proc.pid,
      exit_code: e.exit_code,
      signal: e.signal,
      timed_out: e.timed_out,
      duration_ms: e.ended_at.getTime() - proc.startedAt.getTime(),
      offset: proc.output.end,
    });
    sub.end();
    return;
  }
  proc.subscribers.add(sub);
  proc.flowControl();
}

function control(proc: Proc, msg: StreamControl): void {
  if (msg.type === 'close_stdin') proc.closeStdin();
  else if (msg.type === 'signal') proc.signal(msg.signal);
  else if (msg.type === 'resize') proc.resize(msg.cols, msg.rows);
}

export function addProcessRoutes(router: AgentRouter, table: ProcessTable): void {
  const sel = (raw: string | undefined) => table.get(parseProcessSelector(raw ?? ''));

  router.add('POST', AGENT_ROUTES.processes, async ({ json, res }) => {
    const req = (await json()) as AgentRunRequest;
    const started = await table.start(req);
    if (started.proc === undefined) {
      const r = await started.result;
      if (!req.stream) return r;
      // A program that is missing or not executable, as a stream: what a shell would print and exit with.
      res.writeHead(200, { 'content-type': STREAM_CONTENT_TYPE, 'cache-control': 'no-store' });
      res.write(encodeEventFrame({ type: 'start', pid: r.pid, tag: null, offset: 0 }));
      res.write(encodeFrame(FRAME.stderr, Buffer.from(r.stderr)));
      const { exit_code, signal, timed_out, duration_ms } = r;
      res.end(
        encodeEventFrame({
          type: 'exit',
          pid: r.pid,
          exit_code,
          signal,
          timed_out,
          duration_ms,
          offset: Buffer.byteLength(r.stderr),
        }),
      );
      return RESPONDED;
    }
    const { proc, result } = started;
    if (result) return await result;
    if (!req.stream) return proc.info();
    res.writeHead(200, { 'content-type': STREAM_CONTENT_TYPE, 'cache-control': 'no-store' });
    const keepalive = setInterval(
      () => res.write(encodeEventFrame({ type: 'keepalive' })),
      STREAM_KEEPALIVE_MS,
    );
    const sub: Subscriber = {
      output: (c: OutChunk) => res.write(encodeFrame(c.kind, c.data)),
      event: (ev: StreamEvent) => res.write(encodeEventFrame(ev)),
      congested: () => res.writableLength > HIGH_WATER,
      end: () => {
        clearInterval(keepalive);
        res.end();
      },
    };
    res.on('drain', () => proc.flowControl());
    res.on('close', () => {
      clearInterval(keepalive);
      proc.subscribers.delete(sub);
      proc.flowControl();
    });
    attach(proc, sub, 0);
    return RESPONDED;
  });

  router.add('GET', AGENT_ROUTES.processes, async () => ({ processes: table.list() }));
  router.add('GET', '/v1/processes/{sel}', async ({ params }) => sel(params.sel).info());

  router.add('GET', '/v1/processes/{sel}/logs', async ({ params, url }) => {
    const q = url.searchParams;
    const encoding = q.get('encoding') === 'base64' ? 'base64' : 'utf8';
    return sel(params.sel).logs(
      Number(q.get('offset') ?? 0),
      Number(q.get('limit') ?? 4 * 1024 * 1024),
      encoding,
    );
  });

  router.add('POST', '/v1/processes/{sel}/stdin', async ({ params, req }) => {
    const proc = sel(params.sel);
    let bytes = 0;
    for await (const chunk of req) {
      await proc.writeStdin(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    return { pid: proc.pid, bytes };
  });

  router.add('POST', '/v1/processes/{sel}/close_stdin', async ({ params }) => {
    const proc = sel(params.sel);
    proc.closeStdin();
    return proc.info();
  });

  router.add('POST', '/v1/processes/{sel}/signal', async ({ params, json }) => {
    const proc = sel(params.sel);
    proc.signal(((await json()) as { signal: string }).signal);
    return proc.info();
  });

  router.add('POST', '/v1/processes/{sel}/resize', async ({ params, json }) => {
    const proc = sel(params.sel);
    const { cols, rows } = (await json()) as { cols: number; rows: number };
    proc.resize(cols, rows);
    return proc.info();
  });

  router.add('POST', AGENT_ROUTES.pty, async ({ json }) =>
    (await table.openPty((await json()) as AgentPtyRequest)).info(),
  );

  router.ws(
    '/v1/processes/{sel}/ws',
    (ws: WebSocket, url, params) => {
      const proc = sel(params.sel); // checked just before the upgrade
      const offset = Number(url.searchParams.get('offset') ?? 0);
      const sent = () => proc.flowControl();
      const sub: Subscriber = {
        output: (c) => ws.send(encodeMessage(c.kind, c.data), sent),
        event: (ev) => ws.send(encodeEventMessage(ev)),
        congested: () => ws.bufferedAmount > HIGH_WATER,
        end: () => ws.close(1000, 'exited'),
      };
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (!isBinary || data.length === 0) return;
        const kind = data[0];
        const payload = data.subarray(1);
        try {
          if (kind === FRAME.stdout) {
            // Stdin in order: the socket is paused until the process's pipe took it.
            ws.pause();
            proc.writeStdin(payload).then(
              () => ws.resume(),
              (err: unknown) => {
                ws.resume();
                sendError(ws, err);
              },
            );
          } else if (kind === FRAME.event)
            control(proc, JSON.parse(payload.toString('utf8')) as StreamControl);
        } catch (err) {
          sendError(ws, err);
        }
      });
      ws.on('close', () => {
        proc.subscribers.delete(sub);
        proc.flowControl();
      });
      attach(proc, sub, offset);
    },
    (_url, params) => {
      sel(params.sel); // an unknown pid or tag is refused before the upgrade (404 not_found)
    },
  );
}

function sendError(ws: WebSocket, err: unknown): void {
  const e = err instanceof CodedError ? err : new CodedError('internal', String(err));
  ws.send(encodeEventMessage({ type: 'error', code: e.code, message: e.message }));
}
